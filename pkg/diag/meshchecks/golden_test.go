package meshchecks

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/golden"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/checker"
)

// compareGolden compares got with testdata/name, or rewrites it with -update.
func compareGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Assert(t, filepath.Join("testdata", name), got)
}

func renderTable(t *testing.T, cs []checker.Check, verbose bool) []byte {
	var buf bytes.Buffer
	_, sum := run(t, cs, &checker.TableObserver{W: &buf, ShowSkipped: verbose})
	checker.WriteSummary(&buf, sum, false)
	return buf.Bytes()
}

func brokenInstall() *fixture {
	f := healthyInstall()
	f.add(node("node-d"), pod("istio-system", "istio-cni-node-9", "node-d", map[string]string{"k8s-app": "istio-cni-node"}, nil, true),
		releaseSecret("istio-system", "ztunnel", 3, "failed", "1.28.1"),
		pod("shop", "api-0", "node-a", nil, map[string]string{ambient.AnnotationRedirection: "pending"}, true),
		pod("shop", "old-0", "node-b", nil, map[string]string{ambient.AnnotationSidecarStatus: "{}"}, true))
	f.replace(namespace("shop", map[string]string{ambient.LabelDataplaneMode: "ambient", ambient.LabelInjection: "enabled"}))
	f.dyn[1] = waypoint("shop", "waypoint", false)
	return f
}

func brokenCluster() *fixture {
	f := cleanCluster()
	withCilium(map[string]string{"cni-exclusive": "true", "enable-bpf-masquerade": "true"})(f)
	withSidecarPod(false)(f)
	f.denied = map[string]bool{"customresourcedefinitions": true, "mutatingwebhookconfigurations": true}
	f.add(namespace("istio-system", map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}), denyAll("shop"))
	f.dyn = nil
	return f
}

func TestGoldenTables(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fx      func() *fixture
		checks  func(*Cluster, *fixture) []checker.Check
		verbose bool
	}{
		{"precheck-clean.golden", cleanCluster, precheckOf, false},
		{"precheck-clean-verbose.golden", cleanCluster, precheckOf, true},
		{"precheck-broken.golden", brokenCluster, precheckOf, false},
		{"check-healthy.golden", healthyInstall, healthOf, false},
		{"check-broken.golden", brokenInstall, healthOf, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.fx()
			compareGolden(t, tc.name, renderTable(t, tc.checks(f.cluster(t), f), tc.verbose))
		})
	}
}
