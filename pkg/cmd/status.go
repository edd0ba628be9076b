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
	"runtime/debug"
	"strings"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel/collector"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/tui"
)

// ztunnelWatchFlags are the flags `tui` and `status` share.
type ztunnelWatchFlags struct {
	Namespace   string
	Selector    string
	Interval    time.Duration
	Concurrency int
	Admin       string
	// CertInterval is how often each ztunnel's config_dump is read for its
	// certificates; 0 never reads it.
	CertInterval time.Duration
	// Prometheus is "" (scrape through the API server), a URL, or "auto"
	// (find a Prometheus Service); PromWindow is its rate() range.
	Prometheus string
	PromWindow time.Duration
	// MaxRPS is the sustained API request budget of the direct path.
	MaxRPS float64
}

func (z *ztunnelWatchFlags) bind(fs *pflag.FlagSet) {
	z.Namespace, z.Selector = collector.DefaultZtunnelNamespace, collector.DefaultZtunnelSelector
	z.Interval, z.Concurrency, z.Admin = collector.DefaultInterval, collector.DefaultConcurrency, "auto"
	fs.StringVar(&z.Namespace, "ztunnel-namespace", z.Namespace, "namespace of the ztunnel pods (kube-system on OpenShift)")
	fs.StringVar(&z.Selector, "ztunnel-selector", z.Selector, "label (key=value) that selects the ztunnel pods")
	fs.DurationVar(&z.Interval, "interval", z.Interval, "how often to scrape every ztunnel's readiness and metrics")
	fs.IntVar(&z.Concurrency, "concurrency", z.Concurrency, "most scrape requests in flight at once, across all ztunnels")
	z.CertInterval = collector.DefaultCertInterval
	fs.DurationVar(&z.CertInterval, "cert-interval", z.CertInterval, "how often to read each ztunnel's certificates from its config_dump (status reads them once); 0 skips them, which large clusters may want: every dump lists the whole mesh")
	fs.StringVar(&z.Admin, "admin-access", z.Admin, "how to reach ztunnel's admin port 15000: proxy (API server pod proxy), port-forward, or auto (proxy, then port-forward)")
	z.PromWindow = time.Minute
	fs.StringVar(&z.Prometheus, "prometheus", z.Prometheus, "read metrics and rates from Prometheus: its URL, or auto to find a Service labelled app.kubernetes.io/name=prometheus (reached through the API server); readiness and config_dump are then read only for the nodes shown or unhealthy")
	fs.DurationVar(&z.PromWindow, "prometheus-window", z.PromWindow, "range of the PromQL rate() behind the rates (at least two of Prometheus's scrape intervals)")
}

// metricsSource builds the Prometheus source the flags ask for (nil without
// --prometheus) and says on errOut which server it uses.
func (z *ztunnelWatchFlags) metricsSource(ctx context.Context, c *kube.Clients, errOut io.Writer) (collector.MetricsSource, error) {
	var p *collector.Prometheus
	var err error
	switch z.Prometheus {
	case "":
		return nil, nil
	case "auto":
		p, err = collector.DiscoverPrometheus(ctx, c.Kube, c.Config, z.Namespace)
		if err != nil {
			return nil, fmt.Errorf("%w; pass --prometheus URL, or drop --prometheus to scrape through the API server", err)
		}
	default:
		p, err = collector.NewPrometheus(z.Prometheus, "", nil, z.Namespace)
		if err != nil {
			return nil, UsageError{err}
		}
	}
	p.Window = z.PromWindow
	_, _ = fmt.Fprintf(errOut, "metrics from %s\n", p)
	return p, nil
}

