package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/migrate"
)

// EnrollOptions holds the flags of `kubectl ambient enroll namespace`.
type EnrollOptions struct {
	Names           []string
	Selector        string
	AllInjected     bool
	DryRun          bool
	Force           bool
	Waypoint        bool
	WaypointName    string
	Verify          bool
	Timeout         time.Duration
	RestartSidecars bool
	RolloutTimeout  time.Duration
	Workers         int
	Output          OutputFlags

	selector labels.Selector
	clients  *kube.Clients
	factory  kube.Factory
	streams  genericiooptions.IOStreams
	// observer, when set (tests), also receives every progress event.
	observer migrate.Observer
}

// EnrollReport is what `enroll namespace -o json|yaml` prints.
type EnrollReport = migrate.EnrollReport

// NewCmdEnroll builds `kubectl ambient enroll` and its subcommands.
func NewCmdEnroll(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "enroll",
		Short: "Move namespaces into ambient mode (journaled, reversible, no forced restarts)",
		Example: `  # See what enrolling would do, change nothing
  kubectl ambient enroll namespace shop --dry-run

  # Enroll, then wait until istio-cni has captured every pod
  kubectl ambient enroll namespace shop payments

  # Intent versus actual for every mesh namespace
  kubectl ambient enroll status`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			return UsageError{Err: errors.New("name what to enroll: kubectl ambient enroll namespace NS, or see kubectl ambient enroll --help")}
		},
	}
	cmd.AddCommand(newCmdEnrollNamespace(f, streams, nil), newCmdEnrollStatus(f, streams))
	return cmd
}

func newCmdEnrollNamespace(f kube.Factory, streams genericiooptions.IOStreams, obs migrate.Observer) *cobra.Command {
	o := &EnrollOptions{Output: NewOutputFlags(), Verify: true, Timeout: 2 * time.Minute, RolloutTimeout: 5 * time.Minute,
		Workers: 32, WaypointName: "waypoint", factory: f, streams: streams, observer: obs}
	cmd := &cobra.Command{
		Use:     "namespace [NS...]",
		Aliases: []string{"namespaces", "ns"},
		Short:   "Enroll namespaces in ambient: journal, one guarded label patch each, then verify capture",
		Long: `Enroll namespaces in ambient mode.

For each namespace the plan (from one read of the cluster) shows the current mode, the pods
that will be captured at once, pods that keep their sidecar until their next rollout, L7
resources that need a waypoint, blockers, warnings and the exact label change. Then, unless
--dry-run, each namespace gets a journal annotation and the label change in one patch
(istio.io/dataplane-mode=ambient added, istio-injection and istio.io/rev removed), guarded by
its resourceVersion. Finally the command watches the pods until istio-cni reports them
captured (ambient.istio.io/redirection=enabled). Nothing is restarted unless
--restart-sidecars is given. Undo with kubectl ambient unenroll namespace.`,
		Example: `  kubectl ambient enroll namespace shop --dry-run
  kubectl ambient enroll namespace shop payments --timeout 5m
  kubectl ambient enroll namespace --selector team=checkout -o json
  kubectl ambient enroll namespace --all-injected --restart-sidecars
  kubectl ambient enroll namespace shop --waypoint`,
		RunE: func(c *cobra.Command, args []string) error {
			o.Names = args
			if err := o.Validate(); err != nil {
				return err
			}
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.Selector, "selector", "l", "", "enroll namespaces matching this label selector")
	fl.BoolVar(&o.AllInjected, "all-injected", false, "enroll every namespace with sidecar injection on (istio-injection=enabled or istio.io/rev)")
	fl.BoolVar(&o.DryRun, "dry-run", false, "print the plan and change nothing")
	fl.BoolVar(&o.Force, "force", false, "enroll namespaces that have blockers (EnvoyFilter, Sidecar, PeerAuthentication DISABLE)")
	fl.BoolVar(&o.Waypoint, "waypoint", false, "create a waypoint Gateway (class istio-waypoint) where none exists and label the namespace to use it once Programmed")
	fl.StringVar(&o.WaypointName, "waypoint-name", o.WaypointName, "name of the waypoint Gateway --waypoint creates")
	fl.BoolVar(&o.Verify, "verify", o.Verify, "watch pods until istio-cni has captured them")
	fl.DurationVar(&o.Timeout, "timeout", o.Timeout, "how long to wait for capture (and for waypoints)")
	fl.BoolVar(&o.RestartSidecars, "restart-sidecars", false, "restart workloads that still run sidecars, one at a time, respecting PodDisruptionBudgets")
	fl.DurationVar(&o.RolloutTimeout, "rollout-timeout", o.RolloutTimeout, "how long to wait for each restarted workload's rollout")
	fl.IntVar(&o.Workers, "workers", o.Workers, "namespaces patched concurrently")
	o.Output.AddFlags(cmd)
	return cmd
}

// parseSelection parses --selector (nil when empty) and checks --workers,
// as enroll and unenroll take them.
func parseSelection(selector string, workers int) (labels.Selector, error) {
	var sel labels.Selector
	if selector != "" {
		s, err := labels.Parse(selector)
		if err != nil {
			return nil, UsageError{Err: fmt.Errorf("invalid --selector %q: %w", selector, err)}
		}
		sel = s
	}
	if workers < 1 {
		return nil, UsageError{Err: fmt.Errorf("--workers must be at least 1, got %d", workers)}
	}
	return sel, nil
}

// Validate checks flags and arguments before any cluster call.
func (o *EnrollOptions) Validate() error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	if len(o.Names) == 0 && o.Selector == "" && !o.AllInjected {
		return UsageError{Err: errors.New("name at least one namespace, or pass --selector or --all-injected")}
	}
	sel, err := parseSelection(o.Selector, o.Workers)
	if err != nil {
		return err
	}
	o.selector = sel
	if o.Timeout <= 0 {
		return UsageError{Err: fmt.Errorf("--timeout must be positive, got %s", o.Timeout)}
	}
	if o.RestartSidecars && !o.Verify {
		return UsageError{Err: errors.New("--restart-sidecars needs --verify (it restarts the workloads verification finds)")}
	}
	return nil
}

