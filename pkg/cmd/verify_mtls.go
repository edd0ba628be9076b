package cmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls/capture"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// VerifyMTLSOptions holds the flags of `kubectl ambient verify-mtls`.
type VerifyMTLSOptions struct {
	Pcap    string
	Pods    string
	Logs    []string
	Dumps   []string
	Output  OutputFlags
	Timeout time.Duration

	// The verdict.
	Expect     []string
	RequirePQC bool
	JUnit      string

	// Live capture.
	From, To   string
	Duration   time.Duration
	MaxPackets int
	Image      string
	Write      string
	Cleanup    bool
	// CaptureNamespace holds the capture pods (default: one of the run's own).
	CaptureNamespace string

	factory kube.Factory
	streams genericiooptions.IOStreams
	// now decides which certificates expire soon; tests fix it.
	now func() time.Time

	// Filled by Validate and Complete.
	rules   mtls.Rules
	config  mtls.Config
	deps    mtls.Deps
	clients *kube.Clients // --cleanup only
}

// NewCmdVerifyMTLS builds `kubectl ambient verify-mtls`.
func NewCmdVerifyMTLS(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &VerifyMTLSOptions{Output: NewOutputFlags(), Timeout: 30 * time.Second, factory: f, streams: streams, now: time.Now}
	cmd := &cobra.Command{
		Use:   "verify-mtls [--pcap FILE | -n NAMESPACE [--from W --to W] [--duration 10s]]",
		Short: "Prove from a packet capture that mesh traffic crossed the wire as HBONE mTLS",
		Long: `verify-mtls decodes a packet capture (pcap or pcapng, as written by tcpdump -w or
tshark -w; "-" reads standard input), classifies every TCP connection (HBONE, TLS,
plaintext, no payload), maps addresses to pods, and judges each workload pair:

  - between two ambient workloads, traffic must be HBONE on port 15008 and the app
    port must never carry payload;
  - a pair with a sidecar end passes with Istio mTLS (ALPN istio-*) or HBONE;
  - HBONE is proven only by the server's TLS 1.3 ServerHello: a flow to 15008 with
    only a ClientHello is "HBONE attempted, handshake not captured" (WARN); the
    table shows what was offered apart from what was negotiated, with the
    negotiated cipher suite and key-exchange group; ztunnel uses only
    TLS_AES_256_GCM_SHA384 and TLS_AES_128_GCM_SHA256, so any other suite is
    flagged; post-quantum hybrid groups (X25519MLKEM768) are marked (PQ), and
    --require-pqc fails pairs that negotiated a classical group (a group that was
    not seen is not proven: WARN);
  - a plaintext preamble before TLS (HTTP CONNECT, SOCKS, STARTTLS) between mesh
    workloads is plaintext on the wire: FAIL;
  - expected plaintext is listed apart, not judged: kubelet probes (SNATed from
    169.254.7.127 or fd16:9254:7127:1337:ffff:ffff:ffff:ffff) and DNS to ztunnel's
    proxy on 15053;
  - pairs with an end outside the mesh are reported, not judged; pods labelled
    istio.io/dataplane-mode=none and host-network pods are outside the mesh.

The run's verdict is one word, also in -o json/yaml ("verdict") and --junit:
  PASS          at least one pair of mesh workloads was seen and every judged row
                passed, and every --expect pair appeared and passed;
  FAIL          plaintext or bypassed traffic between mesh workloads, a pair
                --require-pqc refuses, or an --expect pair missing or not passing;
  INCONCLUSIVE  nothing failed but nothing was proven, with the reason: no mesh
                pair, no TCP at all, addresses that map to no pod, a tunnel the
                decoder could not open, rows that could not be proven (WARN), or,
                live, the node whose capture saw nothing.

Addresses are mapped from the cluster's pods, or from --pods FILE (YAML or JSON:
{ip: {namespace, pod, enrolled, sidecar}}) to judge a capture offline. With
--logs, flows are joined with ztunnel "connection complete" access-log lines to
show the SPIFFE identities on each side. With --config-dump (ztunnel's admin
/config_dump, port 15000), each HBONE flow's ends get the identity ztunnel
gives their workload (spiffe://<trust-domain>/ns/<ns>/sa/<sa>) even where no
log line covers it, and the certificate ztunnel holds for each identity is
listed with its state and expiry: missing, Initializing, Unavailable, expired
or expiring ones (under 24h left, or a quarter of a shorter lifetime: ztunnel
renews at half) are flagged, as are HBONE flows whose ends have no identity in
ztunnel's evidence. Without --pods, the dump's workloads map the addresses
(protocol HBONE means captured), so no cluster is needed.

Without --pcap, verify-mtls captures live: it finds the selected pods of the
namespace and their nodes, starts one short-lived privileged host-network capture
pod per node (--image, default a well-known image with tcpdump), captures only
traffic of those pods for --duration, streams the pcap over exec into the decoder,
and deletes the capture pods (also on Ctrl-C). --write keeps the capture (0600).
The capture pods never run in the application's namespace: by default the run
creates a namespace of its own (ambient-capture-<id>, labelled
pod-security.kubernetes.io/enforce=privileged) and deletes it at the end;
--capture-namespace uses an existing one instead (e.g. istio-system, already
privileged for istio-cni). RBAC: docs/rbac.md. The access logs and config_dumps of the ztunnels
(app=ztunnel) on those nodes are joined for identities and certificates; the
config_dump is read through a port-forward to 15000 (RBAC create
pods/portforward), best effort within 15s: a ztunnel that cannot be read is a
warning. --pods adds addresses that are not pods. --cleanup deletes capture
pods left behind.

Exit codes: 0 PASS; 1 FAIL (or an error); 2 usage; 3 INCONCLUSIVE. The table,
JSON or YAML is printed first. --junit FILE also writes JUnit XML (mode 0600):
one testcase per judged pair, one per --expect pair and one for the verdict;
WARN pairs and an INCONCLUSIVE verdict are failures there, so a CI gate never
shows green without proof. Identity and certificate findings are reported but do
not change the verdict.`,
		Example: `  # Capture on a node (or in a pod's network namespace), then judge
  tcpdump -i any -w /tmp/mesh.pcap 'tcp' & sleep 10; kill %1
  kubectl ambient verify-mtls --pcap /tmp/mesh.pcap

  # Offline, with a pod mapping file and ztunnel logs for identities
  kubectl ambient verify-mtls --pcap mesh.pcapng --pods pods.yaml --logs ztunnel.log -o json

  # Offline with ztunnel's config_dump: identities and certificates, no cluster needed
  kubectl -n istio-system port-forward ds/ztunnel 15000 &
  curl -s localhost:15000/config_dump > node-1.json
  kubectl ambient verify-mtls --pcap mesh.pcap --config-dump node-1.json

  # Straight from tcpdump
  tcpdump -i eth0 -w - -c 2000 | kubectl ambient verify-mtls --pcap - --pods pods.yaml

  # Live: capture 10 seconds of traffic between two workloads, keep the pcap
  kubectl ambient verify-mtls -n shop --from cart --to checkout --duration 10s --write /tmp/shop.pcap

  # CI gate: these pairs must be seen and pass, post-quantum key exchange required,
  # JUnit for the CI's test view; exit 3 means nothing was proven
  kubectl ambient verify-mtls --pcap mesh.pcap --pods pods.yaml \
    --expect shop/cart->shop/checkout --expect shop/checkout->shop/payments \
    --require-pqc --junit verify-mtls.xml

  # Live, with the capture pods in istio-system instead of a namespace of their own
  kubectl ambient verify-mtls -n shop --capture-namespace istio-system

  # Delete capture pods left behind by an interrupted run
  kubectl ambient verify-mtls --cleanup`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			// Flags first: a usage error never waits for a kubeconfig.
			if err := o.Validate(); err != nil {
				return err
			}
			if err := o.Complete(); err != nil {
				return err
			}
			c.SilenceUsage = true
			return o.Run(c.Context())
		},
	}
	cmd.Flags().StringVar(&o.Pcap, "pcap", "", `capture file to judge (pcap or pcapng, optionally gzip); "-" for standard input`)
	cmd.Flags().StringVar(&o.Pods, "pods", "", "YAML or JSON file mapping pod IPs to {namespace, pod, enrolled, sidecar}; default: read pods from the cluster")
	cmd.Flags().StringSliceVar(&o.Logs, "logs", nil, "ztunnel log files (kubectl logs ds/ztunnel) to join SPIFFE identities from; repeatable")
	cmd.Flags().StringSliceVar(&o.Dumps, "config-dump", nil, "ztunnel config_dump files (curl localhost:15000/config_dump) to join workload identities and certificates from; repeatable")
	o.Output.AddFlags(cmd)
	cmd.Flags().StringArrayVar(&o.Expect, "expect", nil, "FROM->TO workload names (namespace/pod, pod, or a Deployment's pod-name prefix) that must appear and pass; repeatable")
	cmd.Flags().BoolVar(&o.RequirePQC, "require-pqc", false, "fail pairs whose HBONE handshake negotiated a classical (not post-quantum hybrid) key exchange")
	cmd.Flags().StringVar(&o.JUnit, "junit", "", "also write the verdict as JUnit XML to this file (mode 0600)")
	cmd.Flags().StringVar(&o.CaptureNamespace, "capture-namespace", "", "live: run the capture pods in this existing namespace (default: a namespace of the run's own, deleted after)")
	cmd.Flags().DurationVar(&o.Timeout, "request-timeout-pods", o.Timeout, "how long to wait for the cluster when listing pods")
	cmd.Flags().StringVar(&o.From, "from", "", "live: client workload (pod name, name prefix or app label); default every pod of the namespace")
	cmd.Flags().StringVar(&o.To, "to", "", "live: server workload (pod name, name prefix or app label)")
	cmd.Flags().DurationVar(&o.Duration, "duration", 10*time.Second, "live: how long to capture")
	cmd.Flags().IntVar(&o.MaxPackets, "max-packets", 0, "live: stop each node's capture after this many packets (0: no limit)")
	cmd.Flags().StringVar(&o.Image, "image", capture.DefaultImage, "live: capture pod image (must contain tcpdump and timeout)")
	cmd.Flags().StringVar(&o.Write, "write", "", "live: keep the captured pcap in this file (mode 0600; one file per node, named FILE-<node>, when several)")
	cmd.Flags().BoolVar(&o.Cleanup, "cleanup", false, "delete capture pods left behind by interrupted runs (all namespaces), then exit")
	cmd.AddCommand(NewCmdVerifyMTLSScenario(f, streams))
	return cmd
}