func (z *ztunnelWatchFlags) validate() error {
	if z.Interval < 500*time.Millisecond {
		return UsageError{fmt.Errorf("--interval %s is too short; use 500ms or more", z.Interval)}
	}
	if z.Concurrency < 1 {
		return UsageError{fmt.Errorf("--concurrency %d must be at least 1", z.Concurrency)}
	}
	if z.Prometheus != "" && z.Prometheus != "auto" && !strings.HasPrefix(z.Prometheus, "http://") && !strings.HasPrefix(z.Prometheus, "https://") {
		return UsageError{fmt.Errorf("--prometheus %q must be an http(s) URL or auto", z.Prometheus)}
	}
	if z.MaxRPS < 0 {
		return UsageError{fmt.Errorf("--max-api-rps %g must not be negative; 0 removes the budget", z.MaxRPS)}
	}
	if z.PromWindow < time.Second {
		return UsageError{fmt.Errorf("--prometheus-window %s is too short; use at least two scrape intervals", z.PromWindow)}
	}
	if z.CertInterval < 0 {
		return UsageError{fmt.Errorf("--cert-interval %s must not be negative; use 0 to skip certificates", z.CertInterval)}
	}
	if k, v, ok := cutSelector(z.Selector); !ok || k == "" || v == "" {
		return UsageError{fmt.Errorf("--ztunnel-selector %q must be one key=value label", z.Selector)}
	}
	switch z.Admin {
	case "auto", "proxy", "port-forward":
	default:
		return UsageError{fmt.Errorf("--admin-access %q is not one of auto, proxy, port-forward", z.Admin)}
	}
	return nil
}

func cutSelector(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

// config turns the flags into a watcher configuration for the clients.
func (z *ztunnelWatchFlags) config(f kube.Factory, c *kube.Clients) collector.Config {
	admin := adminAccess(z.Admin, c, 0, 0)
	certs := z.CertInterval
	if certs <= 0 {
		certs = -1 // the watcher's "never"
	}
	return collector.Config{Cluster: clusterName(f, c), Namespace: z.Namespace, Selector: z.Selector,
		Interval: z.Interval, Concurrency: z.Concurrency, Admin: admin, CertInterval: certs, MaxRPS: z.MaxRPS}
}

// budgetClients rebuilds the clients with client-side throttling set for the
// budget: kube.Factory turns it off for one-shot commands, but a watcher
// that runs for hours must not exceed --max-api-rps even if a bug asked it
// to. The collector paces its scrapes below the budget itself; the QPS
// leaves room for its few LIST/WATCH and health requests.
func (z *ztunnelWatchFlags) budgetClients(c *kube.Clients) (*kube.Clients, error) {
	if z.MaxRPS <= 0 {
		return c, nil
	}
	cfg := rest.CopyConfig(c.Config)
	cfg.QPS = float32(z.MaxRPS) + 5
	cfg.Burst = int(z.MaxRPS) + 10
	return kube.NewClients(cfg)
}

// adminAccess is the one place the way to ztunnel's admin port (15000,
// localhost-only in real ztunnel) is built, for status, tui and check: mode
// "proxy" (the API server's pod proxy), "port-forward", or anything else
// for the pod proxy, then a port-forward. Zero timeouts keep the collector's
// defaults.
func adminAccess(mode string, c *kube.Clients, proxyTimeout, forwardTimeout time.Duration) collector.AdminFetcher {
	proxy := collector.ProxyAdmin{Client: c.Kube, Timeout: proxyTimeout}
	pf := collector.PortForwardAdmin{Config: c.Config, Client: c.Kube, Timeout: forwardTimeout}
	switch mode {
	case "proxy":
		return proxy
	case "port-forward":
		return pf
	}
	return collector.FallbackAdmin{proxy, pf}
}

// limitMemory sets a soft memory limit for the long-running watchers unless
// the user set GOMEMLIMIT: scraping thousands of ztunnels makes short-lived
// garbage, and without a limit the collector lets the heap grow to twice the
// live data before it runs. The live model of 5,000 nodes is a few tens of MB.
func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(128 << 20)
	}
}

// oneShotMemoryLimit is the soft memory limit of one snapshot of a fleet of
// nodes, set once they are listed: about 1.5 times the live heap measured at
// 5,000 nodes (11 MB of the binary's own and about 5 KB a node,
// docs/benchmarks.md), so the collector runs when the heap nears what the
// snapshot needs rather than at twice it. It grows with the fleet, so a
// larger one never makes the collector run without pause.
func oneShotMemoryLimit(nodes int) int64 {
	return max(48<<20, 16<<20+int64(nodes)*(8<<10))
}

// clusterName is the kubeconfig context, or the server address.
func clusterName(f kube.Factory, c *kube.Clients) string {
	if name := f.ContextName(); name != "" {
		return name
	}
	return c.Config.Host
}

