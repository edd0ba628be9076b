package cmd

import (
	"context"
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
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
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
			if err := o.Validate(); err != nil {
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
	cmd.Flags().StringVar(&o.Image, "image", mtls.DefaultCaptureImage, "live: capture pod image (must contain tcpdump and timeout)")
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

// Run decodes (a file or a live capture), judges and prints.
func (o *VerifyMTLSOptions) Run(ctx context.Context) error {
	if o.Cleanup {
		return o.cleanup(ctx)
	}
	if o.Pcap == "" {
		return o.runLive(ctx)
	}
	var in io.Reader
	name := o.Pcap
	if o.Pcap == "-" {
		in = o.streams.In
		name = "standard input"
	} else {
		f, err := os.Open(o.Pcap)
		if err != nil {
			return fmt.Errorf("open capture %s: %w", o.Pcap, err)
		}
		defer func() { _ = f.Close() }()
		in = f
	}
	dec := pcap.NewDecoder()
	if err := dec.ReadAll(ctx, in); err != nil {
		return fmt.Errorf("decode capture %s: %w", name, err)
	}
	flows := dec.Flows()
	stats := dec.Stats()

	dumps, err := o.readDumps()
	if err != nil {
		return err
	}
	var pods mtls.PodMap
	if o.Pods == "" && len(dumps) > 0 {
		// ztunnel knows every workload of the mesh: judge offline from it.
		pods = mtls.PodMapFromDumps(dumps)
	} else if pods, err = o.podMap(ctx); err != nil {
		return err
	}
	return o.report(flows, stats, pods, name, nil, dumps)
}

// report judges, joins identities, prints, and turns a failed verdict into exit code 1.
func (o *VerifyMTLSOptions) report(flows []pcap.Flow, stats pcap.Stats, pods mtls.PodMap, name string, logs []mtls.AccessLogEntry, dumps []mtls.ZtunnelDump) error {
	rep := mtls.Judge(flows, pods)
	rep.Stats = stats
	if len(logs) > 0 {
		mtls.JoinIdentities(rep, logs)
	}
	for _, path := range o.Logs {
		if err := o.joinLogs(rep, path); err != nil {
			return err
		}
	}
	if len(dumps) > 0 {
		mtls.JoinConfigDumps(rep, dumps, o.now())
	}
	mtls.FlagMissingIdentities(rep, len(logs) > 0 || len(o.Logs) > 0 || len(dumps) > 0)

	if stats.InputError != "" {
		fmt.Fprintf(o.streams.ErrOut, "warning: capture %s: %s; judged the %d packets before it\n", name, stats.InputError, stats.Packets)
	}
	if stats.Undecodable > 0 {
		fmt.Fprintf(o.streams.ErrOut, "warning: %d of %d packets could not be decoded\n", stats.Undecodable, stats.Packets)
	}
	if rep.Summary.MeshPairs == 0 {
		fmt.Fprintln(o.streams.ErrOut, "warning: no traffic between mesh workloads in the capture: nothing was proven; capture while mesh pods talk, and check the pod mapping")
	}

	if o.Output != OutputTable {
		if err := PrintStructured(o.streams.Out, o.Output, rep); err != nil {
			return err
		}
	} else if err := printMTLSTable(o.streams.Out, rep); err != nil {
		return err
	}
	if !rep.Passed {
		return SilentError{Code: ExitFailure}
	}
	return nil
}

func (o *VerifyMTLSOptions) runLive(ctx context.Context) error {
	fileDumps, err := o.readDumps()
	if err != nil {
		return err
	}
	clients, err := o.factory.Clients()
	if err != nil {
		return err
	}
	ns, _, err := o.factory.Namespace()
	if err != nil {
		return err
	}
	res, err := mtls.Live(ctx, clients.Config, clients.Kube, mtls.LiveOptions{
		Namespace: ns, From: o.From, To: o.To, Duration: o.Duration, MaxPackets: o.MaxPackets,
		Image: o.Image, WriteFile: o.Write, Progress: o.streams.ErrOut,
	})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("live capture interrupted: %w; its capture pods were deleted (verify-mtls --cleanup removes any left behind)", ctx.Err())
		}
		return kube.Unreachable(clients.Config.Host, err)
	}
	// Pods of other namespaces (the far end of a pair) and a --pods file
	// complete the namespace's own mapping.
	pods := res.Pods
	if m, err := o.clusterPods(ctx, clients); err == nil {
		for k, v := range m {
			pods[k] = v
		}
	}
	if o.Pods != "" {
		m, err := o.filePods()
		if err != nil {
			return err
		}
		for k, v := range m {
			pods[k] = v
		}
	}
	dumps := append(res.Dumps, fileDumps...)
	// Addresses no pod has (gone since, or host addresses) may still be
	// workloads ztunnel knows.
	for k, v := range mtls.PodMapFromDumps(dumps) {
		if _, ok := pods[k]; !ok {
			pods[k] = v
		}
	}
	for _, f := range res.Files {
		fmt.Fprintf(o.streams.ErrOut, "capture kept in %s\n", f)
	}
	return o.report(res.Flows, res.Stats, pods, "live capture", res.Logs, dumps)
}

