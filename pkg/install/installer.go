package install

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	helmkube "helm.sh/helm/v4/pkg/kube"
	rcommon "helm.sh/helm/v4/pkg/release/common"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// Installer runs Helm actions against one cluster.
type Installer struct {
	// Getter configures Helm (action.Configuration.Init).
	Getter genericclioptions.RESTClientGetter
	// Kube and Dynamic are used for waits, RBAC checks and CRD counts.
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	// Host names the cluster in messages.
	Host string
	// Progress reports steps on stderr; nil is silent.
	Progress *Progress
	// Debug receives Helm's debug log; nil discards it.
	Debug io.Writer

	mu      sync.Mutex
	configs map[string]*action.Configuration
	cur     *current // the component being waited for (helm.go)
}

// Options describe one install or upgrade.
type Options struct {
	// Profile is the umbrella chart's content.
	Profile *Profile
	// Source supplies the charts.
	Source Source
	// Version is the chart version for every component; "" takes the
	// profile's pinned version (or, from a local source holding a single
	// version of a chart, that version).
	Version string
	// Platform is the platform name (already detected or given).
	Platform string
	// Values are the user's overrides.
	Values ValueFlags
	// Only limits the operation to these components (upgrade --components);
	// empty means all.
	Only []string
	// Timeout bounds each component's wait.
	Timeout time.Duration
	// Atomic rolls back a component that fails (install: uninstall it),
	// through Helm 4's RollbackOnFailure.
	Atomic bool
	// ForceConflicts takes over fields another field manager owns
	// (server-side apply conflicts); without it such a conflict fails the
	// component and names the object, the field and its manager.
	ForceConflicts bool
	// Adopt takes over objects no release owns yet (Helm 4's TakeOwnership),
	// as left by istioctl or a deleted release.
	Adopt bool
	// RequireInstalled refuses to run when istiod is not installed (upgrade).
	RequireInstalled bool
}

// Step is one resolved component: chart loaded, values merged.
type Step struct {
	Component
	Chart  *chart.Chart   `json:"-"`
	Values map[string]any `json:"values,omitempty"`
	// Resolution says how Version was chosen (a range resolved against the
	// source's versions, --version, or the charts' own).
	Resolution Resolution `json:"resolution"`
}

// ComponentResult is what happened to one component.
type ComponentResult struct {
	Component
	// Action is installed, upgraded, unchanged or failed.
	Action   string `json:"action"`
	Revision int    `json:"revision"`
	// Started is when the component's apply began.
	Started time.Time `json:"started"`
	// Apply and Wait are the time spent in Helm's apply and in the watch.
	Apply time.Duration `json:"-"`
	Wait  time.Duration `json:"-"`
	// ApplySeconds and WaitSeconds repeat Apply and Wait for -o json|yaml.
	ApplySeconds float64 `json:"applySeconds"`
	WaitSeconds  float64 `json:"waitSeconds"`
	// Ready lists when each workload was seen ready.
	Ready []WaitResult `json:"ready,omitempty"`
}

// Result is the outcome of Install.
type Result struct {
	Platform   string            `json:"platform"`
	Components []ComponentResult `json:"components"`
	// Warnings are things the user should know (Gateway API CRDs missing).
	Warnings []string `json:"warnings,omitempty"`
}