// Validate checks the flags.
func (o *VerifyMTLSOptions) Validate() error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	if o.Pcap != "" && (o.From != "" || o.To != "" || o.Write != "" || o.CaptureNamespace != "") {
		return UsageError{errors.New("--from, --to, --write and --capture-namespace belong to live capture; drop them with --pcap")}
	}
	expect, err := parseExpect(o.Expect, nil)
	if err != nil {
		return err
	}
	o.rules = mtls.Rules{RequirePQC: o.RequirePQC, Expect: expect}
	if o.Duration <= 0 || o.MaxPackets < 0 {
		return UsageError{errors.New("--duration must be positive and --max-packets not negative")}
	}
	return nil
}

// Complete turns the flags into the library's Config and Deps. Clients are
// built only when a step needs the cluster: a capture judged with --pods or
// --config-dump needs none.
func (o *VerifyMTLSOptions) Complete() error {
	o.config = mtls.Config{
		Pcap: o.Pcap, PodsFile: o.Pods, LogFiles: o.Logs, DumpFiles: o.Dumps,
		Live: mtls.LiveConfig{From: o.From, To: o.To, Duration: o.Duration, MaxPackets: o.MaxPackets, Image: o.Image, WriteFile: o.Write,
			CaptureNamespace: o.CaptureNamespace},
		Rules: o.rules,
	}
	o.deps = mtls.Deps{
		Stdin: o.streams.In, Progress: o.streams.ErrOut, Now: o.now,
		Pods:     capture.ClusterPods{Clients: o.factory.Clients, Timeout: o.Timeout},
		Capturer: capture.Capturer{Clients: o.factory.Clients},
	}
	switch {
	case o.Cleanup:
		clients, err := o.factory.Clients()
		if err != nil {
			return err
		}
		o.clients = clients
	case o.Pcap == "":
		ns, _, err := o.factory.Namespace()
		if err != nil {
			return err
		}
		o.config.Live.Namespace = ns
	}
	return nil
}

