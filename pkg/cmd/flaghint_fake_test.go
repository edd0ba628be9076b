package cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubefake"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/checker"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/migrate"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/rollout"
)

// These run the command tree on the fake factory and check that a library
// condition reaches the user with the flag that fixes it (flagHints).

func TestFakeNoClusterNamesKubeconfig(t *testing.T) {
	f := kubefake.New(nil, nil)
	f.Err = fmt.Errorf("%w: no kubeconfig found", kube.ErrNoCluster)
	_, _, err := runFake(t, f, "enroll", "namespace", "shop")
	if !errors.Is(err, kube.ErrNoCluster) || ExitCode(err) != ExitFailure {
		t.Fatalf("err = %v (exit %d), want ErrNoCluster, exit 1", err, ExitCode(err))
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "no cluster configured: no kubeconfig found") || !strings.Contains(msg, "--kubeconfig") || !strings.Contains(msg, "--context") {
		t.Errorf("message %q: want the condition, then --kubeconfig and --context", msg)
	}
}

func TestFakeRolloutWithoutChartNamesNoChart(t *testing.T) {
	objs := rolloutFixture()
	objs[0].(*appsv1.DaemonSet).Spec.UpdateStrategy.Type = appsv1.RollingUpdateDaemonSetStrategyType
	f := kubefake.New(objs, nil).AllowAll()
	_, errOut, err := runFake(t, f, "ztunnel", "rollout", "--no-chart")
	if !errors.Is(err, rollout.ErrNotOnDelete) {
		t.Fatalf("err = %v, want ErrNotOnDelete\n%s", err, errOut)
	}
	if msg := err.Error(); !strings.Contains(msg, "istio-system/ztunnel uses updateStrategy RollingUpdate") || !strings.Contains(msg, "drop --no-chart") {
		t.Errorf("message %q: want the DaemonSet, its strategy and --no-chart", msg)
	}
}

// A check's error goes into the results, not to the command's error: the
// runner adds the hint to the failed check's own.
func TestFakeCheckMissingNamespaceNamesFlag(t *testing.T) {
	f := kubefake.New([]runtime.Object{ns("default", nil)}, nil).AllowAll()
	f.Kube.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{GitVersion: "v1.34.1", Major: "1", Minor: "34"}
	f.NS, f.Explicit = "nope", true
	out, _, err := runFake(t, f, "check", "--cert-sample", "0", "-o", "json")
	if ExitCode(err) != ExitFailure {
		t.Fatalf("err = %v, want exit 1", err)
	}
	var rep struct{ Results []checker.Result }
	if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil {
		t.Fatalf("%v\n%s", jerr, out)
	}
	n := 0
	for _, r := range rep.Results {
		if strings.Contains(r.Message, `namespace "nope" not found`) {
			n++
			if !strings.HasSuffix(r.Hint, "check --namespace") || strings.Contains(r.Message, "--") {
				t.Errorf("check %s: message %q hint %q: want the flag in the hint only", r.ID, r.Message, r.Hint)
			}
		}
	}
	if n == 0 {
		t.Errorf("no check reported the missing namespace:\n%s", out)
	}
}

func TestFakeEnrollBlockedNamesForce(t *testing.T) {
	gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "sidecars"}
	sc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
		"metadata": map[string]any{"name": "default", "namespace": "shop"}, "spec": map[string]any{},
	}}
	f := kubefake.New([]runtime.Object{ns("shop", map[string]string{"istio-injection": "enabled"}), pod("shop", "web")},
		map[schema.GroupVersionResource]string{gvr: "SidecarList"}, sc).AllowAll()
	f.Kube.Resources = []*metav1.APIResourceList{{GroupVersion: "networking.istio.io/v1",
		APIResources: []metav1.APIResource{{Name: "sidecars", Kind: "Sidecar", Namespaced: true}}}}
	_, errOut, err := runFake(t, f, "enroll", "namespace", "shop", "--verify=false")
	if !errors.Is(err, migrate.ErrBlocked) {
		t.Fatalf("err = %v, want ErrBlocked\n%s", err, errOut)
	}
	if msg := err.Error(); !strings.Contains(msg, "shop (Sidecar default)") || !strings.Contains(msg, "remove them; or pass --force to enroll anyway") {
		t.Errorf("message %q: want the blocker, the library's fix and --force", msg)
	}
	got, gerr := f.Kube.CoreV1().Namespaces().Get(t.Context(), "shop", metav1.GetOptions{})
	if gerr != nil || got.Labels[ambient.LabelDataplaneMode] != "" {
		t.Errorf("a blocked enroll changed the namespace: %v %v", got.Labels, gerr)
	}
}