// Complete builds the clients from the factory.
func (o *EnrollOptions) Complete() error {
	c, err := o.factory.Clients()
	o.clients = c
	return err
}

// Run enrolls (migrate.Enroll) and prints the plan, then what each step did.
func (o *EnrollOptions) Run(ctx context.Context) error {
	cfg := migrate.EnrollConfig{
		Selection: migrate.Selection{Names: o.Names, Selector: o.selector, AllInjected: o.AllInjected},
		Plan:      migrate.PlanOptions{Force: o.Force, Waypoint: o.Waypoint, WaypointName: o.WaypointName},
		DryRun:    o.DryRun, Verify: o.Verify, RestartSidecars: o.RestartSidecars,
		Workers: o.Workers, Timeout: o.Timeout, RolloutTimeout: o.RolloutTimeout, Observer: o.progress(),
	}
	if o.Output.Table() {
		cfg.OnPlan = func(p *migrate.Plan) { printPlan(o.streams.Out, p, o.Verify, o.RestartSidecars) }
	}
	rep, err := migrate.Enroll(ctx, o.clients, cfg)
	if rep == nil {
		return err
	}
	if perr := o.Output.Print(o.streams.Out, enrollTable{rep}); perr != nil {
		return perr
	}
	return err
}

// enrollTable prints an enrollment's outcome after its plan (OnPlan printed
// the plan table before the progress lines).
type enrollTable struct{ *migrate.EnrollReport }

// PrintTable writes the results, the capture verification and the restarts.
func (r enrollTable) PrintTable(w io.Writer) error {
	printResults(w, r.Results)
	if r.Verify != nil {
		printVerify(w, r.Verify)
	}
	if len(r.Restarts) > 0 {
		printRestarts(w, r.Restarts)
	}
	return nil
}