// StatusOptions holds the flags of `kubectl ambient status`.
type StatusOptions struct {
	Output  OutputFlags
	Once    bool
	Window  time.Duration
	Timeout time.Duration
	Watch   ztunnelWatchFlags

	clients *kube.Clients
	factory kube.Factory
	streams genericiooptions.IOStreams
}

// NewCmdStatus builds `kubectl ambient status`.
func NewCmdStatus(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &StatusOptions{Output: NewOutputFlags(), Window: 2 * time.Second, Timeout: 60 * time.Second, factory: f, streams: streams}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print the ztunnel health of every node once; exit 1 when any node is unhealthy",
		Long: `status prints the same per-node ztunnel health as "kubectl ambient tui", once, for scripts
and CI: the node's conditions, its ztunnel pod, readiness (:15021), metrics (:15020, scraped
twice --window apart for rates), certificates (admin config_dump) and the pods it captures.
Without --once on a terminal it opens the TUI instead.

Exit status: 0 when no node is unhealthy, 1 when one is (or on an error), 2 on bad flags.`,
		Example: `  # A snapshot for a CI job
  kubectl ambient status --once

  # As JSON, for jq
  kubectl ambient status --once -o json | jq '.nodes[] | select(.state != "healthy") | .node'

  # ztunnel in kube-system (OpenShift)
  kubectl ambient status --once --ztunnel-namespace kube-system

  # Metrics and rates from the cluster's Prometheus (found by its Service's labels, reached
  # through the API server; needs list services and get services/proxy)
  kubectl ambient status --once --prometheus auto`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			if !o.Once && o.Output.Table() && isTerminal(o.streams.Out) {
				t := &TUIOptions{Watch: o.Watch, factory: o.factory, streams: o.streams}
				if err := t.Complete(); err != nil {
					return err
				}
				return t.Run(c.Context())
			}
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	o.Output.AddFlags(cmd)
	cmd.Flags().BoolVar(&o.Once, "once", false, "print one snapshot and exit, even on a terminal")
	cmd.Flags().DurationVar(&o.Window, "window", o.Window, "time between the two metric scrapes that give the rates (0 skips rates)")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", o.Timeout, "give up when the snapshot takes longer than this")
	o.Watch.bind(cmd.Flags())
	return cmd
}

// Validate checks the flags.
func (o *StatusOptions) Validate() error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	if o.Window < 0 || o.Timeout <= 0 {
		return UsageError{errors.New("--window must not be negative and --timeout must be positive")}
	}
	return o.Watch.validate()
}

// Complete builds the clients from the factory.
func (o *StatusOptions) Complete() error {
	c, err := o.factory.Clients()
	o.clients = c
	return err
}

// Run takes and prints one snapshot.
func (o *StatusOptions) Run(ctx context.Context) error {
	clients := o.clients
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	// One cheap request first, so an unreachable cluster fails at once with
	// the standard message instead of after --timeout of informer retries.
	_, err := kube.ServerVersion(ctx, clients)
	if err != nil {
		return err
	}
	limitMemory()
	// kube.NewClients' typed client already speaks protobuf: listing 5,000
	// nodes and their pods decodes several times faster than JSON.
	cfg := o.Watch.config(o.factory, clients)
	if os.Getenv("GOMEMLIMIT") == "" {
		cfg.FleetSize = func(nodes int) { debug.SetMemoryLimit(oneShotMemoryLimit(nodes)) }
	}
	if cfg.Metrics, err = o.Watch.metricsSource(ctx, clients, o.streams.ErrOut); err != nil {
		return err
	}
	snap, err := collector.Collect(ctx, clients.Kube, cfg, o.Window)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("ztunnel snapshot of %s: no answer within --timeout %s; raise --timeout", clients.Config.Host, o.Timeout)
		}
		return kube.Unreachable(clients.Config.Host, err)
	}
	if err := o.Output.Print(o.streams.Out, snapshotOutput{&snap}); err != nil {
		return err
	}
	if snap.Unhealthy() {
		return SilentError{Code: ExitFailure}
	}
	return nil
}

// PrintSnapshot writes a snapshot as a table, JSON or YAML.
func PrintSnapshot(w io.Writer, format string, s *ztunnel.Snapshot) error {
	out := OutputFlags{Format: format}
	return out.Print(w, snapshotOutput{s})
}