// Resolve picks versions, loads every chart and merges values. It touches no
// cluster, and fails before anything is applied when a chart or version is
// missing.
func Resolve(ctx context.Context, o Options) ([]Step, error) {
	comps, err := o.Profile.ForPlatform(o.Platform)
	if err != nil {
		return nil, err
	}
	for _, n := range o.Only {
		if _, ok := o.Profile.Component(n); !ok {
			return nil, fmt.Errorf("unknown component %q; use one of %s", n, strings.Join(o.Profile.Names(), ", "))
		}
	}
	vals, err := o.Values.Resolve(o.Profile, o.Platform)
	if err != nil {
		return nil, err
	}
	var steps []Step
	var first error
	var alsoMissing []string
	for _, c := range comps {
		if len(o.Only) > 0 && !contains(o.Only, c.Chart) {
			continue
		}
		requested := o.Version
		if requested == "" {
			requested = c.Version // the range charts/ambient declares
			if requested == "" {
				requested = o.Profile.DefaultVersion
			}
		}
		res, err := resolveVersion(ctx, o.Source, c.Chart, requested, o.Version != "")
		if err != nil {
			if first == nil {
				first = err
			} else {
				alsoMissing = append(alsoMissing, c.Chart)
			}
			continue
		}
		v := res.Version
		c.Version = v
		c.Repository = o.Source.String()
		ch, err := o.Source.Load(ctx, c.Chart, v)
		if err != nil {
			if first == nil {
				first = err
			} else {
				alsoMissing = append(alsoMissing, c.Chart)
			}
			continue
		}
		steps = append(steps, Step{Component: c, Chart: ch, Values: vals[c.Chart], Resolution: res})
	}
	if first != nil {
		if len(alsoMissing) > 0 {
			return nil, fmt.Errorf("%w (%s failed too); nothing was applied", first, strings.Join(alsoMissing, ", "))
		}
		return nil, fmt.Errorf("%w; nothing was applied", first)
	}
	return steps, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// config returns the Helm configuration for a namespace (one per namespace,
// reused), storing releases as Secrets as the helm CLI does by default, with
// our waiter plugged into Helm's kube client.
func (in *Installer) config(ns string) (*action.Configuration, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if c, ok := in.configs[ns]; ok {
		return c, nil
	}
	log := io.Discard
	if in.Debug != nil {
		log = in.Debug
	}
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err := cfg.Init(in.Getter, ns, "secret"); err != nil {
		return nil, fmt.Errorf("configure helm for namespace %s: %w", ns, err)
	}
	if kc, ok := cfg.KubeClient.(*helmkube.Client); ok {
		cfg.KubeClient = &helmClient{Client: kc, in: in}
	}
	if in.configs == nil {
		in.configs = map[string]*action.Configuration{}
	}
	in.configs[ns] = cfg
	return cfg, nil
}

// lastRelease returns the newest revision of a release, or nil.
func (in *Installer) lastRelease(c Component) (*release.Release, error) {
	cfg, err := in.config(c.Namespace)
	if err != nil {
		return nil, err
	}
	r, err := cfg.Releases.Last(c.Release)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, in.clusterErr(fmt.Errorf("read helm release %s in %s: %w", c.Release, c.Namespace, err))
	}
	return v1Release(r)
}

// reachable checks the cluster answers before anything else talks to it,
// so an unreachable cluster gives one clear line (and no discovery noise).
func (in *Installer) reachable(ctx context.Context) error {
	rc := in.Kube.Discovery().RESTClient()
	if rc == nil {
		return nil // a fake client in unit tests
	}
	if err := rc.Get().AbsPath("/version").Timeout(10 * time.Second).Do(ctx).Error(); err != nil {
		return kube.Unreachable(in.Host, err)
	}
	return nil
}

// clusterErr turns transport failures into the standard unreachable error.
func (in *Installer) clusterErr(err error) error {
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "no such host") ||
		strings.Contains(err.Error(), "i/o timeout") || strings.Contains(err.Error(), "Kubernetes cluster unreachable") {
		return fmt.Errorf("%w: no cluster reachable at %s: %w", kube.ErrUnreachable, in.Host, err)
	}
	return err
}

// Install installs or upgrades the resolved steps in order, each waited for
// before the next. Re-running with nothing changed creates no new revision.
func (in *Installer) Install(ctx context.Context, o Options, steps []Step) (*Result, error) {
	res := &Result{Platform: o.Platform}
	if err := in.reachable(ctx); err != nil {
		return res, err
	}
	if err := in.checkAccess(ctx, steps); err != nil {
		return res, err
	}
	for _, st := range steps {
		in.Progress.Note("%s: chart version %s", st.Chart.Metadata.Name, st.Resolution)
	}
	if err := in.checkOtherInstall(ctx, o, steps); err != nil {
		return res, err
	}
	if err := in.checkSkew(ctx, o, steps); err != nil {
		return res, err
	}
	for _, st := range steps {
		cr, err := in.installOne(ctx, o, st)
		cr.ApplySeconds, cr.WaitSeconds = cr.Apply.Seconds(), cr.Wait.Seconds()
		res.Components = append(res.Components, cr)
		if err != nil {
			return res, err
		}
		if st.Chart.Metadata.Name == ChartBase {
			if w := in.gatewayAPICheck(ctx); w != "" {
				res.Warnings = append(res.Warnings, w)
				in.Progress.Note("warning: %s", w)
			}
		}
	}
	return res, nil
}

