package rollout

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// A drain that a PodDisruptionBudget holds past DrainTimeout fails with
// ErrHeldByBudget, names the pod and the fix in the library's terms, and
// leaves the flag that skips the drain to the command layer.
func TestDrainHeldByBudget(t *testing.T) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0"}}
	kc := fake.NewClientset(p)
	evictions := 0
	kc.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		evictions++
		return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
	})
	nr := &nodeRun{r: &runner{o: Options{Kube: kc, DrainTimeout: 0}}, label: "node n1"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := nr.drain(ctx, []corev1.Pod{*p})
	if !errors.Is(err, ErrHeldByBudget) {
		t.Fatalf("err = %v, want ErrHeldByBudget", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "1 pod(s) still held by PodDisruptionBudgets") || !strings.Contains(msg, "shop/web-0") || !strings.Contains(msg, "free the budget") || strings.Contains(msg, "--") {
		t.Errorf("message %q: want the pod, the condition and the library's fix, no flag", msg)
	}
	if evictions != 1 {
		t.Errorf("%d eviction(s), want 1 before the deadline passed", evictions)
	}
}
