package migrate

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// syntheticSnapshot builds nsCount injected namespaces holding podsPerNS pods
// each: a quarter with sidecars (half of them without HBONE), the rest plain,
// one hostNetwork pod per namespace, plus two Istio objects per namespace.
func syntheticSnapshot(nsCount, podsPerNS int) *Snapshot {
	s := &Snapshot{Resources: map[string][]unstructured.Unstructured{}, Installed: map[string]bool{}}
	for _, w := range watchedResources {
		s.Installed[w.Kind] = true
	}
	ctrl := true
	for i := range nsCount {
		ns := fmt.Sprintf("ns-%04d", i)
		s.Namespaces = append(s.Namespaces, corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, ResourceVersion: "1",
			Labels: map[string]string{ambient.LabelInjection: "enabled"}}})
		for j := range podsPerNS {
			p := corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%d-abc-%d", j%5, j), Namespace: ns,
					Labels:          map[string]string{"app": fmt.Sprint(j % 5), "pod-template-hash": "abc"},
					OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: fmt.Sprintf("app-%d-abc", j%5), Controller: &ctrl}}},
				Spec:   corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "app"}}},
				Status: corev1.PodStatus{Phase: corev1.PodRunning},
			}
			switch {
			case j == 0:
				p.Spec.HostNetwork = true
			case j%4 == 1:
				p.Annotations = map[string]string{ambient.AnnotationSidecarStatus: "{}"}
				proxy := corev1.Container{Name: ambient.ProxyContainer}
				if j%8 == 1 {
					proxy.Env = []corev1.EnvVar{{Name: EnvEnableHBONE, Value: "true"}}
				}
				p.Spec.Containers = append(p.Spec.Containers, proxy)
			}
			s.Pods = append(s.Pods, p)
		}
		ap := unstructured.Unstructured{Object: map[string]any{"kind": KindAuthorizationPolicy,
			"metadata": map[string]any{"name": "ap", "namespace": ns},
			"spec":     map[string]any{"rules": []any{map[string]any{"to": []any{map[string]any{"operation": map[string]any{"methods": []any{"GET"}}}}}}}}}
		dr := unstructured.Unstructured{Object: map[string]any{"kind": KindDestinationRule,
			"metadata": map[string]any{"name": "dr", "namespace": ns},
			"spec":     map[string]any{"host": "x", "subsets": []any{map[string]any{"name": "v1"}}}}}
		s.Resources[KindAuthorizationPolicy] = append(s.Resources[KindAuthorizationPolicy], ap)
		s.Resources[KindDestinationRule] = append(s.Resources[KindDestinationRule], dr)
	}
	return s
}

// BenchmarkBuildPlan plans 500 namespaces / 10,000 pods (target < 200 ms),
// and twice that, to show the cost grows linearly with the objects.
func BenchmarkBuildPlan(b *testing.B) {
	for _, size := range []struct{ ns, pods int }{{500, 20}, {1000, 20}} {
		s := syntheticSnapshot(size.ns, size.pods)
		b.Run(fmt.Sprintf("ns=%d/pods=%d", size.ns, size.ns*size.pods), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p, err := BuildPlan(s, Selection{AllInjected: true}, PlanOptions{})
				if err != nil || len(p.Namespaces) != size.ns {
					b.Fatalf("plan: %v (%d namespaces)", err, len(p.Namespaces))
				}
			}
		})
	}
}

// TestBuildPlanLargeIsFastAndLinear guards the benchmark's targets in the
// normal test run: 10,000 pods plan well under 200 ms, and doubling the
// cluster does not more than roughly double the time.
func TestBuildPlanLargeIsFastAndLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	measure := func(s *Snapshot) time.Duration {
		best := time.Hour
		for range 5 {
			start := time.Now()
			p, err := BuildPlan(s, Selection{AllInjected: true}, PlanOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d < best {
				best = d
			}
			if n := nsPlanOf(t, p, "ns-0001"); n.Pods.Total != 20 || n.Pods.HostNetwork != 1 || len(n.L7) != 2 {
				t.Fatalf("ns-0001 plan = %+v", n.Pods)
			}
		}
		return best
	}
	s1, s2 := syntheticSnapshot(500, 20), syntheticSnapshot(1000, 20)
	small, large := measure(s1), measure(s2)
	t.Logf("plan 500 ns / 10,000 pods: %s; 1000 ns / 20,000 pods: %s", small, large)
	if small > 200*time.Millisecond {
		t.Errorf("planning 10,000 pods took %s, target < 200ms", small)
	}
	// Allocations are deterministic where time on a shared machine is not:
	// O(objects) means twice the cluster costs about twice the allocations.
	allocs := func(s *Snapshot) float64 {
		return testing.AllocsPerRun(2, func() { _, _ = BuildPlan(s, Selection{AllInjected: true}, PlanOptions{}) })
	}
	a1, a2 := allocs(s1), allocs(s2)
	t.Logf("allocations: %.0f vs %.0f", a1, a2)
	if a2 > 2.2*a1 {
		t.Errorf("doubling the objects took %.0f allocations vs %.0f: not O(objects)", a2, a1)
	}
}