// Run verifies (a file or a live capture), prints the report and writes
// --junit; FAIL is exit code 1 and INCONCLUSIVE 3, after the report.
func (o *VerifyMTLSOptions) Run(ctx context.Context) error {
	if o.Cleanup {
		return o.cleanup(ctx)
	}
	rep, err := mtls.Verify(ctx, o.deps, o.config)
	if err != nil {
		return err
	}
	if err := o.Output.Print(o.streams.Out, mtlsReport{rep}); err != nil {
		return err
	}
	if o.JUnit != "" {
		if err := writeJUnit(o.JUnit, mtls.JUnitReport(rep)); err != nil {
			return err
		}
	}
	return verdictExit(rep.Verdict)
}

// parseExpect reads the --expect pairs; check, when set, refuses pairs
// the command cannot judge. Either failure is a usage error.
func parseExpect(specs []string, check func(mtls.Expectation) error) ([]mtls.Expectation, error) {
	var out []mtls.Expectation
	for _, s := range specs {
		e, err := mtls.ParseExpectation(s)
		if err == nil && check != nil {
			err = check(e)
		}
		if err != nil {
			return nil, UsageError{fmt.Errorf("--expect: %w", err)}
		}
		out = append(out, e)
	}
	return out, nil
}

// printExpectations lists the --expect pairs and what became of them.
func printExpectations(w io.Writer, es []mtls.ExpectationResult) {
	if len(es) == 0 {
		return
	}
	fmt.Fprintln(w, "\nExpected pairs (--expect):")
	for _, e := range es {
		mark := "PASS"
		if !e.Passed {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s  %s: %s\n", mark, e, e.Reason)
	}
}

// verdictExit maps a run's verdict to its exit code.
func verdictExit(v mtls.Outcome) error {
	switch v {
	case mtls.OutcomePass:
		return nil
	case mtls.OutcomeInconclusive:
		return SilentError{Code: ExitInconclusive}
	}
	return SilentError{Code: ExitFailure}
}

// writeJUnit writes the JUnit XML to path, mode 0600 like the captures.
func writeJUnit(path string, j *mtls.JUnit) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("--junit %s: %w", path, err)
	}
	if err := j.Write(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("--junit %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--junit %s: %w", path, err)
	}
	return nil
}

