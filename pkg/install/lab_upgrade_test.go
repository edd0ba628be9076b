package install

import (
	"context"
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestUpgradePathAndConflicts walks the supported releases one minor at a
// time, refuses a two-minor jump, and shows server-side apply conflicts
// reported with their owner and taken over with ForceConflicts.
func TestUpgradePathAndConflicts(t *testing.T) {
	lab, src, in, progress := chartLab(t)
	ctx := context.Background()
	chartVersions := func() map[string]string {
		out := map[string]string{}
		for name, rel := range releases(t, in) {
			out[name] = rel.Chart.Metadata.Version
		}
		return out
	}
	all := func(v string) map[string]string {
		return map[string]string{"istio-base": v, "istiod": v, "istio-cni": v, "ztunnel": v}
	}

	t.Run("install 1.30", func(t *testing.T) {
		mustRun(ctx, t, in, installOpts(t, src, "1.30.0"))
		if got := chartVersions(); !equalMaps(got, all("1.30.0")) {
			t.Fatalf("releases %v", got)
		}
	})
	t.Run("1.30 to 1.32 in one step is refused", func(t *testing.T) {
		o := installOpts(t, src, "1.32.1")
		o.RequireInstalled = true
		_, err := run(ctx, t, in, o)
		if !errors.Is(err, ErrUpgradePath) || !strings.Contains(err.Error(), "upgrade to the newest 1.31 patch first") {
			t.Fatalf("err = %v", err)
		}
		if got := chartVersions(); !equalMaps(got, all("1.30.0")) {
			t.Errorf("a refused upgrade changed releases: %v", got)
		}
	})
	t.Run("upgrade to 1.31", func(t *testing.T) {
		o := installOpts(t, src, "1.31.0")
		o.RequireInstalled = true
		mustRun(ctx, t, in, o)
		if got := chartVersions(); !equalMaps(got, all("1.31.0")) {
			t.Fatalf("releases %v", got)
		}
	})
	t.Run("upgrade to the newest 1.32 by default", func(t *testing.T) {
		o := installOpts(t, src, "") // the range in charts/ambient
		o.RequireInstalled = true
		progress.Reset()
		mustRun(ctx, t, in, o)
		if got := chartVersions(); !equalMaps(got, all("1.32.1")) {
			t.Fatalf("releases %v", got)
		}
		if !strings.Contains(progress.String(), "ztunnel: chart version 1.32.1, resolved from ~1.32.0 (newest matching in repository") {
			t.Errorf("resolved version not printed:\n%s", progress.String())
		}
		ds := daemonSet(ctx, t, lab, "ztunnel")
		if img := ds.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(img, "/ztunnel:1.32.1") {
			t.Errorf("ztunnel image %s", img)
		}
		if mgrs := managers(ds.ManagedFields); !mgrs[FieldManager] {
			t.Errorf("ztunnel's managed fields %v lack our field manager %q", mgrs, FieldManager)
		}
	})
	t.Run("a field another manager owns is a conflict, then forced", func(t *testing.T) {
		// Someone else takes RUST_LOG on the ztunnel DaemonSet.
		patch := `{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"ztunnel","namespace":"istio-system"},` +
			`"spec":{"template":{"spec":{"containers":[{"name":"istio-proxy","env":[{"name":"RUST_LOG","value":"warn"}]}]}}}}`
		force := true
		if _, err := lab.Clients.Kube.AppsV1().DaemonSets("istio-system").Patch(ctx, "ztunnel", types.ApplyPatchType, []byte(patch),
			metav1.PatchOptions{FieldManager: "someone-else", Force: &force}); err != nil {
			t.Fatal(err)
		}
		o := installOpts(t, src, "1.32.1")
		o.Only = []string{"ztunnel"}
		o.Values.Set = []string{"ztunnel.logLevel=debug"}
		_, err := run(ctx, t, in, o)
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("err = %v, want a conflict", err)
		}
		for _, want := range []string{"DaemonSet istio-system/ztunnel", `"someone-else"`, `RUST_LOG`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("conflict error lacks %q: %v", want, err)
			}
		}
		o.ForceConflicts = true
		mustRun(ctx, t, in, o)
		ds := daemonSet(ctx, t, lab, "ztunnel")
		if env := ds.Spec.Template.Spec.Containers[0].Env; env[0].Name != "RUST_LOG" || env[0].Value != "debug" {
			t.Errorf("env after forcing: %v", env)
		}
	})
}

func managers(fs []metav1.ManagedFieldsEntry) map[string]bool {
	out := map[string]bool{}
	for _, f := range fs {
		out[f.Manager] = true
	}
	return out
}
