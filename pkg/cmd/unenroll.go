package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"

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
	o := &UnenrollOptions{Output: NewOutputFlags(), Workers: 32, factory: f, streams: streams}
	ns := &cobra.Command{
		Use:     "namespace [NS...]",
		Aliases: []string{"namespaces", "ns"},
		Short:   "Restore the labels a namespace had before enroll (from its journal); safe to run twice",
		Long: `Restore the labels each namespace had before kubectl ambient enroll, exactly as recorded in
its journal annotation, and remove the journal (one patch guarded by resourceVersion). A
waypoint the enrollment created is deleted. Without a journal only the
istio.io/dataplane-mode label is removed, and the output says so. Sidecars come back only when
workloads next roll out; captured pods are released by istio-cni at once.`,
		Example: `  kubectl ambient unenroll namespace shop payments
  kubectl ambient unenroll namespace shop --dry-run
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
	ns.Flags().BoolVar(&o.DryRun, "dry-run", false, "show the label changes each namespace would get; the API server validates them and stores nothing")
	o.Output.AddFlags(ns)
	cmd.AddCommand(ns)
	return cmd
}

// Validate checks flags and arguments.
func (o *UnenrollOptions) Validate() error {
	if err := o.Output.Validate(); err != nil {
		return err
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
		Workers:   o.Workers, DryRun: o.DryRun,
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

// PrintTable writes one row per namespace.
func (r resultsTable) PrintTable(w io.Writer) error {
	printResults(w, r.Results)
	return nil
}
