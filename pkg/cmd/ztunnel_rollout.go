package cmd

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/install"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube/platform"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/rollout"
)

// NewCmdZtunnel builds `kubectl ambient ztunnel`, the group for fleet
// operations on ztunnel itself (today: rollout).
//
// Why a command of its own rather than `upgrade --node-by-node`: the
// rollout has its own state (a journal, a resume, cordoned nodes), its own
// flags (--max-unavailable, --no-drain, drain and readiness timeouts) and it
// also runs without a version change (replacing outdated pods under an
// OnDelete DaemonSet); kubectl users know `rollout` as the verb that
// replaces pods in a controlled way.
func NewCmdZtunnel(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ztunnel",
		Short: "Operate ztunnel across the fleet: upgrade it node by node",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	cmd.AddCommand(NewCmdZtunnelRollout(f, streams))
	return cmd
}

// ZtunnelRolloutOptions holds the flags of `kubectl ambient ztunnel rollout`.
type ZtunnelRolloutOptions struct {
	Version        string
	Repo           string
	Charts         []string
	Values         install.ValueFlags
	Platform       string
	CacheDir       string
	NoChart        bool
	Namespace      string
	MaxUnavailable int
	NoDrain        bool
	DryRun         bool
	DrainTimeout   time.Duration
	ReadyTimeout   time.Duration
	Admin          string
	Output         OutputFlags

	profile *install.Profile
	factory kube.Factory
	streams genericiooptions.IOStreams
}

// NewCmdZtunnelRollout builds `kubectl ambient ztunnel rollout`.
func NewCmdZtunnelRollout(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ZtunnelRolloutOptions{
		Platform: "auto", CacheDir: install.DefaultCacheDir(), Namespace: ambient.IstioNamespace, MaxUnavailable: 1,
		DrainTimeout: rollout.DefaultDrainTimeout, ReadyTimeout: rollout.DefaultReadyTimeout, Admin: "auto",
		Output: NewOutputFlags(), factory: f, streams: streams,
	}
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Upgrade ztunnel one node (or batch) at a time: cordon, drain, replace, verify, uncordon",
		Long: `Upgrading ztunnel resets every long-lived connection on a node, and ztunnel has no canary
upgrade. rollout runs the safe recipe instead of the DaemonSet's rolling update: it upgrades the
ztunnel Helm release with updateStrategy OnDelete (so no pod is replaced by the controller), then
for each node, in name order (--max-unavailable at a time):

  record    the captured pods and ztunnel's open connections on the node
  cordon    so nothing new is scheduled there
  drain     evict the node's captured pods through the eviction API (PodDisruptionBudgets hold;
            --no-drain skips this and accepts the connection resets)
  replace   delete the node's ztunnel pod; the DaemonSet creates the new one
  wait      until the new ztunnel is Ready, its certificates Available, no proxies pending
  health    the node judged by the rules of 'kubectl ambient status'
  uncordon  and only then the next node

It stops at the first node that fails, leaves that node cordoned and says why. Progress is
journaled in the ConfigMap istio-system/ztunnel-rollout: run the same command again to resume.
Ctrl-C stops between writes and names any node left cordoned.`,
		Example: `  # See the node order and the steps, without changing anything
  kubectl ambient ztunnel rollout --version 1.31.2 --dry-run

  # Upgrade ztunnel node by node, two nodes at a time
  kubectl ambient ztunnel rollout --version 1.31.2 --max-unavailable 2

  # Resume after a stop (same command), and get the report as JSON
  kubectl ambient ztunnel rollout --version 1.31.2 -o json

  # Air-gapped charts; accept connection resets instead of draining
  kubectl ambient ztunnel rollout --version 1.31.2 --charts ./charts --no-drain`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Version, "version", o.Version, "ztunnel chart version to roll out (default: the version pinned in charts/ambient)")
	fl.StringVar(&o.Repo, "repo", o.Repo, "chart source: an http(s) Helm repository URL or an oci:// reference (default: the repository in charts/ambient)")
	fl.StringSliceVar(&o.Charts, "charts", o.Charts, "air-gapped chart source: directories (searched by Chart.yaml name) or .tgz files")
	fl.StringArrayVarP(&o.Values.Files, "values", "f", o.Values.Files, "YAML values file keyed by component (only ztunnel's values are used)")
	fl.StringArrayVar(&o.Values.Set, "set", o.Values.Set, "set a ztunnel value: ztunnel.KEY=VALUE; repeatable")
	fl.StringVar(&o.Values.Revision, "revision", o.Values.Revision, "Istio revision name")
	fl.StringVar(&o.Platform, "platform", o.Platform, "auto, or one of "+strings.Join(platform.Known, ", "))
	fl.StringVar(&o.CacheDir, "cache-dir", o.CacheDir, "where downloaded repository indexes and charts are cached")
	fl.BoolVar(&o.NoChart, "no-chart", o.NoChart, "do not upgrade the Helm release; replace the pods an OnDelete DaemonSet left outdated")
	fl.StringVar(&o.Namespace, "ztunnel-namespace", o.Namespace, "namespace of the ztunnel DaemonSet (kube-system on OpenShift)")
	fl.IntVar(&o.MaxUnavailable, "max-unavailable", o.MaxUnavailable, "nodes handled at once")
	fl.BoolVar(&o.NoDrain, "no-drain", o.NoDrain, "do not evict the node's captured pods: accept that their connections are reset")
	fl.BoolVar(&o.DryRun, "dry-run", o.DryRun, "print the node order and each step; change nothing")
	fl.DurationVar(&o.DrainTimeout, "drain-timeout", o.DrainTimeout, "how long one node's drain may wait on PodDisruptionBudgets")
	fl.DurationVar(&o.ReadyTimeout, "ready-timeout", o.ReadyTimeout, "how long to wait for a node's new ztunnel to be ready")
	fl.StringVar(&o.Admin, "admin", o.Admin, "how to reach ztunnel's admin port for config_dump: auto, proxy or port-forward")
	o.Output.AddFlags(cmd)
	return cmd
}

