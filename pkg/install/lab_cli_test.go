package install

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os/exec"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
)

// cliRun is one run of the built kubectl-ambient binary.
type cliRun struct {
	code           int
	stdout, stderr string
}

// runPlugin runs the plugin binary against the lab, with its own chart
// cache, and returns its exit code and output.
func runPlugin(t *testing.T, bin string, lab *kubelab.Lab, cacheDir string, args ...string) cliRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append(args, "--kubeconfig", lab.Kubeconfig, "--cache-dir", cacheDir)
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := cliRun{stdout: out.String(), stderr: errOut.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		t.Fatalf("kubectl-ambient %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("kubectl-ambient %s: exit %d\nstderr:\n%s", strings.Join(args[:len(args)-4], " "), r.code, r.stderr)
	return r
}

// TestCLIUpgradeChain walks 1.30 -> 1.31 -> 1.32 through the commands a
// user runs (the built binary, a Helm repository over HTTP), and checks
// what the user would: exit codes, messages, the releases' chart versions
// (read back through Helm's storage) and the ztunnel image.
func TestCLIUpgradeChain(t *testing.T) {
	lab := getLab(t)
	ctx := context.Background()
	bin := kubelab.BuildBinary(t, kubelab.PluginPackage)
	srv := serveCharts(t, testCharts(t))
	cache := t.TempDir()
	in := newInstaller(t, lab.Flags(), nil)
	t.Cleanup(func() {
		if t.Failed() {
			_, _ = in.Uninstall(context.Background(), UninstallOptions{Profile: mustProfile(t), Platform: "generic", Force: true})
		}
	})
	type relState struct {
		version  string
		revision int
	}
	state := func() map[string]relState {
		out := map[string]relState{}
		for name, rel := range releases(t, in) {
			out[name] = relState{rel.Chart.Metadata.Version, rel.Version}
		}
		return out
	}
	// wantAll checks every release is at chart version v, through Helm's
	// storage and, as an oracle of its own, the lab's helm CLI (v4).
	wantAll := func(t *testing.T, v string) map[string]relState {
		t.Helper()
		got := state()
		for _, r := range []string{"istio-base", "istiod", "istio-cni", "ztunnel"} {
			if got[r].version != v {
				t.Fatalf("release %s at %q, want %s (all: %v)", r, got[r].version, v, got)
			}
		}
		out, ok := helmCLI(t, lab, "list", "-n", "istio-system", "-o", "json")
		if !ok {
			return got
		}
		var list []struct{ Name, Status, Chart string }
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("helm list: %v\n%s", err, out)
		}
		seen := map[string]string{}
		for _, r := range list {
			seen[r.Name] = r.Chart + " " + r.Status
		}
		want := map[string]string{"istio-base": "base-" + v + " deployed", "istiod": "istiod-" + v + " deployed",
			"istio-cni": "cni-" + v + " deployed", "ztunnel": "ztunnel-" + v + " deployed"}
		if !maps.Equal(seen, want) {
			t.Errorf("helm list = %v, want %v", seen, want)
		}
		return got
	}
	ztunnelImage := func() string {
		return daemonSet(ctx, t, lab, "ztunnel").Spec.Template.Spec.Containers[0].Image
	}
	mustOK := func(t *testing.T, r cliRun) {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
	}
	var before map[string]relState

	t.Run("install 1.30.0", func(t *testing.T) {
		r := runPlugin(t, bin, lab, cache, "install", "--repo", srv.URL, "--version", "1.30.0", "--timeout", "1m")
		mustOK(t, r)
		before = wantAll(t, "1.30.0")
		if img := ztunnelImage(); !strings.HasSuffix(img, "/ztunnel:1.30.0") {
			t.Errorf("ztunnel image %s", img)
		}
		if !strings.Contains(r.stderr, "ambient profile installed and ready") {
			t.Errorf("no summary on stderr")
		}
	})
	t.Run("upgrade --version 1.32.1 skips a minor and is refused", func(t *testing.T) {
		r := runPlugin(t, bin, lab, cache, "upgrade", "--repo", srv.URL, "--version", "1.32.1")
		if r.code != 1 { // pkg/cmd's ExitFailure: a refused operation, not a usage mistake
			t.Fatalf("exit %d, want 1\nstderr:\n%s", r.code, r.stderr)
		}
		for _, want := range []string{"upgrade to the newest 1.31 patch first", "kubectl ambient upgrade --version"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q", want)
			}
		}
		if got := state(); !maps.Equal(got, before) {
			t.Errorf("a refused upgrade changed releases: %v, before %v", got, before)
		}
	})
	t.Run("upgrade --version 1.31.0", func(t *testing.T) {
		r := runPlugin(t, bin, lab, cache, "upgrade", "--repo", srv.URL, "--version", "1.31.0", "--timeout", "1m")
		mustOK(t, r)
		wantAll(t, "1.31.0")
		// One line per component as it becomes ready, control plane first.
		last := -1
		for _, comp := range []string{"base", "istiod", "cni", "ztunnel"} {
			i := strings.Index(r.stderr, "✓ "+comp+": upgraded, revision 2, ready (")
			if i < 0 || i < last {
				t.Errorf("stderr lacks %s's upgraded line after the one before it", comp)
			}
			last = i
		}
		if !strings.Contains(r.stderr, "ambient profile upgraded and ready") {
			t.Errorf("no summary on stderr")
		}
		if img := ztunnelImage(); !strings.HasSuffix(img, "/ztunnel:1.31.0") {
			t.Errorf("ztunnel image %s", img)
		}
	})
	t.Run("upgrade without --version takes the newest 1.32, -o json", func(t *testing.T) {
		r := runPlugin(t, bin, lab, cache, "upgrade", "--repo", srv.URL, "-o", "json", "--timeout", "1m")
		mustOK(t, r)
		before = wantAll(t, "1.32.1")
		if !strings.Contains(r.stderr, "ztunnel: chart version 1.32.1, resolved from ~1.32.0") {
			t.Errorf("the resolved version is not on stderr")
		}
		if img := ztunnelImage(); !strings.HasSuffix(img, "/ztunnel:1.32.1") {
			t.Errorf("ztunnel image %s", img)
		}
		// stdout is one JSON document a CI job parses; progress stays on stderr.
		var doc struct {
			Platform   string `json:"platform"`
			Components []struct {
				Chart    string `json:"chart"`
				Release  string `json:"release"`
				Version  string `json:"version"`
				Action   string `json:"action"`
				Revision int    `json:"revision"`
			} `json:"components"`
			Warnings []string `json:"warnings"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
		}
		if len(doc.Components) != 4 || doc.Platform == "" {
			t.Fatalf("json: %+v", doc)
		}
		// The lab has no Gateway API CRDs: the warning printed on stderr is
		// in the document too, where a CI job reads it.
		if len(doc.Warnings) != 1 || !strings.Contains(doc.Warnings[0], "Gateway API CRDs") {
			t.Errorf("json warnings %q, want the missing Gateway API CRDs", doc.Warnings)
		}
		for _, c := range doc.Components {
			if c.Version != "1.32.1" || c.Action != "upgraded" || c.Revision != before[c.Release].revision {
				t.Errorf("json component %+v, release %v", c, before[c.Release])
			}
		}
	})
	t.Run("upgrade --dry-run -o yaml renders and changes nothing", func(t *testing.T) {
		r := runPlugin(t, bin, lab, cache, "upgrade", "--repo", srv.URL, "--dry-run", "-o", "yaml")
		mustOK(t, r)
		for _, want := range []string{"kind: DaemonSet", "/ztunnel:1.32.1"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("rendered manifests lack %q", want)
			}
		}
		if got := state(); !maps.Equal(got, before) {
			t.Errorf("a dry run changed releases: %v, before %v", got, before)
		}
	})
	t.Run("uninstall --yes", func(t *testing.T) {
		r := runPlugin(t, bin, lab, cache, "uninstall", "--yes")
		mustOK(t, r)
		if !strings.Contains(r.stdout, "removed: ") {
			t.Errorf("stdout lacks what was removed:\n%s", r.stdout)
		}
		if got := state(); len(got) != 0 {
			t.Errorf("releases left: %v", got)
		}
		if out, ok := helmCLI(t, lab, "list", "-A", "-q"); ok && strings.TrimSpace(out) != "" {
			t.Errorf("helm list after uninstall:\n%s", out)
		}
		if _, err := lab.Clients.Kube.AppsV1().DaemonSets("istio-system").Get(ctx, "ztunnel", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("ztunnel DaemonSet after uninstall: %v", err)
		}
	})
}
