package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/install"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube/platform"
)

// InstallOptions holds the flags of `kubectl ambient install` and `upgrade`.
type InstallOptions struct {
	Version  string
	Repo     string
	Charts   []string
	Values   install.ValueFlags
	Platform string
	Timeout  time.Duration
	Atomic   bool
	// ForceConflicts and Adopt are Helm 4's server-side apply ForceConflicts
	// and TakeOwnership.
	ForceConflicts bool
	Adopt          bool
	DryRun         bool
	Output         OutputFlags
	Components     []string
	CacheDir       string

	upgrade bool
	profile *install.Profile
	factory kube.Factory
	streams genericiooptions.IOStreams
}

func newInstallOptions(f kube.Factory, streams genericiooptions.IOStreams, upgrade bool) *InstallOptions {
	return &InstallOptions{
		Platform: "auto",
		Timeout:  5 * time.Minute,
		Atomic:   true,
		Output:   NewOutputFlags(),
		CacheDir: install.DefaultCacheDir(),
		upgrade:  upgrade,
		factory:  f,
		streams:  streams,
	}
}

func (o *InstallOptions) addFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&o.Version, "version", o.Version, "Istio chart version for every component (default: the newest version matching the range in charts/ambient, ~1.32.0)")
	fl.StringVar(&o.Repo, "repo", o.Repo, "chart source: an http(s) Helm repository URL or an oci:// reference (default: the repository in charts/ambient)")
	fl.StringSliceVar(&o.Charts, "charts", o.Charts, "air-gapped chart source: directories (searched by Chart.yaml name) or .tgz files; repeatable, the first holding a name and version wins")
	fl.StringArrayVarP(&o.Values.Files, "values", "f", o.Values.Files, "YAML values file keyed by component (base, istiod, cni, ztunnel); repeatable")
	fl.StringArrayVar(&o.Values.Set, "set", o.Values.Set, "set a component value: COMPONENT.KEY=VALUE, e.g. ztunnel.logLevel=debug; repeatable")
	fl.StringArrayVar(&o.Values.SetString, "set-string", o.Values.SetString, "like --set, but the value is always a string")
	fl.StringVar(&o.Values.Revision, "revision", o.Values.Revision, "Istio revision name for istiod, cni and ztunnel")
	fl.StringVar(&o.Platform, "platform", o.Platform, "auto, or one of "+strings.Join(platform.Known, ", "))
	fl.DurationVar(&o.Timeout, "timeout", o.Timeout, "how long to wait for each component to become ready")
	fl.BoolVar(&o.Atomic, "atomic", o.Atomic, "roll back a component that fails to become ready (earlier components stay)")
	fl.BoolVar(&o.ForceConflicts, "force-conflicts", o.ForceConflicts, "take over fields another field manager owns (server-side apply conflicts) instead of failing on them")
	fl.BoolVar(&o.Adopt, "adopt", o.Adopt, "take over existing Istio objects no release of ours owns (an istioctl install, a deleted release) with Helm's take-ownership")
	fl.BoolVar(&o.DryRun, "dry-run", o.DryRun, "render every manifest in install order without contacting the cluster (use with -o yaml)")
	o.Output.AddFlags(cmd)
	fl.StringVar(&o.CacheDir, "cache-dir", o.CacheDir, "where downloaded repository indexes and charts are cached")
}

// NewCmdInstall builds `kubectl ambient install` and its `status` subcommand.
func NewCmdInstall(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := newInstallOptions(f, streams, false)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install Istio's ambient profile: base, istiod, cni and ztunnel as Helm releases, in order, each waited for",
		Long: `Install Istio's ambient profile as four Helm releases in istio-system (istio-base, istiod,
istio-cni, ztunnel), in that order, waiting for each to be ready before the next. What is installed
(components, order, the version range ~1.32.0, values per platform) comes from the chart
charts/ambient built into this binary; each chart's version is the newest in the repository that
matches the range (printed), or --version. Objects are written with Helm 4's server-side apply as
field manager "kubectl-ambient": a field another manager owns fails the component and names the
object, the field and the owner (--force-conflicts takes it). Running install again upgrades; with nothing changed it creates no new revision.`,
		Example: `  # Install the pinned version from the official repository, platform detected from the nodes
  kubectl ambient install

  # A given version, debug logs in ztunnel, a k3s cluster
  kubectl ambient install --version 1.32.0 --set ztunnel.logLevel=debug --platform k3s

  # Air-gapped: charts from a directory (e.g. a checkout of Istio's manifests/charts) or .tgz files
  kubectl ambient install --charts ./charts

  # Review or commit what would be applied, without touching the cluster
  kubectl ambient install --dry-run -o yaml > ambient.yaml`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	o.addFlags(cmd)
	cmd.AddCommand(NewCmdInstallStatus(f, streams))
	return cmd
}

