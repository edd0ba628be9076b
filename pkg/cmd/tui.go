package cmd

import (
	"context"
	"fmt"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel/collector"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/tui"
)

// TUIOptions holds the flags of `kubectl ambient tui`.
type TUIOptions struct {
	Watch ztunnelWatchFlags

	clients *kube.Clients
	factory kube.Factory
	streams genericiooptions.IOStreams
}

// NewCmdTUI builds `kubectl ambient tui`.
func NewCmdTUI(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &TUIOptions{factory: f, streams: streams}
	cmd := &cobra.Command{
		Use:   "tui",
		Short: "Watch the ztunnel health of every node in a terminal UI, sickest first",
		Long: `tui opens a live table of every node and its ztunnel: readiness, restarts, proxies,
connection and failure rates, captured pods, and why a node is unhealthy. It watches
nodes, namespaces and pods (one LIST and one WATCH each) and scrapes each ztunnel's
readiness and metrics through the API server's pod proxy every --interval.

Keys: arrows or j/k move, / filters, enter opens a node (workloads, certificates,
recent access log), l shows the ztunnel's logs, esc goes back, s changes the sort,
? shows help, q quits. When the output is not a terminal it prints one snapshot, as
"kubectl ambient status --once" does.`,
		Example: `  kubectl ambient tui
  kubectl ambient tui --context prod --interval 10s

  # Metrics from the cluster's Prometheus: one query per refresh instead of a scrape per node
  kubectl ambient tui --prometheus auto

  # Not a terminal: a snapshot (exit 1 when a node is unhealthy)
  kubectl ambient tui | cat`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Watch.validate(); err != nil {
				return err
			}
			if !isTerminal(o.streams.Out) {
				s := &StatusOptions{Output: NewOutputFlags(), Once: true, Window: o.Watch.Interval, Timeout: time.Minute, Watch: o.Watch, factory: o.factory, streams: o.streams}
				if err := s.Complete(); err != nil {
					return err
				}
				return s.Run(c.Context())
			}
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	o.Watch.bind(cmd.Flags())
	// Only the TUI has a budget: it runs for hours; status --once is one
	// burst and would take minutes at 50 requests/s on a large cluster.
	o.Watch.MaxRPS = 50
	cmd.Flags().Float64Var(&o.Watch.MaxRPS, "max-api-rps", o.Watch.MaxRPS, "most requests per second sent through the API server, sustained: each round reads as many ztunnels as fit, the ones shown or unhealthy first (0: no budget)")
	return cmd
}

// Complete builds the clients from the factory.
func (o *TUIOptions) Complete() error {
	c, err := o.factory.Clients()
	if err != nil {
		return err
	}
	o.clients, err = o.Watch.budgetClients(c)
	return err
}

// Run starts the watcher and the Bubble Tea program until the user quits.
func (o *TUIOptions) Run(ctx context.Context) error {
	clients := o.clients
	// client-go logs watch retries to stderr through klog; on the TUI's
	// screen they would tear the frame. The TUI shows the connection state.
	klog.SetLogger(logr.Discard())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	limitMemory()
	cfg := o.Watch.config(o.factory, clients)
	ms, err := o.Watch.metricsSource(ctx, clients, o.streams.ErrOut)
	if err != nil {
		return err
	}
	cfg.Metrics = ms
	w := collector.New(clients.Kube, cfg)
	go func() { _ = w.Run(ctx) }()
	// The watcher reads the rows on screen and the open node first.
	m := tui.New(tui.Options{Updates: w.Updates(), Fetcher: w, Context: ctx, Cluster: cfg.Cluster, Focus: w, Interval: cfg.Interval})
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(o.streams.In), tea.WithOutput(o.streams.Out))
	if _, err := p.Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("run the terminal UI: %w", err)
	}
	return nil
}
