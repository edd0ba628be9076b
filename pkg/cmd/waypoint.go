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

	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/waypoint"
)

// NewCmdWaypoint builds `kubectl ambient waypoint`.
func NewCmdWaypoint(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "waypoint",
		Short: "Create, list and delete waypoints (Gateways of class istio-waypoint) and show what binds to them",
		Long: `A waypoint is the Envoy proxy that enforces L7 policy and routing for ambient workloads. It is
declared as a Gateway API Gateway of class istio-waypoint with one HBONE listener on port 15008;
istiod deploys it and reports it Programmed. Namespaces, Services, ServiceEntries and pods use it
through the istio.io/use-waypoint label, and istiod writes the istio.io/WaypointBound condition on
the Services and ServiceEntries it bound.

A use-waypoint label naming a missing or unready waypoint fails open (traffic skips L7 policy):
apply waits until the waypoint is Programmed, list and status show dangling labels, and delete
refuses a waypoint that something still uses.`,
		Example: `  kubectl ambient waypoint apply -n shop
  kubectl ambient waypoint list -A
  kubectl ambient waypoint status -n shop
  kubectl ambient waypoint delete -n shop`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			return UsageError{Err: errors.New("name a subcommand: apply, list, status or delete")}
		},
	}
	cmd.AddCommand(newCmdWaypointApply(f, streams), newCmdWaypointList(f, streams), newCmdWaypointStatus(f, streams), newCmdWaypointDelete(f, streams))
	return cmd
}

// waypointBase holds what every waypoint subcommand shares.
type waypointBase struct {
	Name      string
	Namespace string
	Output    OutputFlags

	factory kube.Factory
	streams genericiooptions.IOStreams
	clients *kube.Clients
}

// complete resolves the namespace (-n or the kubeconfig's) and the clients.
func (b *waypointBase) complete(needNS bool) error {
	if needNS && b.Namespace == "" {
		ns, _, err := b.factory.Namespace()
		if err != nil {
			return err
		}
		b.Namespace = ns
	}
	c, err := b.factory.Clients()
	b.clients = c
	return err
}

func (b *waypointBase) nameArg(args []string) error {
	if len(args) > 1 {
		return UsageError{Err: fmt.Errorf("name at most one waypoint, got %d", len(args))}
	}
	if len(args) == 1 {
		b.Name = args[0]
	}
	return b.Output.Validate()
}

// WaypointApplyOptions holds the flags of `waypoint apply`.
type WaypointApplyOptions struct {
	waypointBase
	For     string
	Wait    bool
	Timeout time.Duration
	DryRun  bool
}

func newCmdWaypointApply(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &WaypointApplyOptions{waypointBase: waypointBase{Name: waypoint.DefaultName, Output: NewOutputFlags(), factory: f, streams: streams},
		For: "service", Wait: true, Timeout: 2 * time.Minute}
	c := &cobra.Command{
		Use:   "apply [NAME]",
		Short: "Create or update a waypoint and wait until istiod has programmed it",
		Long: `Create the waypoint Gateway NAME (default "waypoint") in the namespace: class istio-waypoint, one
HBONE listener on 15008, labelled istio.io/waypoint-for with --for. An existing waypoint keeps its
spec; only its waypoint-for label is brought to --for. Then wait until the Gateway's Programmed
condition is True (at most --timeout): the command exits non-zero if istiod never programs it, so
a script can label istio.io/use-waypoint only after it succeeds. This command does not label
anything to use the waypoint.`,
		Example: `  kubectl ambient waypoint apply -n shop
  kubectl ambient waypoint apply shop-waypoint -n shop --for all --timeout 5m
  kubectl ambient waypoint apply -n shop --dry-run -o yaml`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.nameArg(args); err != nil {
				return err
			}
			cfg := o.config()
			if err := cfg.Validate(); err != nil {
				return UsageError{Err: fmt.Errorf("invalid --for: %w", err)}
			}
			if o.Timeout <= 0 {
				return UsageError{Err: fmt.Errorf("--timeout must be above zero, got %s", o.Timeout)}
			}
			if err := o.complete(true); err != nil {
				return err
			}
			c.SilenceUsage = true
			return o.Run(c.Context())
		},
	}
	c.Flags().StringVar(&o.For, "for", o.For, "traffic the waypoint handles (istio.io/waypoint-for): service, workload, all or none")
	c.Flags().BoolVar(&o.Wait, "wait", o.Wait, "wait until the waypoint is Programmed")
	c.Flags().DurationVar(&o.Timeout, "timeout", o.Timeout, "how long to wait for Programmed")
	c.Flags().BoolVar(&o.DryRun, "dry-run", false, "have the API server validate the Gateway and store nothing; print it")
	o.Output.AddFlags(c)
	return c
}