// NewCmdUpgrade builds `kubectl ambient upgrade`.
func NewCmdUpgrade(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := newInstallOptions(f, streams, true)
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Upgrade the ambient profile, control plane first, refusing unsupported cni/ztunnel version skew",
		Long: `Upgrade the installed ambient profile: base and istiod first, then cni and ztunnel. cni and
ztunnel at 1.x work with istiod 1.x or 1.x+1, so upgrade refuses to leave them newer than istiod or
more than one minor version behind it. Note that upgrading ztunnel resets long-lived connections on
each node as its pod is replaced.`,
		Example: `  # Everything to a new version, in order
  kubectl ambient upgrade --version 1.29.0

  # Only the control plane now, the data plane later (within one minor version)
  kubectl ambient upgrade --version 1.29.0 --components base,istiod
  kubectl ambient upgrade --version 1.29.0 --components cni,ztunnel`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	o.addFlags(cmd)
	cmd.Flags().StringSliceVar(&o.Components, "components", nil, "upgrade only these components (base, istiod, cni, ztunnel); they still go control plane first")
	return cmd
}

// Validate checks the flags and loads the embedded profile.
func (o *InstallOptions) Validate() error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	if o.Platform != "auto" && !platform.IsKnown(o.Platform) {
		return UsageError{fmt.Errorf("unknown --platform %q; use auto or one of %s", o.Platform, strings.Join(platform.Known, ", "))}
	}
	if o.Timeout <= 0 {
		return UsageError{fmt.Errorf("--timeout must be positive, got %s", o.Timeout)}
	}
	if len(o.Charts) > 0 && o.Repo != "" {
		return UsageError{fmt.Errorf("--charts and --repo are two chart sources; pass only one")}
	}
	if o.DryRun && o.Output.Table() {
		o.Output.Format = OutputYAML
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

func (o *InstallOptions) source() (install.Source, error) {
	return install.NewSource(o.Repo, o.Charts, o.CacheDir)
}

// Run installs or upgrades (hintErrors adds to a library error the flag
// that fixes it).
func (o *InstallOptions) Run(ctx context.Context) error { return o.run(ctx) }

func (o *InstallOptions) run(ctx context.Context) error {
	src, err := o.source()
	if err != nil {
		return err
	}
	opts := install.Options{
		Profile: o.profile, Source: src, Version: o.Version, Values: o.Values, Only: o.Components,
		Timeout: o.Timeout, Atomic: o.Atomic, RequireInstalled: o.upgrade,
		ForceConflicts: o.ForceConflicts, Adopt: o.Adopt,
	}
	if o.DryRun {
		opts.Platform = o.Platform
		if opts.Platform == "auto" {
			opts.Platform = platform.Generic
			_, _ = fmt.Fprintf(o.streams.ErrOut, "platform: %s (not detected: --dry-run does not contact the cluster; pass --platform)\n", opts.Platform)
		}
		steps, err := install.Resolve(ctx, opts)
		if err != nil {
			return err
		}
		for _, st := range steps {
			_, _ = fmt.Fprintf(o.streams.ErrOut, "%s: chart version %s\n", st.Chart.Metadata.Name, st.Resolution)
		}
		if o.Output.Format == OutputJSON {
			return o.renderJSON(steps)
		}
		return install.RenderAll(o.streams.Out, steps)
	}

	clients, err := o.factory.Clients()
	if err != nil {
		return err
	}
	plat, err := o.detectPlatform(ctx, clients)
	if err != nil {
		return err
	}
	opts.Platform = plat
	// Every chart is fetched and every value merged before anything is
	// applied: a missing version fails here, with the cluster untouched.
	steps, err := install.Resolve(ctx, opts)
	if err != nil {
		return err
	}
	in := &install.Installer{
		Getter: o.factory.RESTClientGetter(), Kube: clients.Kube, Dynamic: clients.Dynamic, Host: clients.Config.Host,
		Progress: install.NewProgress(o.streams.ErrOut),
	}
	start := time.Now()
	res, err := in.Install(ctx, opts, steps)
	if err != nil {
		return err
	}
	if !o.Output.Table() {
		return o.Output.Print(o.streams.Out, res)
	}
	tw := tabwriter.NewWriter(o.streams.Out, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "COMPONENT\tRELEASE\tNAMESPACE\tVERSION\tACTION\tREVISION\tAPPLY\tWAIT")
	for _, c := range res.Components {
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", c.Chart, c.Release, c.Namespace, c.Version, c.Action, c.Revision,
			c.Apply.Round(time.Millisecond), c.Wait.Round(time.Millisecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verb := "installed"
	if o.upgrade {
		verb = "upgraded"
	}
	_, _ = fmt.Fprintf(o.streams.ErrOut, "ambient profile %s and ready (platform %s) in %s\n", verb, plat, time.Since(start).Round(time.Millisecond))
	return nil
}

func (o *InstallOptions) renderJSON(steps []install.Step) error {
	type rendered struct {
		install.Component
		Manifest string `json:"manifest"`
	}
	var out []rendered
	for _, st := range steps {
		m, err := install.Render(st)
		if err != nil {
			return err
		}
		out = append(out, rendered{Component: st.Component, Manifest: m})
	}
	return PrintStructured(o.streams.Out, OutputJSON, out)
}

// detectPlatform returns --platform, or detects it from the nodes; it prints
// the decision either way.
func (o *InstallOptions) detectPlatform(ctx context.Context, clients *kube.Clients) (string, error) {
	if o.Platform != "auto" {
		_, _ = fmt.Fprintf(o.streams.ErrOut, "platform: %s (from --platform)\n", o.Platform)
		return o.Platform, nil
	}
	r, err := platform.DetectCluster(ctx, clients.Kube.CoreV1().Nodes())
	if err != nil {
		if u := kube.Unreachable(clients.Config.Host, err); errors.Is(u, kube.ErrUnreachable) {
			return "", u
		}
		return "", fmt.Errorf("%w; pass --platform to skip detection", err)
	}
	_, _ = fmt.Fprintf(o.streams.ErrOut, "platform: %s (detected: %s; override with --platform)\n", r.Name, r.Reason)
	return r.Name, nil
}

// InstallStatusOptions holds the flags of `kubectl ambient install status`.
type InstallStatusOptions struct {
	Output   OutputFlags
	Platform string

	clients *kube.Clients
	factory kube.Factory
	streams genericiooptions.IOStreams
}

// NewCmdInstallStatus builds `kubectl ambient install status`.
func NewCmdInstallStatus(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &InstallStatusOptions{Output: NewOutputFlags(), Platform: platform.Generic, factory: f, streams: streams}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each component's Helm release: chart and app version, status, revision and readiness",
		Long: `Show, for each component of the ambient profile, its Helm release (found in istio-system, or
kube-system on OpenShift), chart and app version, revision and status, and whether its Deployments
and DaemonSets are ready right now. Exits 1 (after printing) when a component is missing or not ready.`,
		Example: `  kubectl ambient install status
  kubectl ambient install status -o json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
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
func (o *InstallStatusOptions) Complete() error {
	c, err := o.factory.Clients()
	o.clients = c
	return err
}

// Run prints the status; it exits 1 (silently, after the table) when a
// component is missing or not ready.
func (o *InstallStatusOptions) Run(ctx context.Context) error {
	p, err := install.LoadProfile()
	if err != nil {
		return err
	}
	clients := o.clients
	in := &install.Installer{Getter: o.factory.RESTClientGetter(), Kube: clients.Kube, Dynamic: clients.Dynamic, Host: clients.Config.Host}
	rows, err := in.Status(ctx, p, o.Platform)
	if err != nil {
		return err
	}
	if !o.Output.Table() {
		if err := o.Output.Print(o.streams.Out, rows); err != nil {
			return err
		}
	} else if err := printStatusTable(o.streams.Out, rows); err != nil {
		return err
	}
	for _, r := range rows {
		if !r.Ready {
			return SilentError{Code: ExitFailure}
		}
	}
	return nil
}

func printStatusTable(w io.Writer, rows []install.ComponentStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "COMPONENT\tRELEASE\tNAMESPACE\tCHART\tAPP\tREVISION\tSTATUS\tREADY\tDETAILS")
	for _, r := range rows {
		ready := "no"
		if r.Ready {
			ready = "yes"
		}
		rev := "-"
		if r.Revision > 0 {
			rev = fmt.Sprint(r.Revision)
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Component, r.Release, r.Namespace, dash(r.ChartVersion), dash(r.AppVersion),
			rev, r.Status, ready, r.FormatReadiness())
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// UninstallOptions holds the flags of `kubectl ambient uninstall`.
type UninstallOptions struct {
	Force     bool
	PurgeCRDs bool
	Yes       bool
	Output    OutputFlags

	clients *kube.Clients
	factory kube.Factory
	streams genericiooptions.IOStreams
}

// NewCmdUninstall builds `kubectl ambient uninstall`.
func NewCmdUninstall(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &UninstallOptions{Output: NewOutputFlags(), factory: f, streams: streams}
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove the ambient profile's releases in reverse order (ztunnel, cni, istiod, base), keeping CRDs",
		Long: `Remove the ztunnel, istio-cni, istiod and istio-base releases, in that order. It refuses while
any namespace is enrolled in ambient (istio.io/dataplane-mode=ambient) unless --force. Istio's CRDs,
and so every Istio resource (policies, routes), are kept unless --purge-crds, which says how many
resources it will delete and asks first (unless --yes).`,
		Example: `  kubectl ambient uninstall
  kubectl ambient uninstall --force
  kubectl ambient uninstall --purge-crds --yes`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Output.Validate(); err != nil {
				return err
			}
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	cmd.Flags().BoolVar(&o.Force, "force", false, "uninstall even while namespaces are enrolled in ambient")
	cmd.Flags().BoolVar(&o.PurgeCRDs, "purge-crds", false, "also delete Istio's CRDs, and with them every Istio resource in the cluster")
	cmd.Flags().BoolVarP(&o.Yes, "yes", "y", false, "do not ask before --purge-crds")
	o.Output.AddFlags(cmd)
	return cmd
}

// Complete builds the clients from the factory.
func (o *UninstallOptions) Complete() error {
	c, err := o.factory.Clients()
	o.clients = c
	return err
}

// Run uninstalls.
func (o *UninstallOptions) Run(ctx context.Context) error {
	p, err := install.LoadProfile()
	if err != nil {
		return err
	}
	clients := o.clients
	in := &install.Installer{Getter: o.factory.RESTClientGetter(), Kube: clients.Kube, Dynamic: clients.Dynamic, Host: clients.Config.Host,
		Progress: install.NewProgress(o.streams.ErrOut)}
	reader := bufio.NewReader(o.streams.In)
	res, err := in.Uninstall(ctx, install.UninstallOptions{
		Profile: p, Platform: platform.Generic, Force: o.Force, PurgeCRDs: o.PurgeCRDs,
		Confirm: func(q string) (bool, error) {
			if o.Yes {
				return true, nil
			}
			_, _ = fmt.Fprint(o.streams.ErrOut, q)
			line, err := reader.ReadString('\n')
			if err != nil && line == "" {
				return false, nil // no answer (EOF) is no
			}
			a := strings.ToLower(strings.TrimSpace(line))
			return a == "y" || a == "yes", nil
		},
	})
	if err != nil {
		return err
	}
	if !o.Output.Table() {
		return o.Output.Print(o.streams.Out, res)
	}
	_, _ = fmt.Fprintf(o.streams.Out, "removed: %s\n", dash(strings.Join(res.Removed, ", ")))
	if len(res.NotInstalled) > 0 {
		_, _ = fmt.Fprintf(o.streams.Out, "not installed: %s\n", strings.Join(res.NotInstalled, ", "))
	}
	if o.PurgeCRDs {
		_, _ = fmt.Fprintf(o.streams.Out, "deleted %d Istio CRDs and %d Istio resources\n", len(res.CRDs), res.Resources)
	} else if res.KeptCRDs > 0 {
		_, _ = fmt.Fprintf(o.streams.Out, "kept %d Istio CRDs (delete them with --purge-crds)\n", res.KeptCRDs)
	}
	return nil
}
