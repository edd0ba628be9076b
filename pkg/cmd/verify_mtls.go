package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	Output  string
	Timeout time.Duration

	// Live capture.
	From, To   string
	Duration   time.Duration
	MaxPackets int
	Image      string
	Write      string
	Cleanup    bool

	factory kube.Factory
	streams genericiooptions.IOStreams
	// now decides which certificates expire soon; tests fix it.
	now func() time.Time

	// Filled by Complete.
	config  mtls.Config
	deps    mtls.Deps
	clients *kube.Clients // --cleanup only
}

// NewCmdVerifyMTLS builds `kubectl ambient verify-mtls`.
func NewCmdVerifyMTLS(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &VerifyMTLSOptions{Output: OutputTable, Timeout: 30 * time.Second, factory: f, streams: streams, now: time.Now}
	cmd := &cobra.Command{
		Use:   "verify-mtls [--pcap FILE | -n NAMESPACE [--from W --to W] [--duration 10s]]",
		Short: "Prove from a packet capture that mesh traffic crossed the wire as HBONE mTLS",
		Long: `verify-mtls decodes a packet capture (pcap or pcapng, as written by tcpdump -w or
tshark -w; "-" reads standard input), classifies every TCP connection (HBONE, TLS,
plaintext, no payload), maps addresses to pods, and judges each workload pair:

  - between two ambient workloads, traffic must be HBONE on port 15008 and the app
    port must never carry payload;
  - a pair with a sidecar end passes with Istio mTLS (ALPN istio-*) or HBONE;
  - kubelet probes (from 169.254.7.127) are plaintext by design and listed apart;
  - pairs with an end outside the mesh are reported, not judged.

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
It needs RBAC to create pods and pods/exec, and a namespace whose Pod Security
admits privileged pods. The access logs and config_dumps of the ztunnels
(app=ztunnel) on those nodes are joined for identities and certificates; the
config_dump is read through a port-forward to 15000 (RBAC create
pods/portforward), best effort within 15s: a ztunnel that cannot be read is a
warning. --pods adds addresses that are not pods. --cleanup deletes capture
pods left behind.

Exit code 0 only when no plaintext crossed between mesh workloads; 1 after
printing the table when a verdict fails. Identity and certificate findings are
reported but do not change the exit code.`,
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
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, "output format: table, json or yaml")
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
	if err := ValidateOutput(o.Output); err != nil {
		return err
	}
	if o.Pcap != "" && (o.From != "" || o.To != "" || o.Write != "") {
		return UsageError{errors.New("--from, --to and --write belong to live capture; drop them with --pcap")}
	}
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
		Live: mtls.LiveConfig{From: o.From, To: o.To, Duration: o.Duration, MaxPackets: o.MaxPackets, Image: o.Image, WriteFile: o.Write},
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

// Run verifies (a file or a live capture) and prints the report; a failed
// verdict is exit code 1 after the table.
func (o *VerifyMTLSOptions) Run(ctx context.Context) error {
	if o.Cleanup {
		return o.cleanup(ctx)
	}
	rep, err := mtls.Verify(ctx, o.deps, o.config)
	if err != nil {
		return err
	}
	if err := printAs(o.streams.Out, o.Output, rep, func(w io.Writer) error { return printMTLSTable(w, rep) }); err != nil {
		return err
	}
	if !rep.Passed {
		return SilentError{Code: ExitFailure}
	}
	return nil
}

func (o *VerifyMTLSOptions) cleanup(ctx context.Context) error {
	gone, err := capture.Cleanup(ctx, o.clients.Kube, "")
	if err != nil {
		return kube.Unreachable(o.clients.Config.Host, err)
	}
	for _, g := range gone {
		fmt.Fprintf(o.streams.Out, "deleted capture pod %s\n", g)
	}
	if len(gone) == 0 {
		fmt.Fprintln(o.streams.Out, "no capture pods left behind")
	}
	return nil
}

// printAs writes v as -o asks: JSON or YAML, or the table. verify-mtls and
// its scenario print through it only, so moving them to a shared output
// layer is a change here.
func printAs(w io.Writer, format string, v any, table func(io.Writer) error) error {
	if format != OutputTable {
		return PrintStructured(w, format, v)
	}
	return table(w)
}

func printMTLSTable(w io.Writer, rep *mtls.Report) error {
	withIDs := false
	for _, p := range rep.Pairs {
		for _, r := range p.Rows {
			withIDs = withIDs || r.ClientIdentity != "" || r.ServerIdentity != "" || len(r.Identities) > 0
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "PAIR\tPORT\tCLASS\tTLS\tALPN\tFLOWS\tPACKETS\tBYTES\tVERDICT\tREASON"
	if withIDs {
		head += "\tIDENTITIES"
	}
	fmt.Fprintln(tw, head)
	row := func(r mtls.Row) {
		reason := r.Reason
		if r.ZtunnelWithoutIdentity > 0 {
			reason += fmt.Sprintf(" [ztunnel logged %d connection(s) without identities]", r.ZtunnelWithoutIdentity)
		}
		fmt.Fprintf(tw, "%s -> %s\t%d\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s",
			r.Client.Name, r.Server.Name, r.Port, r.Class, orDash(r.TLSVersion), orDash(strings.Join(r.ALPN, ",")), r.Flows, r.Packets, humanBytes(r.Bytes), strings.ToUpper(string(r.Verdict)), reason)
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
	if len(rep.Probes) > 0 {
		fmt.Fprintln(w, "\nKubelet probes (plaintext by design, not judged):")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, r := range rep.Probes {
			row(r)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if err := printIdentityFindings(w, rep); err != nil {
		return err
	}
	s := rep.Summary
	result := "PASS: no plaintext between mesh workloads"
	if !rep.Passed {
		result = "FAIL: plaintext or bypassed traffic between mesh workloads"
	}
	extra := ""
	if s.IdentityIssues > 0 || s.CertificateProblems > 0 {
		extra = fmt.Sprintf("; identity findings: %d row(s), %d certificate(s)", s.IdentityIssues, s.CertificateProblems)
	}
	_, err := fmt.Fprintf(w, "\n%s (%d mesh pairs; rows: %d pass, %d fail, %d warn, %d info; %d packets, %d flows%s)\n",
		result, s.MeshPairs, s.Pass, s.Fail, s.Warn, s.Info, rep.Stats.Packets, rep.Stats.Flows, extra)
	return err
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
