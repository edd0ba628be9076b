package cmd

import (
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubefake"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/rollout"
)

func rolloutFixture() []runtime.Object {
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "ztunnel", UID: types.UID("ds-uid"), Generation: 2},
		Spec: appsv1.DaemonSetSpec{
			Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "ztunnel"}},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType},
		},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 2},
	}
	yes := true
	owner := []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "ztunnel", UID: ds.UID, Controller: &yes}}
	rev := func(n int64, hash string) *appsv1.ControllerRevision {
		return &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "ztunnel-" + hash, OwnerReferences: owner,
			Labels: map[string]string{"app": "ztunnel", appsv1.DefaultDaemonSetUniqueLabelKey: hash}}, Revision: n}
	}
	zt := func(node, hash, version string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "ztunnel-" + node, OwnerReferences: owner,
				Labels: map[string]string{"app": "ztunnel", appsv1.DefaultDaemonSetUniqueLabelKey: hash}},
			Spec:   corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "istio-proxy", Image: "istio/ztunnel:" + version}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		}
	}
	return []runtime.Object{ds, rev(1, "old"), rev(2, "new"), zt("node-c", "old", "1.30.0"), zt("node-a", "new", "1.30.1"), zt("node-b", "old", "1.30.0")}
}

func TestFakeZtunnelRolloutDryRunPlansInNameOrder(t *testing.T) {
	f := kubefake.New(rolloutFixture(), nil)
	out, errOut, err := runFake(t, f, "ztunnel", "rollout", "--no-chart", "--dry-run", "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	var rep rollout.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got []string
	for _, n := range rep.Nodes {
		got = append(got, n.Node+"="+n.Result)
	}
	want := "node-a=up-to-date node-b=planned node-c=planned"
	if strings.Join(got, " ") != want {
		t.Errorf("plan = %v, want %s", got, want)
	}
	if !rep.DryRun || len(rep.Steps) == 0 || rep.Steps[2] != "drain" {
		t.Errorf("report must be a dry run listing the steps: %+v", rep)
	}
	if !strings.Contains(errOut, "node node-b: record, cordon, drain") {
		t.Errorf("stderr must list each planned node's steps:\n%s", errOut)
	}
	// A dry run writes nothing: no journal ConfigMap.
	c, _ := f.Clients()
	if cms, _ := c.Kube.CoreV1().ConfigMaps("istio-system").List(t.Context(), metav1.ListOptions{}); len(cms.Items) != 0 {
		t.Errorf("dry run wrote %d configmap(s)", len(cms.Items))
	}
}

func TestFakeZtunnelRolloutRefusesBadFlags(t *testing.T) {
	f := kubefake.New(nil, nil)
	for _, args := range [][]string{
		{"ztunnel", "rollout", "--max-unavailable", "0"},
		{"ztunnel", "rollout", "--no-chart", "--version", "1.31.0"},
		{"ztunnel", "rollout", "-o", "xml"},
	} {
		_, _, err := runFake(t, f, args...)
		if ExitCode(err) != ExitUsage {
			t.Errorf("%v: exit %d (%v), want %d", args, ExitCode(err), err, ExitUsage)
		}
	}
}
