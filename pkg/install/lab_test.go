package install

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	rcommon "helm.sh/helm/v4/pkg/release/common"
	release "helm.sh/helm/v4/pkg/release/v1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

func TestMain(m *testing.M) {
	kubelab.Main(m, kubelab.Options{Nodes: 3})
}

// newInstaller builds an Installer the way the command does: from
// ConfigFlags through kube.Factory.
func newInstaller(t testing.TB, flags *genericclioptions.ConfigFlags, progress *syncBuffer) *Installer {
	t.Helper()
	f := kube.NewFactory(flags)
	c, err := f.Clients()
	if err != nil {
		t.Fatal(err)
	}
	in := &Installer{Getter: f.RESTClientGetter(), Kube: c.Kube, Dynamic: c.Dynamic, Host: c.Config.Host}
	if progress != nil {
		in.Progress = NewProgress(progress)
	}
	return in
}

func installOpts(t testing.TB, src Source, version string) Options {
	return Options{Profile: mustProfile(t), Source: src, Version: version, Platform: "generic", Timeout: time.Minute, Atomic: true}
}

func run(ctx context.Context, t testing.TB, in *Installer, o Options) (*Result, error) {
	t.Helper()
	steps, err := Resolve(ctx, o)
	if err != nil {
		return nil, err
	}
	return in.Install(ctx, o, steps)
}

func mustRun(ctx context.Context, t testing.TB, in *Installer, o Options) *Result {
	t.Helper()
	res, err := run(ctx, t, in, o)
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	return res
}

func actions(res *Result) map[string]string {
	out := map[string]string{}
	for _, c := range res.Components {
		out[c.Chart] = fmt.Sprintf("%s@%d", c.Action, c.Revision)
	}
	return out
}

// releases reads what Helm recorded, through Helm's storage.
func releases(t testing.TB, in *Installer) map[string]*release.Release {
	t.Helper()
	out := map[string]*release.Release{}
	for _, c := range mustProfile(t).Components {
		rel, err := in.lastRelease(c)
		if err != nil {
			t.Fatal(err)
		}
		if rel != nil {
			out[c.Release] = rel
		}
	}
	return out
}

func helmCLI(t *testing.T, lab *kubelab.Lab, args ...string) (string, bool) {
	t.Helper()
	bin := filepath.Join(lab.BinDir, "helm")
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("helm CLI missing in %s: run hack/lab/build.sh", lab.BinDir)
		}
		t.Logf("helm CLI missing in %s; skipping the helm CLI cross-check", lab.BinDir)
		return "", false
	}
	cmd := exec.Command(bin, append(args, "--kubeconfig", lab.Kubeconfig)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), true
}

func daemonSet(ctx context.Context, t testing.TB, lab *kubelab.Lab, name string) *appsv1.DaemonSet {
	t.Helper()
	ds, err := lab.Clients.Kube.AppsV1().DaemonSets("istio-system").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("DaemonSet %s: %v", name, err)
	}
	return ds
}

func schedulableNodes(ctx context.Context, t testing.TB, lab *kubelab.Lab) int {
	t.Helper()
	nodes, err := lab.Clients.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return len(nodes.Items)
}

