package install

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
)

// helmVersions are the helm CLIs hack/lab/build.sh installs (approved
// releases of both majors).
var helmVersions = []string{"v3.21.4", "v4.3.2"}

// helmAt returns the helm CLI of one version from the tools cache; outside
// CI a missing CLI skips the test with the command that builds it.
func helmAt(t *testing.T, version string) string {
	t.Helper()
	tools := os.Getenv("KAMB_TOOLS")
	if tools == "" {
		home, _ := os.UserCacheDir()
		tools = filepath.Join(home, "kubectl-ambient", "tools")
	}
	bin := filepath.Join(tools, "helm-"+version, "helm")
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("helm %s missing at %s: run hack/lab/build.sh", version, bin)
		}
		t.Skipf("helm %s missing at %s (not CI): run hack/lab/build.sh to build it", version, bin)
	}
	return bin
}

func runHelm(t *testing.T, lab *kubelab.Lab, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append(args, "--kubeconfig", lab.Kubeconfig)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(filepath.Dir(bin)), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestHelmCLIs: a cluster installed by the Helm 3 CLI (client-side apply,
// field manager "helm") is upgraded and uninstalled by us, and both helm
// majors read the releases we wrote.
func TestHelmCLIs(t *testing.T) {
	lab := getLab(t)
	ctx := context.Background()
	helm3, helm4 := helmAt(t, helmVersions[0]), helmAt(t, helmVersions[1])
	in := newInstaller(t, lab.Flags(), &syncBuffer{})
	t.Cleanup(func() {
		if _, err := in.Uninstall(context.Background(), UninstallOptions{Profile: mustProfile(t), Platform: "generic", Force: true}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	t.Run("helm 3 installs 1.31", func(t *testing.T) {
		dir := testCharts(t, "1.31.0")
		for _, r := range [][]string{
			{"istio-base", "base"}, {"istiod", "istio-discovery", "--set", "profile=ambient"},
			{"istio-cni", "istio-cni", "--set", "profile=ambient"}, {"ztunnel", "ztunnel"},
		} {
			args := append([]string{"install", r[0], filepath.Join(dir, r[1]), "-n", "istio-system", "--create-namespace"}, r[2:]...)
			runHelm(t, lab, helm3, args...)
		}
	})
	t.Run("we upgrade the Helm 3 releases to 1.32", func(t *testing.T) {
		src, err := NewLocalSource(testCharts(t, "1.32.1"))
		if err != nil {
			t.Fatal(err)
		}
		o := installOpts(t, src, "")
		o.RequireInstalled = true
		res := mustRun(ctx, t, in, o)
		want := map[string]string{"base": "upgraded@2", "istiod": "upgraded@2", "cni": "upgraded@2", "ztunnel": "upgraded@2"}
		if got := actions(res); !equalMaps(got, want) {
			t.Fatalf("actions = %v, want %v", got, want)
		}
	})
	for i, bin := range []string{helm3, helm4} {
		t.Run("helm "+helmVersions[i]+" reads our releases", func(t *testing.T) {
			var list []struct{ Name, Status, Chart, Revision string }
			out := runHelm(t, lab, bin, "list", "-n", "istio-system", "-o", "json")
			if err := json.Unmarshal([]byte(out), &list); err != nil {
				t.Fatalf("helm list: %v\n%s", err, out)
			}
			got := map[string]string{}
			for _, r := range list {
				got[r.Name] = r.Chart + " " + r.Status + " " + r.Revision
			}
			want := map[string]string{"istio-base": "base-1.32.1 deployed 2", "istiod": "istiod-1.32.1 deployed 2",
				"istio-cni": "cni-1.32.1 deployed 2", "ztunnel": "ztunnel-1.32.1 deployed 2"}
			if !equalMaps(got, want) {
				t.Errorf("helm list = %v, want %v", got, want)
			}
			var v map[string]any
			vals := runHelm(t, lab, bin, "get", "values", "istiod", "-n", "istio-system", "-o", "json")
			if err := json.Unmarshal([]byte(vals), &v); err != nil || v["profile"] != "ambient" {
				t.Errorf("helm get values istiod = %s (%v), want profile ambient", vals, err)
			}
		})
	}
	t.Run("we uninstall; helm 3 sees nothing left", func(t *testing.T) {
		if _, err := in.Uninstall(ctx, UninstallOptions{Profile: mustProfile(t), Platform: "generic", Force: true}); err != nil {
			t.Fatal(err)
		}
		if out := runHelm(t, lab, helm3, "list", "-n", "istio-system", "-q"); strings.TrimSpace(out) != "" {
			t.Errorf("helm list after our uninstall: %q", out)
		}
	})
}
