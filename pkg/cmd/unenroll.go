package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/migrate"
)

// UnenrollOptions holds the flags of `kubectl ambient unenroll namespace`.
type UnenrollOptions struct {
	Names    []string
	Selector string
	All      bool
	Workers  int
	Output   OutputFlags
	DryRun   bool
	Timeout  time.Duration

	selector labels.Selector
	clients  *kube.Clients
	factory  kube.Factory
	streams  genericiooptions.IOStreams
}

// NewCmdUnenroll builds `kubectl ambient unenroll`.
func NewCmdUnenroll(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "unenroll",
		Short: "Take namespaces out of ambient mode, restoring their journaled labels",
		Example: `  kubectl ambient unenroll namespace shop
  kubectl ambient unenroll namespace --all`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			return UsageError{Err: errors.New("name what to unenroll: kubectl ambient unenroll namespace NS")}
		},
	}
	o := &UnenrollOptions{Output: NewOutputFlags(), Workers: 32, Timeout: 2 * time.Minute, factory: f, streams: streams}
	ns := &cobra.Command{
		Use:     "namespace [NS...]",
		Aliases: []string{"namespaces", "ns"},
		Short:   "Restore the labels a namespace had before enroll (from its journal); safe to run twice",
		Long: `Restore the labels each namespace had before kubectl ambient enroll, exactly as recorded in
its journal annotation, and remove the journal (one patch guarded by resourceVersion). A
waypoint the enrollment created is deleted. Without a journal only the
istio.io/dataplane-mode label is removed, and the output says so. Sidecars come back only when
workloads next roll out; captured pods are released by istio-cni at once.

A namespace enrolled with L7 (a waypoint and waypoint-targeted copies of its selector-based
AuthorizationPolicies) is undone in this order: the originals are re-created from the journal,
the labels restored (a previous istio.io/use-waypoint value is set back only once that waypoint
is Programmed, waiting up to --timeout), the copies deleted, the waypoint enroll created deleted
(one the namespace used before, or one that lost our managed-by label, is kept), then the
journal removed. --dry-run lists these steps per namespace, and the real run reports the steps
it took, in the same form.`,
		Example: `  kubectl ambient unenroll namespace shop payments
  kubectl ambient unenroll namespace shop --dry-run
  kubectl ambient unenroll namespace shop --dry-run -o yaml
  kubectl ambient unenroll namespace --selector team=checkout
  kubectl ambient unenroll namespace --all -o json`,
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
	ns.Flags().StringVarP(&o.Selector, "selector", "l", "", "unenroll namespaces matching this label selector")
	ns.Flags().BoolVar(&o.All, "all", false, "unenroll every namespace that is enrolled or carries a journal")
	ns.Flags().IntVar(&o.Workers, "workers", o.Workers, "namespaces patched concurrently")
	ns.Flags().BoolVar(&o.DryRun, "dry-run", false, "list, in order, what each namespace would get (labels, restored policies, deleted copies and waypoint); the API server validates the label patch and stores nothing")
	ns.Flags().DurationVar(&o.Timeout, "timeout", o.Timeout, "how long to wait for a waypoint a restored istio.io/use-waypoint label names to be Programmed")
	o.Output.AddFlags(ns)
	cmd.AddCommand(ns)
	return cmd
}

// Validate checks flags and arguments.
func (o *UnenrollOptions) Validate() error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	if o.Timeout <= 0 {
		return UsageError{Err: fmt.Errorf("--timeout must be positive, got %s", o.Timeout)}
	}
	if len(o.Names) == 0 && o.Selector == "" && !o.All {
		return UsageError{Err: errors.New("name at least one namespace, or pass --selector or --all")}
	}
	sel, err := parseSelection(o.Selector, o.Workers)
	o.selector = sel
	return err
}

// Complete builds the clients from the factory.
func (o *UnenrollOptions) Complete() error {
	c, err := o.factory.Clients()
	o.clients = c
	return err
}

// Run unenrolls (migrate.UnenrollNamespaces) and prints each namespace's result.
func (o *UnenrollOptions) Run(ctx context.Context) error {
	rep, err := migrate.UnenrollNamespaces(ctx, o.clients, migrate.UnenrollConfig{
		Selection: migrate.UnenrollSelection{Names: o.Names, Selector: o.selector, All: o.All},
		Workers:   o.Workers, DryRun: o.DryRun, Timeout: o.Timeout,
	})
	if rep == nil {
		return err
	}
	if len(rep.Namespaces) == 0 {
		fmt.Fprintln(o.streams.ErrOut, "no namespace matched; nothing to do")
		return nil
	}
	if perr := o.Output.Print(o.streams.Out, resultsTable{rep}); perr != nil {
		return perr
	}
	return err
}

// resultsTable prints unenroll results as enroll prints its own.
type resultsTable struct{ *migrate.UnenrollReport }

// PrintTable writes one row per namespace, then each namespace's steps in
// the order they would be (dry run) or were taken.
func (r resultsTable) PrintTable(w io.Writer) error {
	rs := make([]migrate.Result, len(r.Results))
	for i, res := range r.Results {
		rs[i] = res
		if len(res.Steps) > 0 {
			rs[i].Message = fmt.Sprintf("%d step(s), listed below", len(res.Steps))
			if res.Outcome == migrate.OutcomeFailed {
				rs[i].Message = ""
			}
		}
	}
	printResults(w, rs)
	for _, res := range r.Results {
		if len(res.Steps) == 0 {
			continue
		}
		verb := "steps taken"
		if res.Outcome == migrate.OutcomeWouldUnenroll {
			verb = "steps, in the order unenroll takes them"
		}
		fmt.Fprintf(w, "\n%s: %s:\n", res.Namespace, verb)
		for i, s := range res.Steps {
			fmt.Fprintf(w, "  %d. %s\n", i+1, s)
		}
	}
	return nil
}