// snapshotOutput prints a ztunnel snapshot for OutputFlags: the TUI's table,
// and JSON/YAML written node by node (5,000 nodes in about 19 MB of heap).
// Embedding keeps the JSON/YAML the snapshot's own.
type snapshotOutput struct{ *ztunnel.Snapshot }

// PrintTable writes the snapshot as the TUI's plain table.
func (s snapshotOutput) PrintTable(w io.Writer) error { return tui.WriteTable(w, s.Snapshot) }

// WriteJSON streams the snapshot's JSON.
func (s snapshotOutput) WriteJSON(w io.Writer) error { return writeSnapshotJSON(w, s.Snapshot) }

// WriteYAML streams the snapshot's YAML.
func (s snapshotOutput) WriteYAML(w io.Writer) error { return writeSnapshotYAML(w, s.Snapshot) }

// writeSnapshotYAML writes the same bytes as PrintStructured's YAML, one
// node at a time. YAML is made from the JSON through a generic tree of maps:
// for 5,000 nodes in one piece that held about 340 MB of heap at once.
// Keys come out sorted, so "nodes" sits among the other keys of the head;
// its null value there is replaced by the list, whose items are each node's
// own YAML indented as a sequence entry.
func writeSnapshotYAML(w io.Writer, s *ztunnel.Snapshot) error {
	if len(s.Nodes) == 0 {
		return PrintStructured(w, OutputYAML, s)
	}
	head := *s
	head.Nodes = nil
	b, err := yaml.Marshal(&head)
	if err != nil {
		return err
	}
	const null = "nodes: null\n"
	at := bytes.Index(b, []byte("\n"+null)) + 1
	if !bytes.HasPrefix(b, []byte(null)) && at == 0 {
		return PrintStructured(w, OutputYAML, s)
	}
	bw := bufio.NewWriter(w)
	_, _ = bw.Write(b[:at])
	_, _ = bw.WriteString("nodes:\n")
	for i := range s.Nodes {
		nb, err := yaml.Marshal(&s.Nodes[i])
		if err != nil {
			return err
		}
		for j, line := range bytes.SplitAfter(nb, []byte("\n")) {
			switch {
			case len(line) == 0:
				continue
			case line[0] == '\n':
				// An empty line of a block scalar stays empty.
			case j == 0:
				_, _ = bw.WriteString("- ")
			default:
				_, _ = bw.WriteString("  ")
			}
			_, _ = bw.Write(line)
		}
	}
	_, _ = bw.Write(b[at+len(null):])
	return bw.Flush()
}

// writeSnapshotJSON writes the same bytes as PrintStructured's JSON, one
// node at a time: encoding 5,000 nodes in one piece (then indenting it)
// holds several copies of a 14 MB document at once, the largest single
// allocation of `status --once`.
func writeSnapshotJSON(w io.Writer, s *ztunnel.Snapshot) error {
	if len(s.Nodes) == 0 {
		return PrintStructured(w, OutputJSON, s)
	}
	head := *s
	head.Nodes = nil
	b, err := json.MarshalIndent(&head, "", "  ")
	if err != nil {
		return err
	}
	// The nodes are the last field; their nil value closes the document.
	const tail = "null\n}"
	if !bytes.HasSuffix(b, []byte(tail)) {
		return PrintStructured(w, OutputJSON, s)
	}
	bw := bufio.NewWriter(w)
	_, _ = bw.Write(b[:len(b)-len(tail)])
	_, _ = bw.WriteString("[\n")
	for i := range s.Nodes {
		nb, err := json.MarshalIndent(&s.Nodes[i], "    ", "  ")
		if err != nil {
			return err
		}
		_, _ = bw.WriteString("    ")
		_, _ = bw.Write(nb)
		if i < len(s.Nodes)-1 {
			_ = bw.WriteByte(',')
		}
		_ = bw.WriteByte('\n')
	}
	// Write errors stick in the bufio.Writer; Flush reports the first.
	_, _ = bw.WriteString("  ]\n}\n")
	return bw.Flush()
}

// isTerminal reports whether w is a terminal (a TUI can draw on it).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(f.Fd())
}
