package capture

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

func pod(ns, name, ip string, labels map[string]string, mod func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}, Status: corev1.PodStatus{PodIP: ip}}
	if mod != nil {
		mod(p)
	}
	return p
}

func clientsOf(objs ...*corev1.Pod) ClientsFunc {
	kc := fake.NewClientset()
	for _, p := range objs {
		_, _ = kc.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{})
	}
	return func() (*kube.Clients, error) {
		return &kube.Clients{Config: &rest.Config{Host: "https://cluster.test"}, Kube: kc}, nil
	}
}

func TestClusterPods(t *testing.T) {
	enrolled := func(p *corev1.Pod) { p.Annotations = map[string]string{ambient.AnnotationRedirection: "enabled"} }
	host := func(p *corev1.Pod) { p.Spec.HostNetwork = true }
	c := ClusterPods{Clients: clientsOf(
		pod("shop", "cart", "10.0.0.1", nil, enrolled),
		pod("web", "front", "10.0.1.1", nil, nil),
		pod("kube-system", "node-agent", "192.168.0.10", nil, host),
	)}
	m, err := c.PodMap(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := mtls.PodMap{
		netip.MustParseAddr("10.0.0.1"): {Namespace: "shop", Pod: "cart", Enrolled: true},
		netip.MustParseAddr("10.0.1.1"): {Namespace: "web", Pod: "front"},
	}
	if len(m) != len(want) {
		t.Fatalf("pod map %+v, want %+v (host-network pods left out)", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %+v, want %+v", k, m[k], v)
		}
	}
	noCluster := ClusterPods{Clients: func() (*kube.Clients, error) { return nil, kube.ErrNoCluster }}
	if _, err := noCluster.PodMap(context.Background()); !errors.Is(err, kube.ErrNoCluster) || !errors.Is(err, ErrPodMap) || !strings.Contains(err.Error(), "map capture addresses to pods") {
		t.Errorf("without a cluster: %v", err)
	}
	if _, err := (Capturer{Clients: noCluster.Clients}).Capture(context.Background(), mtls.LiveConfig{Namespace: "x"}, nil); !errors.Is(err, kube.ErrNoCluster) {
		t.Errorf("capture without a cluster: %v", err)
	}
}

func TestCleanup(t *testing.T) {
	clients := clientsOf(
		pod("shop", "ambient-capture-abcde-node-1", "", map[string]string{Label: "true"}, nil),
		pod("web", "ambient-capture-fghij-node-2", "", map[string]string{Label: "true"}, nil),
		pod("shop", "cart", "10.0.0.1", nil, nil),
	)
	c, _ := clients()
	ctx := context.Background()
	gone, err := Cleanup(ctx, c.Kube, "")
	if err != nil || strings.Join(gone, ",") != "shop/ambient-capture-abcde-node-1,web/ambient-capture-fghij-node-2" {
		t.Fatalf("cleanup = %v, %v", gone, err)
	}
	left, err := c.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil || len(left.Items) != 1 || left.Items[0].Name != "cart" {
		t.Errorf("pods left: %+v %v", left, err)
	}
}

func TestCapturePodAndSelection(t *testing.T) {
	p := capturePod("shop", strings.Repeat("n", 70), "abcde", DefaultImage, 10*time.Second)
	c := p.Spec.Containers[0]
	if len(p.Name) > 63 || !strings.HasPrefix(p.Name, "ambient-capture-abcde-") || p.Labels[Label] != "true" || !p.Spec.HostNetwork ||
		c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged || strings.Join(c.Command, " ") != "sleep 130" {
		t.Errorf("capture pod %+v", p)
	}
	for _, tt := range []struct {
		pod  *corev1.Pod
		w    string
		want bool
	}{
		{pod("s", "cart-7d9f-x2", "", nil, nil), "cart", true},
		{pod("s", "cart", "", nil, nil), "cart", true},
		{pod("s", "cartography", "", nil, nil), "cart", false},
		{pod("s", "x", "", map[string]string{"app": "cart"}, nil), "cart", true},
		{pod("s", "x", "", map[string]string{"app.kubernetes.io/name": "cart"}, nil), "cart", true},
		{pod("s", "cart", "", nil, nil), "", false},
	} {
		if got := matchWorkload(tt.pod, tt.w); got != tt.want {
			t.Errorf("matchWorkload(%s %v, %q) = %v", tt.pod.Name, tt.pod.Labels, tt.w, got)
		}
	}
}

func TestCleanupCaptureNamespaces(t *testing.T) {
	clients := clientsOf()
	c, _ := clients()
	ctx := context.Background()
	if err := createCaptureNamespace(ctx, c.Kube, NamespaceName("abcde"), map[string]string{"x": "y"}); err != nil {
		t.Fatal(err)
	}
	ns, err := c.Kube.CoreV1().Namespaces().Get(ctx, "ambient-capture-abcde", metav1.GetOptions{})
	if err != nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" || ns.Labels[Label] != "true" || ns.Labels["x"] != "y" {
		t.Fatalf("capture namespace %+v, %v: want it labelled privileged and as a capture namespace", ns, err)
	}
	gone, err := Cleanup(ctx, c.Kube, "")
	if err != nil || strings.Join(gone, ",") != "namespace ambient-capture-abcde" {
		t.Fatalf("cleanup = %v, %v", gone, err)
	}
}

// A refusal never advises relaxing the namespace the capture pod was
// refused in; it says which namespace refused (the run's own or the one
// named), so the caller can offer one that admits privileged pods already.
func TestExplainCreateNeverRelaxesANamespace(t *testing.T) {
	refused := apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "ambient-capture-x", errors.New(`violates PodSecurity "restricted:latest": privileged`))
	for own, want := range map[bool]error{true: ErrOwnNamespace, false: ErrNamespaceRefused} {
		err := explainCreate("shop", own, refused)
		msg := err.Error()
		if !errors.Is(err, want) || !apierrors.IsForbidden(err) || !strings.Contains(msg, `namespace "shop"`) {
			t.Errorf("own=%v: %v, want %v wrapping the refusal", own, err, want)
		}
		if strings.Contains(msg, "label the namespace") || strings.Contains(msg, "enforce=privileged") || strings.Contains(msg, "--") {
			t.Errorf("own=%v: %s", own, msg)
		}
	}
}

// No pod matching the selectors is ErrNoPods, naming the selectors and the
// namespace; which flags set them is the command layer's to say.
func TestLiveNoMatchingPods(t *testing.T) {
	kc := fake.NewClientset()
	_, err := Live(context.Background(), nil, kc, Options{LiveConfig: mtls.LiveConfig{Namespace: "shop", From: "web", To: "db"}})
	if !errors.Is(err, ErrNoPods) {
		t.Fatalf("err = %v, want ErrNoPods", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, `(from "web", to "db") in namespace "shop"`) || strings.Contains(msg, "--") {
		t.Errorf("message %q: want the selectors and namespace, no flag", msg)
	}
}
