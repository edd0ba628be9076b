package cmd

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
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

// Run resolves the namespaces, checks permissions, then restores each.
func (o *UnenrollOptions) Run(ctx context.Context) error {
	clients, err := o.factory.Clients()
	if err != nil {
		return err
	}
	list, err := clients.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return kube.Unreachable(clients.Config.Host, fmt.Errorf("list namespaces: %w", err))
	}
	exists := map[string]bool{}
	for _, n := range list.Items {
		exists[n.Name] = true
	}
	chosen := map[string]bool{}
	var names, missing []string
	for _, n := range o.Names {
		if !exists[n] {
			missing = append(missing, n)
			continue
		}
		if !chosen[n] {
			chosen[n] = true
			names = append(names, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("unenroll namespace %s: %w; list namespaces with kubectl get ns", joinNames(missing), migrate.ErrNotFound)
	}
	for _, n := range list.Items {
		_, journal := n.Annotations[migrate.AnnotationJournal]
		enrolled := n.Labels[migrate.LabelDataplaneMode] == migrate.DataplaneAmbient
		match := (o.selector != nil && o.selector.Matches(labels.Set(n.Labels))) || (o.All && (journal || enrolled))
		if match && !chosen[n.Name] {
			chosen[n.Name] = true
			names = append(names, n.Name)
		}
	}
	if len(names) == 0 {
		fmt.Fprintln(o.streams.ErrOut, "no namespace matched; nothing to do")
		return nil
	}
	if err := migrate.CheckAccess(ctx, clients.Kube, []migrate.Access{{Verb: "get", Resource: "namespaces"}, {Verb: "patch", Resource: "namespaces"}}); err != nil {
		return err
	}
	gvr := gatewayGVR(clients)
	results, err := migrate.Unenroll(ctx, clients.Kube, clients.Dynamic, names, migrate.UnenrollOptions{Workers: o.Workers, GatewayGVR: gvr, DryRun: o.DryRun})
	if !o.Output.Table() {
		if perr := o.Output.Print(o.streams.Out, map[string]any{"results": results}); perr != nil {
			return perr
		}
	} else {
		printResults(o.streams.Out, results)
	}
	return err
}

// gatewayGVR finds the served Gateway API version, or returns the zero value.
func gatewayGVR(c *kube.Clients) schema.GroupVersionResource {
	groups, err := c.Discovery.ServerGroups()
	if err != nil {
		return schema.GroupVersionResource{}
	}
	for _, g := range groups.Groups {
		if g.Name == "gateway.networking.k8s.io" {
			gv, err := schema.ParseGroupVersion(g.PreferredVersion.GroupVersion)
			if err == nil {
				return gv.WithResource("gateways")
			}
		}
	}
	return schema.GroupVersionResource{}
}