// deployedVersion is the chart version of a release's deployed revision.
func (in *Installer) deployedVersion(c Component) (string, error) {
	rel, err := in.lastRelease(c)
	if err != nil || rel == nil || rel.Chart == nil || rel.Chart.Metadata == nil {
		return "", err
	}
	if rel.Info.Status == rcommon.StatusUninstalled {
		return "", nil
	}
	return rel.Chart.Metadata.Version, nil
}

// checkSkew refuses an operation that would leave cni or ztunnel at a
// version istiod does not support. Components are always applied control
// plane first, so the state after the whole run is what counts, and each
// intermediate state is a prefix of it that is at least as safe.
func (in *Installer) checkSkew(ctx context.Context, o Options, steps []Step) error {
	planned := map[string]string{}
	for _, s := range steps {
		planned[s.Chart.Metadata.Name] = s.Version
	}
	after := map[string]string{}
	comps, err := o.Profile.ForPlatform(o.Platform)
	if err != nil {
		return err
	}
	for _, c := range comps {
		if c.Chart == ChartBase {
			continue
		}
		if v, ok := planned[c.Chart]; ok {
			after[c.Chart] = v
			continue
		}
		v, err := in.deployedVersion(c)
		if err != nil {
			return err
		}
		after[c.Chart] = v
	}
	if o.RequireInstalled && after[ChartIstiod] == "" {
		return fmt.Errorf("istiod is not installed in this cluster and upgrade does not install it; run kubectl ambient install first")
	}
	for name, v := range after {
		if v == PlaceholderVersion {
			// A source tree's placeholder says nothing about the Istio
			// inside: there is no skew to judge.
			in.Progress.Note("%s: unreleased source tree (chart version %s); version skew not checked", name, v)
			return nil
		}
	}
	if v, ok := planned[ChartIstiod]; ok {
		now, err := in.deployedVersion(mustComponent(comps, ChartIstiod))
		if err != nil {
			return err
		}
		if err := checkUpgradePath(now, v); err != nil {
			return err
		}
	}
	if after[ChartIstiod] == "" && (after[ChartCNI] != "" || after[ChartZtunnel] != "") {
		return fmt.Errorf("%w: cni and ztunnel need istiod, which is neither installed nor part of this run; include istiod", ErrSkew)
	}
	return CheckSkew(after[ChartIstiod], after)
}

// releaseDigest identifies what a release would render: chart name,
// version, templates and default values. Values are compared separately.
func releaseDigest(ch *chart.Chart) string {
	h := sha256.New()
	var walk func(c *chart.Chart)
	walk = func(c *chart.Chart) {
		_, _ = fmt.Fprintf(h, "%s\x00%s\x00", c.Metadata.Name, c.Metadata.Version)
		tpls := append([]*common.File(nil), c.Templates...)
		sort.Slice(tpls, func(i, j int) bool { return tpls[i].Name < tpls[j].Name })
		for _, t := range tpls {
			_, _ = fmt.Fprintf(h, "%s\x00%x\x00", t.Name, sha256.Sum256(t.Data))
		}
		b, _ := json.Marshal(c.Values)
		_, _ = h.Write(b)
		for _, d := range c.Dependencies() {
			walk(d)
		}
	}
	walk(ch)
	return hex.EncodeToString(h.Sum(nil))
}

