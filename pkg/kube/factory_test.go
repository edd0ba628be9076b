package kube

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/tools/clientcmd"
)

// TestNoClusterSaysWhere: with no usable kubeconfig the error names where
// it looked (the --kubeconfig file, each KUBECONFIG entry, or the default
// file), instead of client-go's refused connection to localhost:8080.
func TestNoClusterSaysWhere(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, tc := range []struct {
		name, env, flag, want string
	}{
		{"flag names an empty file", "", empty, "kubeconfig " + empty + " defines no cluster"},
		{"KUBECONFIG names a missing file", missing, "", "KUBECONFIG: " + missing + " does not exist"},
		{"KUBECONFIG lists two", missing + string(os.PathListSeparator) + empty, "", "KUBECONFIG: " + missing + " does not exist, " + empty + " defines no cluster"},
		{"nothing set", "", "", "KUBECONFIG is unset and " + clientcmd.RecommendedHomeFile + " does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(clientcmd.RecommendedHomeFile); err == nil && tc.env == "" && tc.flag == "" {
				t.Skipf("%s exists on this machine", clientcmd.RecommendedHomeFile)
			}
			t.Setenv("KUBECONFIG", tc.env)
			flags := genericclioptions.NewConfigFlags(true)
			if tc.flag != "" {
				flags.KubeConfig = &tc.flag
			}
			_, err := NewFactory(flags).RESTConfig()
			if !errors.Is(err, ErrNoCluster) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrNoCluster naming %q", err, tc.want)
			}
			// The flags that fix it are the command layer's to name.
			if strings.Contains(err.Error(), "--") {
				t.Errorf("error %v names a flag", err)
			}
		})
	}
}