func (o *WaypointApplyOptions) config() waypoint.ApplyConfig {
	return waypoint.ApplyConfig{Namespace: o.Namespace, Name: o.Name, For: o.For, Wait: o.Wait, Timeout: o.Timeout, DryRun: o.DryRun}
}

// Run applies the waypoint (waypoint.Apply) and prints what happened.
func (o *WaypointApplyOptions) Run(ctx context.Context) error {
	rep, err := waypoint.Apply(ctx, o.clients, o.config())
	if rep == nil {
		return err
	}
	if perr := o.Output.Print(o.streams.Out, applyTable{rep}); perr != nil {
		return perr
	}
	return err
}

type applyTable struct{ *waypoint.ApplyReport }

// PrintTable writes one line per waypoint.
func (r applyTable) PrintTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tFOR\tACTION\tPROGRAMMED\tDETAIL")
	d := r.Reason
	if r.Message != "" {
		d += ": " + r.Message
	}
	if r.Waited != "" {
		d += " (waited " + r.Waited + ")"
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Namespace, r.Name, r.For, r.Action, r.Programmed, d)
	return tw.Flush()
}

// WaypointListOptions holds the flags of `waypoint list` and `waypoint status`.
type WaypointListOptions struct {
	waypointBase
	AllNamespaces bool
	status        bool
}