// mtlsReport prints a verdict report as the table; JSON and YAML are the
// report's own fields.
type mtlsReport struct{ *mtls.Report }

// PrintTable implements TablePrinter.
func (r mtlsReport) PrintTable(w io.Writer) error { return printMTLSTable(w, r.Report) }

// WriteJSON implements JSONStreamer: the same bytes as PrintStructured,
// with the pairs (most of a large report) encoded one at a time, so a
// capture of 10,000 pairs never holds its whole JSON in memory.
func (r mtlsReport) WriteJSON(w io.Writer) error {
	shell := *r.Report
	shell.Pairs = []mtls.Pair{}
	var head bytes.Buffer
	if err := PrintStructured(&head, OutputJSON, shell); err != nil {
		return err
	}
	const marker = "\n  \"pairs\": []"
	before, after, ok := bytes.Cut(head.Bytes(), []byte(marker))
	if !ok || len(r.Pairs) == 0 {
		_, err := w.Write(head.Bytes())
		return err
	}
	// bufio.Writer keeps its first error; Flush returns it.
	bw := bufio.NewWriterSize(w, 64<<10)
	_, _ = bw.Write(before)
	_, _ = bw.WriteString("\n  \"pairs\": [")
	for i := range r.Pairs {
		b, err := json.MarshalIndent(&r.Pairs[i], "    ", "  ")
		if err != nil {
			return err
		}
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		_, _ = bw.WriteString("\n    ")
		_, _ = bw.Write(b)
	}
	_, _ = bw.WriteString("\n  ]")
	_, _ = bw.Write(after)
	return bw.Flush()
}