// Validate checks the flags before anything touches the cluster.
func (o *ZtunnelRolloutOptions) Validate() error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	if o.MaxUnavailable < 1 {
		return UsageError{fmt.Errorf("--max-unavailable must be at least 1, got %d", o.MaxUnavailable)}
	}
	if o.DrainTimeout <= 0 || o.ReadyTimeout <= 0 {
		return UsageError{fmt.Errorf("--drain-timeout and --ready-timeout must be positive")}
	}
	if o.Platform != "auto" && !platform.IsKnown(o.Platform) {
		return UsageError{fmt.Errorf("unknown --platform %q; use auto or one of %s", o.Platform, strings.Join(platform.Known, ", "))}
	}
	if len(o.Charts) > 0 && o.Repo != "" {
		return UsageError{fmt.Errorf("--charts and --repo are two chart sources; pass only one")}
	}
	switch o.Admin {
	case "auto", "proxy", "port-forward":
	default:
		return UsageError{fmt.Errorf("unknown --admin %q; use auto, proxy or port-forward", o.Admin)}
	}
	if o.NoChart && (o.Version != "" || o.Repo != "" || len(o.Charts) > 0) {
		return UsageError{fmt.Errorf("--no-chart replaces pods under the DaemonSet's current template; drop --version, --repo and --charts")}
	}
	p, err := install.LoadProfile()
	if err != nil {
		return err
	}
	o.profile = p
	if o.Repo == "" {
		o.Repo = p.Repository
	}
	return nil
}

// Run makes the one library call and prints the report, also when the
// rollout stopped (the report says how far it got).
func (o *ZtunnelRolloutOptions) Run(ctx context.Context) error {
	clients, err := o.factory.Clients()
	if err != nil {
		return err
	}
	ro := rollout.Options{
		Kube: clients.Kube, Namespace: o.Namespace, MaxUnavailable: o.MaxUnavailable, NoDrain: o.NoDrain, DryRun: o.DryRun,
		DrainTimeout: o.DrainTimeout, ReadyTimeout: o.ReadyTimeout, Admin: adminAccess(o.Admin, clients, 0, 0),
		Progress: o.streams.ErrOut,
	}
	if !o.NoChart {
		src, err := install.NewSource(o.Repo, o.Charts, o.CacheDir)
		if err != nil {
			return err
		}
		plat, err := (&InstallOptions{Platform: o.Platform, streams: o.streams}).detectPlatform(ctx, clients)
		if err != nil {
			return err
		}
		ro.Chart = &rollout.Chart{
			Installer: &install.Installer{Getter: o.factory.RESTClientGetter(), Kube: clients.Kube, Dynamic: clients.Dynamic, Host: clients.Config.Host},
			Options:   install.Options{Profile: o.profile, Source: src, Version: o.Version, Platform: plat, Values: o.Values},
		}
	}
	rep, err := rollout.Run(ctx, ro)
	if rep != nil && (len(rep.Nodes) > 0 || err == nil) {
		if perr := o.Output.Print(o.streams.Out, rep); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}