func newCmdWaypointList(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &WaypointListOptions{waypointBase: waypointBase{Output: NewOutputFlags(), factory: f, streams: streams}}
	c := &cobra.Command{
		Use:   "list",
		Short: "List waypoints with what uses them and whether istiod bound it",
		Long: `List the waypoints in the namespace (or every namespace with -A): whether each is Programmed, how many
namespaces, Services, ServiceEntries and pods use it, and how many of those Services and
ServiceEntries istiod reports bound (istio.io/WaypointBound=True). Labels that name no waypoint
are listed after the table: their traffic skips L7 policy.`,
		Example: `  kubectl ambient waypoint list -n shop
  kubectl ambient waypoint list -A -o json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Output.Validate(); err != nil {
				return err
			}
			if err := o.complete(!o.AllNamespaces); err != nil {
				return err
			}
			c.SilenceUsage = true
			return o.Run(c.Context())
		},
	}
	c.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "list waypoints in every namespace")
	o.Output.AddFlags(c)
	return c
}

func newCmdWaypointStatus(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &WaypointListOptions{waypointBase: waypointBase{Output: NewOutputFlags(), factory: f, streams: streams}, status: true}
	c := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show waypoints in detail: every namespace, Service, ServiceEntry and pod that uses each, bound or not",
		Long: `Show each waypoint (NAME, or every waypoint in the namespace, or with -A in every namespace) with its
Programmed condition and every object that uses it: namespaces, Services and ServiceEntries (with
istiod's istio.io/WaypointBound condition) and pods labelled istio.io/use-waypoint. Exits non-zero
when a waypoint is not Programmed, a Service or ServiceEntry is not bound, or a use-waypoint label
names no waypoint.`,
		Example: `  kubectl ambient waypoint status -n shop
  kubectl ambient waypoint status shop-waypoint -n shop -o yaml
  kubectl ambient waypoint status -A`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.nameArg(args); err != nil {
				return err
			}
			if o.AllNamespaces && o.Name != "" {
				return UsageError{Err: errors.New("a NAME needs one namespace: drop -A or the name")}
			}
			if err := o.complete(!o.AllNamespaces); err != nil {
				return err
			}
			c.SilenceUsage = true
			return o.Run(c.Context())
		},
	}
	c.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "show waypoints in every namespace")
	o.Output.AddFlags(c)
	return c
}

// Run lists waypoints (waypoint.List) and prints them.
func (o *WaypointListOptions) Run(ctx context.Context) error {
	ns := o.Namespace
	if o.AllNamespaces {
		ns = ""
	}
	rep, err := waypoint.List(ctx, o.clients, waypoint.ListConfig{Namespace: ns, Name: o.Name})
	if rep == nil {
		return err
	}
	var p TablePrinter = listTable{rep}
	if o.status {
		p = statusTable{rep}
	}
	if perr := o.Output.Print(o.streams.Out, p); perr != nil {
		return perr
	}
	if err != nil {
		return err
	}
	if len(rep.Waypoints) == 0 && len(rep.Dangling) == 0 {
		fmt.Fprintln(o.streams.ErrOut, "no waypoint found; create one with kubectl ambient waypoint apply")
	}
	if o.status {
		return waypointProblems(rep)
	}
	return nil
}

// ErrWaypointUnhealthy marks a status run that found a waypoint not
// Programmed, an unbound Service or ServiceEntry, or a dangling label.
var ErrWaypointUnhealthy = errors.New("waypoint status found problems")

// waypointProblems turns what status shows as not healthy into a failure
// exit code.
func waypointProblems(rep *waypoint.Report) error {
	var probs []string
	for _, w := range rep.Waypoints {
		if w.Programmed != "True" {
			probs = append(probs, fmt.Sprintf("waypoint %s/%s is not Programmed", w.Namespace, w.Name))
		}
		for _, b := range append(append([]waypoint.Binding{}, w.Services...), w.ServiceEntries...) {
			if b.Bound != "True" {
				probs = append(probs, fmt.Sprintf("%s %s/%s is not bound (%s=%s)", b.Kind, b.Namespace, b.Name, "istio.io/WaypointBound", b.Bound))
			}
		}
	}
	for _, d := range rep.Dangling {
		probs = append(probs, fmt.Sprintf("%s %s uses waypoint %s, which does not exist", d.Kind, qualified(d.Namespace, d.Name), d.Waypoint))
	}
	if len(probs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrWaypointUnhealthy, strings.Join(probs, "; "))
}

func qualified(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

type listTable struct{ *waypoint.Report }

// PrintTable writes one row per waypoint, then the dangling labels.
func (r listTable) PrintTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tFOR\tPROGRAMMED\tNAMESPACES\tSERVICES (BOUND)\tSERVICEENTRIES (BOUND)\tPODS\tOURS")
	for _, wp := range r.Waypoints {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%t\n", wp.Namespace, wp.Name, wp.For, wp.Programmed, len(wp.Namespaces),
			boundCount(wp.Services), boundCount(wp.ServiceEntries), len(wp.Workloads), wp.Ours)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printDangling(w, r.Dangling)
	return nil
}

func boundCount(bs []waypoint.Binding) string {
	n := 0
	for _, b := range bs {
		if b.Bound == "True" {
			n++
		}
	}
	return fmt.Sprintf("%d (%d)", len(bs), n)
}

func printDangling(w io.Writer, ds []waypoint.Binding) {
	if len(ds) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%d use-waypoint label(s) name no waypoint; their traffic skips L7 policy:\n", len(ds))
	for _, d := range ds {
		fmt.Fprintf(w, "  %s %s -> %s\n", d.Kind, qualified(d.Namespace, d.Name), d.Waypoint)
	}
}

type statusTable struct{ *waypoint.Report }

// PrintTable writes one block per waypoint with every user.
func (r statusTable) PrintTable(w io.Writer) error {
	for i, wp := range r.Waypoints {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "Waypoint %s/%s (for %s, ours: %t)\n", wp.Namespace, wp.Name, wp.For, wp.Ours)
		fmt.Fprintf(w, "  Programmed: %s %s %s\n", wp.Programmed, wp.Reason, wp.Message)
		if len(wp.Addresses) > 0 {
			fmt.Fprintf(w, "  Addresses:  %s\n", strings.Join(wp.Addresses, ", "))
		}
		if wp.Users() == 0 {
			fmt.Fprintln(w, "  Used by:    nothing (no istio.io/use-waypoint label names it)")
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  KIND\tNAME\tBOUND\tDETAIL")
		for _, n := range wp.Namespaces {
			fmt.Fprintf(tw, "  Namespace\t%s\t-\tnamespace label\n", n)
		}
		for _, b := range append(append(append([]waypoint.Binding{}, wp.Services...), wp.ServiceEntries...), wp.Workloads...) {
			bound, detail := b.Bound, strings.TrimSpace(b.Reason+" "+b.Message)
			if bound == "" {
				bound, detail = "-", "pod label"
			}
			fmt.Fprintf(tw, "  %s\t%s/%s\t%s\t%s\n", b.Kind, b.Namespace, b.Name, bound, detail)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	printDangling(w, r.Dangling)
	return nil
}

// WaypointDeleteOptions holds the flags of `waypoint delete`.
type WaypointDeleteOptions struct {
	waypointBase
	Force  bool
	DryRun bool
}

func newCmdWaypointDelete(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &WaypointDeleteOptions{waypointBase: waypointBase{Name: waypoint.DefaultName, Output: NewOutputFlags(), factory: f, streams: streams}}
	c := &cobra.Command{
		Use:   "delete [NAME]",
		Short: "Delete a waypoint nothing uses any more",
		Long: `Delete the waypoint Gateway NAME (default "waypoint"); istiod then removes its Deployment and Service.
It refuses while a namespace, Service, ServiceEntry or pod still names the waypoint in
istio.io/use-waypoint: their traffic would skip L7 policy. Remove those labels first, or pass
--force. Deleting a waypoint that does not exist succeeds.`,
		Example: `  kubectl ambient waypoint delete -n shop
  kubectl ambient waypoint delete shop-waypoint -n shop --dry-run`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.nameArg(args); err != nil {
				return err
			}
			if err := o.complete(true); err != nil {
				return err
			}
			c.SilenceUsage = true
			return o.Run(c.Context())
		},
	}
	c.Flags().BoolVar(&o.Force, "force", false, "delete even while objects still use the waypoint (their traffic then skips L7 policy)")
	c.Flags().BoolVar(&o.DryRun, "dry-run", false, "have the API server validate the delete and remove nothing")
	o.Output.AddFlags(c)
	return c
}

// Run deletes the waypoint (waypoint.Delete) and prints the outcome.
func (o *WaypointDeleteOptions) Run(ctx context.Context) error {
	rep, err := waypoint.Delete(ctx, o.clients, waypoint.DeleteConfig{Namespace: o.Namespace, Name: o.Name, Force: o.Force, DryRun: o.DryRun})
	if rep == nil {
		return err
	}
	if perr := o.Output.Print(o.streams.Out, deleteTable{rep}); perr != nil {
		return perr
	}
	return err
}

type deleteTable struct{ *waypoint.DeleteReport }

// PrintTable writes the outcome and any users.
func (r deleteTable) PrintTable(w io.Writer) error {
	fmt.Fprintf(w, "waypoint %s/%s %s\n", r.Namespace, r.Name, r.Action)
	for _, u := range r.Users {
		fmt.Fprintf(w, "  used by %s %s\n", u.Kind, qualified(u.Namespace, u.Name))
	}
	return nil
}