// progress reports events on ErrOut (and to the test observer).
func (o *EnrollOptions) progress() migrate.Observer {
	return func(e migrate.Event) {
		if o.observer != nil {
			o.observer(e)
		}
		var line string
		switch e.Step {
		case migrate.StepPatched:
			line = fmt.Sprintf("namespace %s enrolled (journal written)", e.Namespace)
		case migrate.StepWaypointCreated:
			line = fmt.Sprintf("namespace %s: waypoint %s created, waiting until Programmed", e.Namespace, e.Message)
		case migrate.StepJournaled:
			line = fmt.Sprintf("namespace %s: journaled, next: %s", e.Namespace, e.Message)
		case migrate.StepCopyCreated:
			line = fmt.Sprintf("namespace %s: AuthorizationPolicy %s created (targets the waypoint)", e.Namespace, e.Message)
		case migrate.StepOriginalDeleted:
			line = fmt.Sprintf("namespace %s: selector-based AuthorizationPolicy %s deleted", e.Namespace, e.Message)
		case migrate.StepWaypointReady:
			line = fmt.Sprintf("namespace %s now uses waypoint %s", e.Namespace, e.Message)
		case migrate.StepVerifyStarted, migrate.StepVerifyProgress:
			line = "verifying capture: " + e.Message
		case migrate.StepWaitingPDB:
			line = fmt.Sprintf("namespace %s: PodDisruptionBudget %s allows no disruption yet, waiting", e.Namespace, e.Message)
		case migrate.StepRestarting:
			line = fmt.Sprintf("namespace %s: restarting %s", e.Namespace, e.Message)
		case migrate.StepRestarted:
			line = fmt.Sprintf("namespace %s: %s rolled out", e.Namespace, e.Message)
		}
		if line != "" {
			fmt.Fprintln(o.streams.ErrOut, line)
		}
	}
}

func printPlan(w io.Writer, p *migrate.Plan, verify, restart bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tMODE\tACTION\tPODS\tCAPTURE\tSIDECARS (NO HBONE)\tHOSTNET\tOPTED OUT\tL7\tBLOCKERS\tWAYPOINT\tLABEL CHANGES")
	for _, n := range p.Namespaces {
		wp := "no"
		switch {
		case n.WaypointPresent:
			wp = "yes"
		case n.WaypointCreate != "":
			wp = "create " + n.WaypointCreate
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d (%d)\t%d\t%d\t%d\t%d\t%s\t%s\n", n.Name, n.Mode, n.Action, n.Pods.Total, n.Pods.Capture,
			n.Pods.Sidecar, n.Pods.SidecarNoHBONE, n.Pods.HostNetwork, n.Pods.OptedOut, len(n.L7), len(n.Blockers), wp, n.Changes)
	}
	_ = tw.Flush()
	for _, s := range p.Skipped {
		fmt.Fprintf(w, "skipped %s: %s\n", s.Name, s.Reason)
	}
	for _, m := range p.MeshWarnings {
		fmt.Fprintf(w, "mesh warning: %s\n", m)
	}
	for _, n := range p.Namespaces {
		for _, b := range n.Blockers {
			fmt.Fprintf(w, "%s: blocker: %s %s: %s\n", n.Name, b.Kind, b.Name, b.Reason)
		}
		for _, r := range n.L7 {
			fmt.Fprintf(w, "%s: needs a waypoint: %s %s: %s\n", n.Name, r.Kind, r.Name, r.Reason)
		}
		for _, x := range n.Warnings {
			fmt.Fprintf(w, "%s: warning: %s\n", n.Name, x)
		}
	}
	for i := range p.Namespaces {
		n := &p.Namespaces[i]
		steps := n.L7Steps(verify, restart)
		if len(steps) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s: steps, in Istio's migration order:\n", n.Name)
		for j, s := range steps {
			fmt.Fprintf(w, "  %d. %s\n", j+1, s)
		}
		for _, m := range n.Moves {
			b, err := yaml.Marshal(m.CopyObject)
			if err != nil {
				continue
			}
			fmt.Fprintf(w, "---\n%s", b)
		}
	}
}