func (o *VerifyMTLSOptions) cleanup(ctx context.Context) error {
	clients, err := o.factory.Clients()
	if err != nil {
		return err
	}
	gone, err := mtls.Cleanup(ctx, clients.Kube, "")
	if err != nil {
		return kube.Unreachable(clients.Config.Host, err)
	}
	for _, g := range gone {
		fmt.Fprintf(o.streams.Out, "deleted capture pod %s\n", g)
	}
	if len(gone) == 0 {
		fmt.Fprintln(o.streams.Out, "no capture pods left behind")
	}
	return nil
}

func (o *VerifyMTLSOptions) podMap(ctx context.Context) (mtls.PodMap, error) {
	if o.Pods != "" {
		return o.filePods()
	}
	clients, err := o.factory.Clients()
	if err != nil {
		return nil, fmt.Errorf("map capture addresses to pods: %w; or pass --pods FILE to judge offline", err)
	}
	return o.clusterPods(ctx, clients)
}

func (o *VerifyMTLSOptions) filePods() (mtls.PodMap, error) {
	f, err := os.Open(o.Pods)
	if err != nil {
		return nil, fmt.Errorf("open pod mapping %s: %w", o.Pods, err)
	}
	defer func() { _ = f.Close() }()
	m, err := mtls.LoadPodMap(f)
	if err != nil {
		return nil, fmt.Errorf("pod mapping %s: %w", o.Pods, err)
	}
	return m, nil
}

func (o *VerifyMTLSOptions) clusterPods(ctx context.Context, clients *kube.Clients) (mtls.PodMap, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	m, err := mtls.PodMapFromCluster(ctx, clients.Kube, "")
	if err != nil {
		return nil, kube.Unreachable(clients.Config.Host, err)
	}
	return m, nil
}

func (o *VerifyMTLSOptions) joinLogs(rep *mtls.Report, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open ztunnel log %s: %w", path, err)
	}
	defer func() { _ = f.Close() }()
	entries, err := mtls.ParseAccessLog(f)
	if err != nil {
		return fmt.Errorf("read ztunnel log %s: %w", path, err)
	}
	mtls.JoinIdentities(rep, entries)
	return nil
}

func (o *VerifyMTLSOptions) readDumps() ([]mtls.ZtunnelDump, error) {
	var out []mtls.ZtunnelDump
	for _, path := range o.Dumps {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read ztunnel config_dump %s: %w", path, err)
		}
		d, err := ztunnel.ParseIdentityDump(b)
		if err != nil {
			return nil, fmt.Errorf("--config-dump %s: %w; want the JSON of curl localhost:15000/config_dump", path, err)
		}
		out = append(out, mtls.ZtunnelDump{Source: path, Dump: d})
	}
	return out, nil
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
