package collector

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
)

func svc(ns, name string, labels map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}, Spec: corev1.ServiceSpec{Ports: ports}}
}

func TestDiscoverPrometheus(t *testing.T) {
	cfg := &rest.Config{Host: "https://cluster.example:6443"}
	tests := []struct {
		name     string
		services []*corev1.Service
		want     string // substring of the address; "" means ErrNoPrometheus
	}{
		{"none", []*corev1.Service{svc("default", "web", map[string]string{"app": "web"}, corev1.ServicePort{Port: 80})}, ""},
		{"istio add-on in the ztunnel namespace wins over monitoring", []*corev1.Service{
			svc("monitoring", "prometheus", map[string]string{"app.kubernetes.io/name": "prometheus"}, corev1.ServicePort{Name: "web", Port: 9090}),
			svc("istio-system", "prometheus", map[string]string{"app.kubernetes.io/name": "prometheus"}, corev1.ServicePort{Name: "http", Port: 9090}),
		}, "/api/v1/namespaces/istio-system/services/prometheus:http/proxy"},
		{"operator's governing service, port 9090 unnamed", []*corev1.Service{
			svc("monitoring", "prometheus-operated", map[string]string{"operated-prometheus": "true"}, corev1.ServicePort{Port: 8080}, corev1.ServicePort{Port: 9090}),
		}, "/api/v1/namespaces/monitoring/services/prometheus-operated:9090/proxy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset()
			for _, s := range tt.services {
				if _, err := c.CoreV1().Services(s.Namespace).Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			p, err := DiscoverPrometheus(t.Context(), c, cfg, "istio-system")
			if tt.want == "" {
				if !errors.Is(err, ErrNoPrometheus) {
					t.Fatalf("want ErrNoPrometheus, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(p.String(), "found by label") {
				t.Errorf("the source must say how it was found: %s", p)
			}
			if addr := p.Address(); !strings.HasPrefix(addr, cfg.Host) || !strings.Contains(addr, tt.want) {
				t.Errorf("address %s, want it through %s", addr, tt.want)
			}
		})
	}
}