// TestLifecycle walks the whole path a user takes, against the lab's real API
// server: failures that must leave nothing behind, install, idempotent
// re-install, skew refusal, upgrade, a component that never becomes ready,
// Ctrl-C during a wait, uninstall.
func TestLifecycle(t *testing.T) {
	lab, src, in, progress := chartLab(t)
	ctx := context.Background()

	t.Run("missing version fails before anything is applied", func(t *testing.T) {
		_, err := run(ctx, t, in, installOpts(t, src, "1.99.0"))
		if !errors.Is(err, ErrChartNotFound) || !strings.Contains(err.Error(), "version 1.99.0") ||
			!strings.Contains(err.Error(), "1.32.1, 1.32.0, 1.31.0, 1.30.0, 1.29.0, 1.28.0, 1.27.0") || !strings.Contains(err.Error(), "nothing was applied") {
			t.Fatalf("err = %v", err)
		}
		if r := releases(t, in); len(r) != 0 {
			t.Fatalf("releases exist after a failed resolve: %v", r)
		}
	})

	t.Run("values that fail to render apply nothing", func(t *testing.T) {
		o := installOpts(t, src, "1.28.0")
		o.Values.Set = []string{"ztunnel.logLevel=loud"}
		_, err := run(ctx, t, in, o)
		if err == nil || !strings.Contains(err.Error(), `logLevel "loud" is not one of`) || !strings.Contains(err.Error(), "nothing was applied") {
			t.Fatalf("err = %v", err)
		}
		if r := releases(t, in); len(r) != 0 {
			t.Fatalf("releases exist after a render failure: %v", r)
		}
	})

	t.Run("install", func(t *testing.T) {
		res := mustRun(ctx, t, in, installOpts(t, src, "1.28.0"))
		want := map[string]string{"base": "installed@1", "istiod": "installed@1", "cni": "installed@1", "ztunnel": "installed@1"}
		if got := actions(res); !equalMaps(got, want) {
			t.Fatalf("actions = %v, want %v", got, want)
		}
		// In order: each component was ready before the next one started.
		for i := 1; i < len(res.Components); i++ {
			prev, cur := res.Components[i-1], res.Components[i]
			for _, r := range prev.Ready {
				if r.ReadyAt.After(cur.Started) {
					t.Errorf("%s started at %s before %s was ready at %s", cur.Chart, cur.Started, r.Workload, r.ReadyAt)
				}
			}
		}
		// The objects a user would look for.
		kc := lab.Clients.Kube
		if _, err := kc.AppsV1().Deployments("istio-system").Get(ctx, "istiod", metav1.GetOptions{}); err != nil {
			t.Error(err)
		}
		if _, err := kc.CoreV1().Services("istio-system").Get(ctx, "istiod", metav1.GetOptions{}); err != nil {
			t.Error(err)
		}
		if _, err := kc.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-sidecar-injector-istio-system", metav1.GetOptions{}); err != nil {
			t.Error(err)
		}
		crds, _, err := in.IstioCRDs(ctx)
		if err != nil || len(crds) != 10 {
			t.Errorf("Istio CRDs = %v (%v), want 10", crds, err)
		}
		nodes := schedulableNodes(ctx, t, lab)
		for _, name := range []string{"ztunnel", "istio-cni-node"} {
			ds := daemonSet(ctx, t, lab, name)
			if ds.Status.DesiredNumberScheduled != int32(nodes) || ds.Status.NumberReady != int32(nodes) {
				t.Errorf("DaemonSet %s: %d desired, %d ready, want both %d (every node)", name, ds.Status.DesiredNumberScheduled, ds.Status.NumberReady, nodes)
			}
		}
		ztunnel := daemonSet(ctx, t, lab, "ztunnel")
		if ztunnel.Spec.Template.Labels["app"] != "ztunnel" {
			t.Errorf("ztunnel pod labels = %v", ztunnel.Spec.Template.Labels)
		}
		if out := progress.String(); !strings.Contains(out, "✓ ztunnel: installed, revision 1, ready (") {
			t.Errorf("progress output lacks the ztunnel line:\n%s", out)
		}
	})

	t.Run("helm CLI reads our releases", func(t *testing.T) {
		out, ok := helmCLI(t, lab, "list", "-n", "istio-system", "-o", "json")
		if !ok {
			return
		}
		var list []struct{ Name, Status, Chart, Revision, AppVersion string }
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("helm list: %v\n%s", err, out)
		}
		got := map[string]string{}
		for _, r := range list {
			got[r.Name] = r.Chart + " " + r.Status
		}
		want := map[string]string{"istio-base": "base-1.28.0 deployed", "istiod": "istiod-1.28.0 deployed", "istio-cni": "cni-1.28.0 deployed", "ztunnel": "ztunnel-1.28.0 deployed"}
		if !equalMaps(got, want) {
			t.Errorf("helm list = %v, want %v", got, want)
		}
		vals, _ := helmCLI(t, lab, "get", "values", "istiod", "-n", "istio-system", "-o", "json")
		var v map[string]any
		if err := json.Unmarshal([]byte(vals), &v); err != nil || v["profile"] != "ambient" {
			t.Errorf("helm get values istiod = %s (%v), want profile ambient", vals, err)
		}
	})

	t.Run("re-install with no change makes no new revision", func(t *testing.T) {
		res := mustRun(ctx, t, in, installOpts(t, src, "1.28.0"))
		want := map[string]string{"base": "unchanged@1", "istiod": "unchanged@1", "cni": "unchanged@1", "ztunnel": "unchanged@1"}
		if got := actions(res); !equalMaps(got, want) {
			t.Fatalf("actions = %v, want %v", got, want)
		}
		for name, rel := range releases(t, in) {
			if rel.Version != 1 {
				t.Errorf("%s at revision %d after a no-op re-install", name, rel.Version)
			}
		}
	})

	t.Run("re-install repairs a deleted workload", func(t *testing.T) {
		if err := lab.Clients.Kube.AppsV1().DaemonSets("istio-system").Delete(ctx, "istio-cni-node", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		res := mustRun(ctx, t, in, installOpts(t, src, "1.28.0"))
		want := map[string]string{"base": "unchanged@1", "istiod": "unchanged@1", "cni": "upgraded@2", "ztunnel": "unchanged@1"}
		if got := actions(res); !equalMaps(got, want) {
			t.Fatalf("actions = %v, want %v", got, want)
		}
		if ds := daemonSet(ctx, t, lab, "istio-cni-node"); ds.Status.NumberReady != int32(schedulableNodes(ctx, t, lab)) {
			t.Errorf("istio-cni-node not back on every node: %+v", ds.Status)
		}
	})

	t.Run("status", func(t *testing.T) {
		rows, err := in.Status(ctx, mustProfile(t), "generic")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if !r.Installed || !r.Ready || r.ChartVersion != "1.28.0" || r.AppVersion != "1.28.0" || r.Status != "deployed" || r.Revision < 1 {
				t.Errorf("status row %+v", r)
			}
		}
	})

	t.Run("skew: ztunnel newer than istiod is refused", func(t *testing.T) {
		o := installOpts(t, src, "1.29.0")
		o.Only = []string{"ztunnel"}
		o.RequireInstalled = true
		_, err := run(ctx, t, in, o)
		if !errors.Is(err, ErrSkew) || !strings.Contains(err.Error(), "ztunnel 1.29.0 would be newer than istiod 1.28.0") {
			t.Fatalf("err = %v", err)
		}
		if rel := releases(t, in)["ztunnel"]; rel.Version != 1 || rel.Chart.Metadata.Version != "1.28.0" {
			t.Errorf("ztunnel changed by a refused upgrade: revision %d chart %s", rel.Version, rel.Chart.Metadata.Version)
		}
	})

	t.Run("upgrade to a newer chart", func(t *testing.T) {
		o := installOpts(t, src, "1.29.0")
		o.RequireInstalled = true
		o.Values.Set = []string{"ztunnel.logLevel=debug"}
		res := mustRun(ctx, t, in, o)
		want := map[string]string{"base": "upgraded@2", "istiod": "upgraded@2", "cni": "upgraded@3", "ztunnel": "upgraded@2"}
		if got := actions(res); !equalMaps(got, want) {
			t.Fatalf("actions = %v, want %v", got, want)
		}
		ds := daemonSet(ctx, t, lab, "ztunnel")
		env := ds.Spec.Template.Spec.Containers[0].Env
		if ds.Labels["app.kubernetes.io/version"] != "1.29.0" || env[0].Name != "RUST_LOG" || env[0].Value != "debug" {
			t.Errorf("ztunnel after upgrade: labels %v env %v", ds.Labels, env)
		}
		if ds.Status.NumberReady != int32(schedulableNodes(ctx, t, lab)) || ds.Status.UpdatedNumberScheduled != ds.Status.DesiredNumberScheduled {
			t.Errorf("ztunnel not rolled out on every node: %+v", ds.Status)
		}
	})

	t.Run("a component that never becomes ready is rolled back", func(t *testing.T) {
		broken, err := NewLocalSource(filepath.Join("testdata", "never-ready"))
		if err != nil {
			t.Fatal(err)
		}
		o := installOpts(t, broken, "1.28.0")
		o.Only = []string{"ztunnel"}
		o.Timeout = 3 * time.Second
		_, err = run(ctx, t, in, o)
		if !errors.Is(err, ErrNotReady) {
			t.Fatalf("never-ready ztunnel: err = %v, want ErrNotReady", err)
		}
		msg := err.Error()
		for _, want := range []string{"ztunnel did not become ready within 3s", "DaemonSet istio-system/ztunnel", "Insufficient cpu", "rolled back: release ztunnel rolled back to revision 2", "run the same command again"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error lacks %q:\n%s", want, msg)
			}
		}
		rel := releases(t, in)["ztunnel"]
		if rel.Chart.Metadata.Version != "1.29.0" || rel.Info.Status != rcommon.StatusDeployed {
			t.Errorf("after rollback ztunnel is %s %s, want 1.29.0 deployed", rel.Chart.Metadata.Version, rel.Info.Status)
		}
		// The rollback is waited for by nobody: check the DaemonSet converges.
		w := &Waiter{Kube: lab.Clients.Kube}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if _, err := w.Wait(wctx, []Workload{{Kind: "DaemonSet", Namespace: "istio-system", Name: "ztunnel"}}); err != nil {
			t.Errorf("ztunnel not ready after rollback: %v", err)
		}
	})

	t.Run("uninstall refuses while namespaces are enrolled", func(t *testing.T) {
		ns := lab.Namespace(t, map[string]string{"istio.io/dataplane-mode": "ambient"})
		_, err := in.Uninstall(ctx, UninstallOptions{Profile: mustProfile(t), Platform: "generic"})
		if !errors.Is(err, ErrAmbientInUse) || !strings.Contains(err.Error(), ns) || !strings.Contains(err.Error(), "unenroll them first") || strings.Contains(err.Error(), "--") {
			t.Fatalf("err = %v", err)
		}
		if len(releases(t, in)) != 4 {
			t.Fatal("a refused uninstall removed releases")
		}
	})

	t.Run("purge-crds asks and a no keeps everything", func(t *testing.T) {
		ap := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
			"metadata": map[string]any{"name": "deny-all", "namespace": "default"}, "spec": map[string]any{},
		}}
		gvr := schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "authorizationpolicies"}
		if _, err := lab.Clients.Dynamic.Resource(gvr).Namespace("default").Create(ctx, ap, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var asked string
		_, err := in.Uninstall(ctx, UninstallOptions{Profile: mustProfile(t), Platform: "generic", PurgeCRDs: true, Force: true,
			Confirm: func(q string) (bool, error) { asked = q; return false, nil }})
		if !errors.Is(err, ErrNotConfirmed) {
			t.Fatalf("err = %v", err)
		}
		if !strings.Contains(asked, "deletes 10 Istio CRDs and with them 1 Istio resources") {
			t.Errorf("question = %q", asked)
		}
		if len(releases(t, in)) != 4 {
			t.Fatal("a declined purge removed releases")
		}
	})

	t.Run("uninstall in reverse order keeps CRDs", func(t *testing.T) {
		progress := &syncBuffer{}
		in := newInstaller(t, lab.Flags(), progress)
		res, err := in.Uninstall(ctx, UninstallOptions{Profile: mustProfile(t), Platform: "generic", Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"ztunnel", "istio-cni", "istiod", "istio-base"}; !slices.Equal(res.Removed, want) {
			t.Errorf("removed %v, want %v", res.Removed, want)
		}
		if res.KeptCRDs != 10 {
			t.Errorf("kept %d CRDs, want 10", res.KeptCRDs)
		}
		if r := releases(t, in); len(r) != 0 {
			t.Errorf("releases left: %v", r)
		}
		_, err = lab.Clients.Kube.AppsV1().DaemonSets("istio-system").Get(ctx, "ztunnel", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("ztunnel DaemonSet after uninstall: %v", err)
		}
		if out, ok := helmCLI(t, lab, "list", "-n", "istio-system", "-q"); ok && strings.TrimSpace(out) != "" {
			t.Errorf("helm list after uninstall: %q", out)
		}
	})

	t.Run("never-ready fresh install: earlier components stay", func(t *testing.T) {
		both, err := NewLocalSource(filepath.Join("testdata", "never-ready"), testCharts(t, "1.28.0"))
		if err != nil {
			t.Fatal(err)
		}
		o := installOpts(t, both, "1.28.0")
		o.Timeout = 3 * time.Second
		res, err := run(ctx, t, in, o)
		if err == nil || !strings.Contains(err.Error(), "rolled back: release ztunnel uninstalled, earlier components kept") {
			t.Fatalf("err = %v", err)
		}
		if got := actions(res); got["cni"] != "installed@1" || got["ztunnel"] != "failed@1" {
			t.Errorf("actions = %v", got)
		}
		r := releases(t, in)
		if _, ok := r["ztunnel"]; ok || len(r) != 3 {
			t.Errorf("releases after a failed fresh ztunnel: %v", keys(r))
		}
	})

	t.Run("ctrl-c during a wait, then a re-run converges", func(t *testing.T) {
		both, err := NewLocalSource(filepath.Join("testdata", "never-ready"), testCharts(t, "1.28.0"))
		if err != nil {
			t.Fatal(err)
		}
		buf := &syncBuffer{}
		in := newInstaller(t, lab.Flags(), buf)
		cctx, cancel := contextWithCancelOn(ctx, buf, "ztunnel: installed (revision 1)")
		defer cancel()
		o := installOpts(t, both, "1.28.0")
		_, err = run(cctx, t, in, o)
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "run the same command again") {
			t.Fatalf("err = %v\nprogress:\n%s", err, buf.String())
		}
		rel := releases(t, in)["ztunnel"]
		if rel == nil || rel.Info.Status != rcommon.StatusDeployed {
			t.Fatalf("interrupted ztunnel release = %v, want recorded as deployed", rel)
		}
		// The re-run (with the good chart) converges.
		res := mustRun(ctx, t, in, installOpts(t, src, "1.28.0"))
		want := map[string]string{"base": "unchanged@1", "istiod": "unchanged@1", "cni": "unchanged@1", "ztunnel": "upgraded@2"}
		if got := actions(res); !equalMaps(got, want) {
			t.Fatalf("actions = %v, want %v", got, want)
		}
		ds := daemonSet(ctx, t, lab, "ztunnel")
		if ds.Status.NumberReady != int32(schedulableNodes(ctx, t, lab)) {
			t.Errorf("ztunnel after re-run: %+v", ds.Status)
		}
	})
	t.Run("a release left pending by a killed run is recovered", func(t *testing.T) {
		// What a process killed in the middle of Helm's apply leaves behind.
		cfg, err := in.config("istio-system")
		if err != nil {
			t.Fatal(err)
		}
		r, err := cfg.Releases.Last("ztunnel")
		if err != nil {
			t.Fatal(err)
		}
		last, err := v1Release(r)
		if err != nil {
			t.Fatal(err)
		}
		last.SetStatus(rcommon.StatusPendingUpgrade, "killed")
		if err := cfg.Releases.Update(last); err != nil {
			t.Fatal(err)
		}
		buf := &syncBuffer{}
		in := newInstaller(t, lab.Flags(), buf)
		res := mustRun(ctx, t, in, installOpts(t, src, "1.28.0"))
		if got := actions(res)["ztunnel"]; got != fmt.Sprintf("upgraded@%d", last.Version+1) {
			t.Errorf("ztunnel action = %s, want upgraded@%d", got, last.Version+1)
		}
		if !strings.Contains(buf.String(), "left pending-upgrade by an interrupted run") {
			t.Errorf("no note about the interrupted run:\n%s", buf.String())
		}
		if rel := releases(t, in)["ztunnel"]; rel.Info.Status != rcommon.StatusDeployed {
			t.Errorf("ztunnel status %s after recovery", rel.Info.Status)
		}
	})

	t.Run("purge-crds with yes deletes CRDs and their resources", func(t *testing.T) {
		res, err := in.Uninstall(ctx, UninstallOptions{Profile: mustProfile(t), Platform: "generic", PurgeCRDs: true, Force: true,
			Confirm: func(string) (bool, error) { return true, nil }})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.CRDs) != 10 || res.Resources != 1 || len(res.Removed) != 4 {
			t.Errorf("result = %+v, want 4 releases, 10 CRDs and 1 resource deleted", res)
		}
		crds, _, err := in.IstioCRDs(ctx)
		if err != nil || len(crds) != 0 {
			t.Errorf("Istio CRDs left: %v (%v)", crds, err)
		}
	})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestUnreachableCluster(t *testing.T) {
	f := genericclioptions.NewConfigFlags(false)
	server, empty := "https://127.0.0.1:1", ""
	insecure := true
	f.APIServer, f.KubeConfig, f.Insecure = &server, &empty, &insecure
	in := newInstaller(t, f, nil)
	src, err := NewLocalSource(testCharts(t, "1.28.0"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = run(ctx, t, in, installOpts(t, src, ""))
	if !errors.Is(err, kube.ErrUnreachable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("err = %v, want ErrUnreachable naming the server", err)
	}
}

func TestRestrictedIdentityIsDenied(t *testing.T) {
	lab := getLab(t)
	in := newInstaller(t, lab.RestrictedFlags(), nil)
	src, err := NewLocalSource(testCharts(t, "1.28.0"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = run(context.Background(), t, in, installOpts(t, src, ""))
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("err = %v, want ErrForbidden", err)
	}
	t.Logf("restricted identity: %v", err)
	for _, want := range []string{"cannot create secrets in namespace istio-system", "customresourcedefinitions.apiextensions.k8s.io cluster-wide", "daemonsets.apps in namespace istio-system"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// The denied run applied nothing: no Helm release secret exists.
	secs, err := lab.Clients.Kube.CoreV1().Secrets("istio-system").List(context.Background(), metav1.ListOptions{LabelSelector: "owner=helm"})
	if err == nil && len(secs.Items) > 0 {
		t.Errorf("the denied run left %d Helm release secrets", len(secs.Items))
	}
}

// getLab returns the lab; lab tests are skipped with -short (make unit).
// chartLab is the lab, a Helm repository over HTTP serving the test charts,
// and an installer whose progress the test reads; everything installed is
// uninstalled when the test ends.
func chartLab(t *testing.T) (*kubelab.Lab, *RepoSource, *Installer, *syncBuffer) {
	t.Helper()
	lab := getLab(t)
	srv := serveCharts(t, testCharts(t))
	src := &RepoSource{URL: srv.URL, CacheDir: t.TempDir()}
	progress := &syncBuffer{}
	in := newInstaller(t, lab.Flags(), progress)
	t.Cleanup(func() {
		if _, err := in.Uninstall(context.Background(), UninstallOptions{Profile: mustProfile(t), Platform: "generic", Force: true}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return lab, src, in, progress
}

func getLab(t testing.TB) *kubelab.Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the lab; skipped with -short")
	}
	return kubelab.Get(t)
}