func printResults(w io.Writer, rs []migrate.Result) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tOUTCOME\tDETAIL")
	for _, r := range rs {
		d := r.Message
		if r.Error != "" {
			d = r.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Namespace, r.Outcome, d)
	}
	_ = tw.Flush()
}

func printVerify(w io.Writer, v *migrate.VerifyReport) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tCAPTURED\tPENDING\tMISSING\tAWAITING ROLLOUT\tHOSTNET\tOPTED OUT")
	for _, n := range v.Namespaces {
		fmt.Fprintf(tw, "%s\t%d/%d\t%d\t%d\t%d\t%d\t%d\n", n.Namespace, n.Captured, n.Expected, n.Pending, n.Missing, n.AwaitingRollout, n.HostNetwork, n.OptedOut)
	}
	_ = tw.Flush()
	const maxPods = 20
	shown := 0
	for _, n := range v.Namespaces {
		for _, p := range n.Pods {
			if shown == maxPods {
				fmt.Fprintln(w, "... more pods not shown; use -o json for all")
				return
			}
			fmt.Fprintf(w, "%s/%s: %s: %s\n", n.Namespace, p.Pod, p.State, p.Reason)
			shown++
		}
	}
}

func printRestarts(w io.Writer, rs []migrate.RestartResult) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tOUTCOME\tDETAIL")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Workload, r.Outcome, r.Message)
	}
	_ = tw.Flush()
}

// EnrollStatusOptions holds the flags of `kubectl ambient enroll status`.
type EnrollStatusOptions struct {
	Names  []string
	Output OutputFlags

	clients *kube.Clients
	factory kube.Factory
	streams genericiooptions.IOStreams
}

func newCmdEnrollStatus(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &EnrollStatusOptions{Output: NewOutputFlags(), factory: f, streams: streams}
	cmd := &cobra.Command{
		Use:   "status [NS...]",
		Short: "Intent versus actual: namespace labels against the pods istio-cni has captured",
		Example: `  kubectl ambient enroll status
  kubectl ambient enroll status shop -o yaml`,
		RunE: func(c *cobra.Command, args []string) error {
			o.Names = args
			if err := o.Output.Validate(); err != nil {
				return err
			}
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	o.Output.AddFlags(cmd)
	return cmd
}

// Complete builds the clients from the factory.
func (o *EnrollStatusOptions) Complete() error {
	c, err := o.factory.Clients()
	o.clients = c
	return err
}

// Run reads the cluster once and prints intent versus actual.
func (o *EnrollStatusOptions) Run(ctx context.Context) error {
	clients := o.clients
	snap, err := migrate.ReadSnapshot(ctx, clients.Kube, nil, nil)
	if err != nil {
		return kube.Unreachable(clients.Config.Host, err)
	}
	st, err := migrate.BuildStatus(snap, o.Names)
	if err != nil {
		return err
	}
	if !o.Output.Table() {
		return o.Output.Print(o.streams.Out, map[string]any{"namespaces": st})
	}
	if len(st) == 0 {
		fmt.Fprintln(o.streams.ErrOut, "no namespace is enrolled, injected or captured")
		return nil
	}
	sort.Slice(st, func(i, j int) bool { return st[i].Namespace < st[j].Namespace })
	tw := tabwriter.NewWriter(o.streams.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tINTENT\tMODE\tJOURNAL\tPODS\tCAPTURED\tPENDING\tMISSING\tSIDECARS\tOPTED OUT\tHOSTNET\tSTATE")
	for _, s := range st {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", s.Namespace, s.Intent, s.Mode, yesNo(s.Journal), s.Pods, s.Captured,
			s.Pending, s.Missing, s.Sidecars, s.OptedOut, s.HostNetwork, s.Summary)
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