func (o *VerifyMTLSOptions) cleanup(ctx context.Context) error {
	gone, err := capture.Cleanup(ctx, o.clients.Kube, "")
	if err != nil {
		return kube.Unreachable(o.clients.Config.Host, err)
	}
	for _, g := range gone {
		if ns, ok := strings.CutPrefix(g, "namespace "); ok {
			fmt.Fprintf(o.streams.Out, "deleted capture namespace %s\n", ns)
			continue
		}
		fmt.Fprintf(o.streams.Out, "deleted capture pod %s\n", g)
	}
	if len(gone) == 0 {
		fmt.Fprintln(o.streams.Out, "no capture pods left behind")
	}
	return nil
}

func printMTLSTable(w io.Writer, rep *mtls.Report) error {
	withIDs, withEncap := false, false
	for _, p := range rep.Pairs {
		for _, r := range p.Rows {
			withIDs = withIDs || r.ClientIdentity != "" || r.ServerIdentity != "" || len(r.Identities) > 0
			withEncap = withEncap || r.Encap != ""
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "PAIR\tPORT\tCLASS\tTLS\tALPN\tCIPHER\tGROUP\tFLOWS\tPACKETS\tBYTES\tVERDICT\tREASON"
	if withEncap {
		head = strings.Replace(head, "\tCLASS", "\tENCAP\tCLASS", 1)
	}
	if withIDs {
		head += "\tIDENTITIES"
	}
	fmt.Fprintln(tw, head)
	row := func(r mtls.Row) {
		reason := r.Reason
		if r.ZtunnelWithoutIdentity > 0 {
			reason += fmt.Sprintf(" [ztunnel logged %d connection(s) without identities]", r.ZtunnelWithoutIdentity)
		}
		fmt.Fprintf(tw, "%s -> %s\t%d\t", r.Client.Name, r.Server.Name, r.Port)
		if withEncap {
			fmt.Fprintf(tw, "%s\t", orDash(r.Encap))
		}
		cipher, group := rowNegotiated(r)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s",
			r.Class, rowTLS(r), orDash(strings.Join(r.ALPN, ",")), cipher, group, r.Flows, r.Packets, humanBytes(r.Bytes), strings.ToUpper(string(r.Verdict)), reason)
		if withIDs {
			fmt.Fprintf(tw, "\t%s", rowIdentities(r))
		}
		fmt.Fprintln(tw)
	}
	for _, p := range rep.Pairs {
		for _, r := range p.Rows {
			row(r)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Probes)+len(rep.DNS) > 0 {
		fmt.Fprintln(w, "\nExpected plaintext (kubelet probes, DNS to ztunnel's 15053; not judged):")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, r := range rep.Probes {
			row(r)
		}
		for _, r := range rep.DNS {
			row(r)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if err := printIdentityFindings(w, rep); err != nil {
		return err
	}
	printExpectations(w, rep.Expectations)
	if len(rep.Nodes) > 0 {
		fmt.Fprintln(w, "\nCaptures per node:")
		for _, n := range rep.Nodes {
			fmt.Fprintf(w, "  %s: %d packets, %d TCP, %d connections\n", n.Node, n.Packets, n.TCP, n.Flows)
		}
	}
	s := rep.Summary
	var result string
	switch rep.Verdict {
	case mtls.OutcomePass:
		result = "PASS: mesh traffic proven mTLS, no plaintext between mesh workloads"
	case mtls.OutcomeFail:
		result = "FAIL: " + strings.Join(rep.Reasons, "; ")
	default:
		result = "INCONCLUSIVE: " + strings.Join(rep.Reasons, "; ")
	}
	extra := ""
	if s.IdentityIssues > 0 || s.CertificateProblems > 0 {
		extra = fmt.Sprintf("; identity findings: %d row(s), %d certificate(s)", s.IdentityIssues, s.CertificateProblems)
	}
	_, err := fmt.Fprintf(w, "\n%s\n(%d mesh pairs; rows: %d pass, %d fail, %d warn, %d info; %d packets, %d flows%s)\n",
		result, s.MeshPairs, s.Pass, s.Fail, s.Warn, s.Info, rep.Stats.Packets, rep.Stats.Flows, extra)
	return err
}

// rowTLS is the negotiated version, or the offered one marked as such.
func rowTLS(r mtls.Row) string {
	switch {
	case r.Negotiated != nil && r.Negotiated.Version != "":
		return r.Negotiated.Version
	case r.Handshake == mtls.HandshakeOffered && r.TLSVersion != "":
		return r.TLSVersion + "(offered)" // one word, as (PQ)
	}
	return orDash(r.TLSVersion)
}

// rowNegotiated is the negotiated cipher suite and group ("(PQ)" marks a
// post-quantum hybrid), "-" where no ServerHello said.
func rowNegotiated(r mtls.Row) (string, string) {
	if r.Negotiated == nil {
		return "-", "-"
	}
	group := orDash(r.Negotiated.Group)
	if r.Negotiated.PostQuantum {
		group += "(PQ)" // one word: scripts split the table on blanks
	}
	return orDash(r.Negotiated.CipherSuite), group
}

// rowIdentities is "src -> dst": every pair ztunnel's access log gave when
// it gave several, else the identities of the two ends.
func rowIdentities(r mtls.Row) string {
	if len(r.Identities) > 1 {
		return strings.Join(r.Identities, ", ")
	}
	if r.ClientIdentity == "" && r.ServerIdentity == "" {
		return "-"
	}
	none := func(s string) string {
		if s == "" {
			return "(none)"
		}
		return s
	}
	return none(r.ClientIdentity) + " -> " + none(r.ServerIdentity)
}

// printIdentityFindings prints ztunnel's certificates for the identities
// shown and what the identity join flagged. Neither changes the verdict.
func printIdentityFindings(w io.Writer, rep *mtls.Report) error {
	if len(rep.Certificates) > 0 {
		fmt.Fprintln(w, "\nCertificates held by ztunnel (config_dump):")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "IDENTITY\tSTATE\tEXPIRES\tZTUNNEL\tSTATUS")
		for _, c := range rep.Certificates {
			exp := "-"
			if c.Expiration != nil {
				exp = c.Expiration.UTC().Format(time.RFC3339)
			}
			status := strings.ToUpper(c.Status)
			if c.Problem != "" {
				status += ": " + c.Problem
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Identity, orDash(c.State), exp, orDash(c.Ztunnel), status)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	var issues []string
	for _, p := range rep.Pairs {
		for _, r := range p.Rows {
			for _, i := range r.IdentityIssues {
				issues = append(issues, fmt.Sprintf("  %s -> %s %d: %s", r.Client.Name, r.Server.Name, r.Port, i))
			}
		}
	}
	if len(issues) > 0 {
		fmt.Fprintln(w, "\nIdentity findings (ztunnel's own evidence; not part of the verdict):")
		fmt.Fprintln(w, strings.Join(issues, "\n"))
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGi", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMi", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKi", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d", n)
}
