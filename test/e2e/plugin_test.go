// Package e2e runs the built kubectl-ambient binary the way users do: through
// the real kubectl's plugin discovery and completion, against the lab cluster.
package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
)

func TestMain(m *testing.M) { kubelab.Main(m, kubelab.Options{Nodes: 3}) }

// pluginEnv builds the plugin into a temp dir and returns an environment whose
// PATH holds only that dir and the lab's kubectl, with a sandboxed HOME.
func pluginEnv(t *testing.T, kubeconfig string) (kubectl string, env []string) {
	t.Helper()
	lab := kubelab.Get(t)
	dir := t.TempDir()
	bin := kubelab.BuildBinary(t, kubelab.PluginPackage, "-X github.com/kubectl-ambient/kubectl-ambient/pkg/version.Version=v9.9.9-e2e")
	if err := os.Symlink(bin, filepath.Join(dir, "kubectl-ambient")); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(repoRoot(t), "kubectl_complete-ambient"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kubectl_complete-ambient"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	kubectl = filepath.Join(lab.BinDir, "kubectl")
	home := t.TempDir()
	env = []string{
		"PATH=" + dir + string(os.PathListSeparator) + lab.BinDir + string(os.PathListSeparator) + "/usr/bin:/bin",
		"HOME=" + home,
		"KUBECONFIG=" + kubeconfig,
	}
	return kubectl, env
}

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(wd, "..", "..")
}

func run(t *testing.T, env []string, name string, args ...string) (string, string, error) {
	t.Helper()
	c := exec.Command(name, args...)
	c.Env = env
	var out, errOut strings.Builder
	c.Stdout, c.Stderr = &out, &errOut
	err := c.Run()
	return out.String(), errOut.String(), err
}

func TestKubectlFindsPlugin(t *testing.T) {
	lab := kubelab.Get(t)
	kubectl, env := pluginEnv(t, lab.Kubeconfig)

	out, stderr, err := run(t, env, kubectl, "plugin", "list")
	if err != nil {
		t.Fatalf("kubectl plugin list: %v\n%s%s", err, out, stderr)
	}
	if !strings.Contains(out, "kubectl-ambient") {
		t.Fatalf("kubectl plugin list does not show kubectl-ambient:\n%s", out)
	}

	out, stderr, err = run(t, env, kubectl, "ambient", "version", "-o", "json")
	if err != nil {
		t.Fatalf("kubectl ambient version: %v\n%s", err, stderr)
	}
	var rep struct {
		Client struct{ Version string }
		Server *struct{ Kubernetes, Host string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("version -o json is not JSON: %v\n%s", err, out)
	}
	if rep.Client.Version != "v9.9.9-e2e" {
		t.Errorf("client version = %q, want the ldflags value v9.9.9-e2e", rep.Client.Version)
	}
	if rep.Server == nil || !strings.HasPrefix(rep.Server.Kubernetes, "v1.") {
		t.Errorf("server version missing or wrong against the lab: %+v (stderr %s)", rep.Server, stderr)
	}

	out, _, err = run(t, env, kubectl, "ambient", "--help")
	if err != nil {
		t.Fatalf("kubectl ambient --help: %v", err)
	}
	if !strings.Contains(out, "kubectl ambient [command]") {
		t.Errorf("help should read as a kubectl plugin (\"kubectl ambient [command]\"):\n%s", out)
	}
}

func TestVersionWithoutCluster(t *testing.T) {
	_, env := pluginEnv(t, filepath.Join(t.TempDir(), "missing-kubeconfig"))
	bin := strings.TrimPrefix(strings.SplitN(env[0], string(os.PathListSeparator), 2)[0], "PATH=")
	out, stderr, err := run(t, env, filepath.Join(bin, "kubectl-ambient"), "version")
	if err != nil {
		t.Fatalf("version must succeed without a cluster: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "Client Version: v9.9.9-e2e") {
		t.Errorf("client version missing:\n%s", out)
	}
	if !strings.Contains(stderr, "warning:") || strings.Contains(out, "Server Version") {
		t.Errorf("without a cluster, want a warning on stderr and no server line; stdout %q stderr %q", out, stderr)
	}
}

func TestCompletionThroughKubectl(t *testing.T) {
	lab := kubelab.Get(t)
	kubectl, env := pluginEnv(t, lab.Kubeconfig)
	// This is what the shell asks kubectl when the user types `kubectl ambient ver<TAB>`.
	out, stderr, err := run(t, env, kubectl, "__complete", "ambient", "ver")
	if err != nil {
		t.Fatalf("kubectl __complete: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "version") {
		t.Fatalf("completion through kubectl did not offer \"version\":\n%s", out)
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		bin := strings.TrimPrefix(strings.SplitN(env[0], string(os.PathListSeparator), 2)[0], "PATH=")
		out, _, err := run(t, env, filepath.Join(bin, "kubectl-ambient"), "completion", shell)
		if err != nil || len(out) < 100 {
			t.Errorf("completion %s: err %v, %d bytes", shell, err, len(out))
		}
	}
}