// sameValues compares values after a JSON round trip, so int vs float64 and
// map types do not make equal values differ.
func sameValues(a, b map[string]any) bool {
	norm := func(m map[string]any) any {
		if len(m) == 0 {
			return nil
		}
		var out any
		bs, _ := json.Marshal(m)
		_ = json.Unmarshal(bs, &out)
		return out
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

func (in *Installer) installOne(ctx context.Context, o Options, st Step) (ComponentResult, error) {
	cr := ComponentResult{Component: st.Component, Action: "failed", Started: time.Now()}
	p := in.Progress
	label := fmt.Sprintf("%s %s", st.Chart.Metadata.Name, st.Version)
	p.Start(st.Chart.Metadata.Name, fmt.Sprintf("chart %s, release %s in %s", label, st.Release, st.Namespace))
	cfg, err := in.config(st.Namespace)
	if err != nil {
		p.Done(false, err.Error())
		return cr, err
	}
	last, err := in.lastRelease(st.Component)
	if err != nil {
		p.Done(false, "cannot read the release")
		return cr, err
	}
	// A run interrupted during apply leaves its revision pending; nothing
	// else holds it (we run one component at a time), so mark it failed and
	// apply again on top of it.
	if last != nil && last.Info.Status.IsPending() {
		p.Note("%s: revision %d was left %s by an interrupted run; applying again", st.Chart.Metadata.Name, last.Version, last.Info.Status)
		last.SetStatus(rcommon.StatusFailed, "interrupted; superseded by kubectl ambient")
		if err := cfg.Releases.Update(last); err != nil {
			p.Done(false, "cannot update the release")
			return cr, in.clusterErr(fmt.Errorf("mark interrupted release %s revision %d failed: %w", st.Release, last.Version, err))
		}
	}

	var rel *release.Release
	fresh := last == nil || last.Info.Status == rcommon.StatusUninstalled
	unchanged := !fresh && last.Info.Status == rcommon.StatusDeployed && last.Chart != nil &&
		releaseDigest(last.Chart) == releaseDigest(st.Chart) && sameValues(last.Config, st.Values)
	if unchanged && in.drifted(ctx, last) {
		// Same chart and values, but a workload was deleted behind Helm's
		// back: upgrade to the same content, which recreates it.
		p.Note("%s: release %s is unchanged but its workloads are missing; applying again", st.Chart.Metadata.Name, st.Release)
		unchanged = false
	}
	// The revision Helm is about to write: install and upgrade both number
	// it one past the last (an uninstalled release replaced included).
	revision, verb := 1, "installed"
	if last != nil {
		revision = last.Version + 1
	}
	if !fresh {
		verb = "upgraded"
	}
	cur := &current{ctx: ctx}
	cur.onUpdate = func(w Workload, r Readiness) {
		p.Update(fmt.Sprintf("%s revision %d: %s %s: %s", verb, revision, w.Kind, w.Name, r.Detail))
	}
	cur.onWait = func(ws []Workload) {
		if unchanged {
			verb, revision = "unchanged", last.Version
		}
		p.Update(fmt.Sprintf("%s (revision %d), waiting for %d workload(s)", verb, revision, len(ws)))
		if p != nil && !p.tty {
			p.Note("%s: %s (revision %d) in %s, waiting for %s", st.Chart.Metadata.Name, verb, revision, round(cur.applied.Sub(cr.Started)), describe(ws))
		}
	}
	in.mu.Lock()
	in.cur = cur
	in.mu.Unlock()
	defer func() {
		in.mu.Lock()
		in.cur = nil
		in.mu.Unlock()
	}()
	// Helm gets a context that Ctrl-C does not cancel: on cancel Helm 4
	// returns at once and goes on applying in the background, then rolls
	// back; our waiter sees the real context instead (helm.go).
	hctx := context.WithoutCancel(ctx)
	applyStart := time.Now()
	var r any
	switch {
	case unchanged:
		rel = last
		cr.Action = "unchanged"
	case fresh:
		act := action.NewInstall(cfg)
		act.ReleaseName = st.Release
		act.Namespace = st.Namespace
		act.CreateNamespace = true
		act.DisableOpenAPIValidation = true // the API server validates; the schema download is slow
		act.Description = "installed by kubectl ambient"
		act.ServerSideApply = true
		// Adopting takes the objects over, fields included: istioctl wrote
		// them with its own field manager.
		act.ForceConflicts = o.ForceConflicts || o.Adopt
		act.TakeOwnership = o.Adopt
		act.WaitStrategy = waitOurs
		act.Timeout = o.Timeout
		act.RollbackOnFailure = o.Atomic
		if last != nil {
			act.Replace = true // reuse the name of a release uninstalled with --keep-history
		}
		r, err = act.RunWithContext(hctx, st.Chart, st.Values)
		cr.Action = "installed"
	default:
		act := action.NewUpgrade(cfg)
		act.Namespace = st.Namespace
		act.DisableOpenAPIValidation = true
		act.MaxHistory = 10
		act.ResetValues = true // our values are complete; do not merge the old ones
		act.Description = "upgraded by kubectl ambient"
		// "true", not Helm's "auto" (which keeps the apply method a release
		// was first written with): releases Helm 3 wrote move to
		// server-side apply, and Helm upgrades their client-side field
		// manager entries so no field is left with two owners.
		act.ServerSideApply = "true"
		// A release written with client-side apply (Helm 3, the helm CLI or
		// an older kubectl-ambient) left its fields to the manager that
		// wrote it ("helm", or the binary's name). Helm migrates only
		// entries of our own manager name, so the release's own fields
		// conflict with themselves on the first server-side apply (seen in
		// TestHelmCLIs without this): they belong to this release, take them.
		act.ForceConflicts = o.ForceConflicts || last.ApplyMethod != string(release.ApplyMethodServerSideApply)
		act.TakeOwnership = o.Adopt
		act.WaitStrategy = waitOurs
		act.Timeout = o.Timeout
		act.RollbackOnFailure = o.Atomic
		r, err = act.RunWithContext(hctx, st.Release, st.Chart, st.Values)
		cr.Action = "upgraded"
	}
	if r != nil && rel == nil {
		if rr, ok := r.(*release.Release); ok {
			rel = rr
		}
	}
	if !cur.applied.IsZero() {
		cr.Apply, cr.Wait = cur.applied.Sub(applyStart), time.Since(cur.applied)
	} else {
		cr.Apply = time.Since(applyStart)
	}
	cr.Ready = cur.ready
	if err != nil {
		cr.Action = "failed"
		if !cur.applied.IsZero() {
			cr.Revision = revision // applied, then rolled back or left failed
		}
		if cur.applied.IsZero() {
			return cr, in.applyFailed(ctx, o, st, last, fresh, err)
		}
		return cr, in.waitFailed(o, st, last, fresh, err)
	}
	cr.Revision = rel.Version
	if unchanged {
		// Helm did not run: wait for the recorded revision ourselves.
		if werr := in.waitFor(Workloads(rel.Manifest, st.Namespace), o.Timeout); werr != nil {
			cr.Action, cr.Wait, cr.Ready = "failed", time.Since(cur.applied), cur.ready
			return cr, in.waitFailed(o, st, last, fresh, werr)
		}
		cr.Wait, cr.Ready = time.Since(cur.applied), cur.ready
	}
	if cur.interrupted != nil {
		// Interrupted (Ctrl-C): the revision is applied and recorded, so a
		// re-run finds it unchanged and only waits again.
		in.Progress.Done(false, "interrupted while waiting")
		return cr, fmt.Errorf("%s: interrupted while waiting for release %s revision %d to become ready (%w); it is applied and recorded, run the same command again to resume waiting: %w",
			st.Chart.Metadata.Name, st.Release, rel.Version, cur.interrupted, context.Canceled)
	}
	p.Done(true, fmt.Sprintf("%s, revision %d, ready", cr.Action, rel.Version))
	return cr, nil
}

// drifted reports whether a Deployment or DaemonSet of a release is gone.
func (in *Installer) drifted(ctx context.Context, rel *release.Release) bool {
	for _, w := range Workloads(rel.Manifest, rel.Namespace) {
		r, err := in.readinessNow(ctx, w)
		if err == nil && r.Detail == detailMissing {
			return true
		}
	}
	return false
}

func describe(ws []Workload) string {
	if len(ws) == 0 {
		return "nothing (no Deployments or DaemonSets)"
	}
	var parts []string
	for _, w := range ws {
		parts = append(parts, w.Kind+" "+w.Name)
	}
	return strings.Join(parts, ", ")
}

func retryHint(st Step) string {
	return fmt.Sprintf("fix the cause and run the same command again (components already ready are kept; %s is retried)", st.Chart.Metadata.Name)
}

// applyFailed handles a failed render or apply.
func (in *Installer) applyFailed(ctx context.Context, o Options, st Step, last *release.Release, fresh bool, err error) error {
	name := st.Chart.Metadata.Name
	in.Progress.Done(false, "apply failed")
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return fmt.Errorf("%s: interrupted while applying release %s; run the same command again to finish (it resumes from the recorded revision): %w", name, st.Release, context.Canceled)
	}
	err = in.clusterErr(err)
	if errors.Is(err, kube.ErrUnreachable) {
		return err
	}
	if c := conflictOf(err); c != "" {
		return fmt.Errorf("%s: release %s: %s: %w", name, st.Release, c, ErrConflict)
	}
	if o := ownershipOf(err); o != "" {
		return fmt.Errorf("%s: release %s: %s: %w", name, st.Release, o, ErrNotOurs)
	}
	if strings.Contains(err.Error(), "forbidden") {
		return fmt.Errorf("%s: permission denied applying release %s: %w; use an identity allowed to install cluster-wide resources", name, st.Release, err)
	}
	return fmt.Errorf("%s: release %s (chart %s) failed to apply: %w%s; %s", name, st.Release, st.Version, err, in.rolledBack(o, st, last, fresh), retryHint(st))
}

// waitFailed handles a component that did not become ready in time.
func (in *Installer) waitFailed(o Options, st Step, last *release.Release, fresh bool, err error) error {
	name := st.Chart.Metadata.Name
	in.Progress.Done(false, "not ready")
	return fmt.Errorf("%s %w within %s: %w%s; %s", name, ErrNotReady, o.Timeout, unwrapHelm(err), in.rolledBack(o, st, last, fresh), retryHint(st))
}

// unwrapHelm returns our NotReadyError out of Helm's rollback wrapping, so
// the message says what was not ready once.
func unwrapHelm(err error) error {
	var nr *NotReadyError
	if errors.As(err, &nr) {
		return nr
	}
	return err
}

// rolledBack describes what Helm's RollbackOnFailure left, read back from
// the release history: a clause for the error message.
func (in *Installer) rolledBack(o Options, st Step, last *release.Release, fresh bool) string {
	now, err := in.lastRelease(st.Component)
	if err != nil {
		return fmt.Sprintf("; the release could not be read back (%v)", err)
	}
	switch {
	case fresh && (now == nil || now.Info.Status == rcommon.StatusUninstalled):
		if o.Atomic {
			return fmt.Sprintf("; rolled back: release %s uninstalled, earlier components kept", st.Release)
		}
		return fmt.Sprintf("; nothing was applied (release %s not created)", st.Release)
	case now == nil:
		return ""
	case !fresh && now.Version == last.Version:
		return fmt.Sprintf("; nothing was applied (release %s unchanged)", st.Release)
	case !o.Atomic:
		return fmt.Sprintf("; release %s revision %d is left in place (--atomic=false)", st.Release, now.Version)
	case fresh:
		return fmt.Sprintf("; release %s revision %d is left %s", st.Release, now.Version, now.Info.Status)
	}
	// Helm's rollback is a new revision described "Rollback to N".
	if now.Info.Status == rcommon.StatusDeployed && strings.HasPrefix(now.Info.Description, "Rollback to ") {
		return fmt.Sprintf("; rolled back: release %s rolled back to revision %s, earlier components kept", st.Release, strings.TrimPrefix(now.Info.Description, "Rollback to "))
	}
	return fmt.Sprintf("; release %s revision %d is %s", st.Release, now.Version, now.Info.Status)
}

// gatewayAPICheck warns when the Gateway API CRDs are missing: ambient's
// waypoints are Gateway resources, so L7 features need them.
func (in *Installer) gatewayAPICheck(ctx context.Context) string {
	_, err := in.Kube.Discovery().ServerResourcesForGroupVersion("gateway.networking.k8s.io/v1")
	if err == nil {
		return ""
	}
	if apierrors.IsNotFound(err) || strings.Contains(err.Error(), "not found") {
		return "Gateway API CRDs (gateway.networking.k8s.io/v1) are not installed; waypoints (L7 policy) need them: install the Gateway API standard channel CRDs"
	}
	_ = ctx
	return ""
}

// ambientNamespaces lists namespaces enrolled in ambient.
func ambientNamespaces(ctx context.Context, kc kubernetes.Interface) ([]string, error) {
	nss, err := kc.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: ambient.LabelDataplaneMode + "=" + ambient.DataplaneAmbient})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range nss.Items {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out, nil
}
