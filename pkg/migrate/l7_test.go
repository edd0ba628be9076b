package migrate

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestConvertPolicy(t *testing.T) {
	pod := func(name, app string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": app}}}
	}
	svc := func(name, app string, port, target int32) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app},
			Ports: []corev1.ServicePort{{Port: port, TargetPort: intstr.FromInt32(target)}}}}
	}
	pods := []*corev1.Pod{pod("api-1", "api"), pod("web-1", "web"), pod("lone-1", "lone")}
	svcs := []*corev1.Service{svc("api", "api", 80, 80), svc("web", "web", 80, 8080), svc("wide", "wide", 80, 80)}
	ap := func(spec map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
			"metadata": map[string]any{"name": "p", "namespace": "shop"}, "spec": spec}}
	}
	sel := func(app string) map[string]any { return map[string]any{"matchLabels": map[string]any{"app": app}} }
	get := []any{map[string]any{"to": []any{map[string]any{"operation": map[string]any{"methods": []any{"GET"}}}}}}
	tests := []struct {
		name   string
		spec   map[string]any
		target string
		refuse string
	}{
		{"selector to its Service", map[string]any{"selector": sel("api"), "rules": get}, "Service/api", ""},
		{"namespace-wide to the Gateway", map[string]any{"action": "DENY", "rules": get}, "Gateway/waypoint", ""},
		{"custom action", map[string]any{"action": "CUSTOM", "provider": map[string]any{"name": "x"}, "rules": get}, "", "spec.action CUSTOM"},
		{"ip blocks", map[string]any{"selector": sel("api"), "rules": []any{map[string]any{"from": []any{map[string]any{"source": map[string]any{"ipBlocks": []any{"10.0.0.0/8"}}}}}}}, "", "source.ipBlocks"},
		{"sni condition", map[string]any{"selector": sel("api"), "rules": []any{map[string]any{"when": []any{map[string]any{"key": "connection.sni", "values": []any{"a"}}}}}}, "", "connection.sni"},
		{"no Service", map[string]any{"selector": sel("lone"), "rules": get}, "", "behind no Service"},
		{"no pod", map[string]any{"selector": sel("gone"), "rules": get}, "", "selects no running pod"},
		{"remapped port rule", map[string]any{"selector": sel("web"), "rules": []any{map[string]any{"to": []any{map[string]any{"operation": map[string]any{"ports": []any{"8080"}, "methods": []any{"GET"}}}}}}}, "", "maps ports"},
		{"match expressions", map[string]any{"selector": map[string]any{"matchExpressions": []any{map[string]any{"key": "app"}}}, "rules": get}, "", "only matchLabels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mv, why := convertPolicy(ap(tt.spec), pods, svcs, "waypoint", map[string]bool{})
			if tt.refuse != "" {
				if mv != nil || !strings.Contains(why, tt.refuse) {
					t.Fatalf("want refusal %q, got move %v / %q", tt.refuse, mv, why)
				}
				return
			}
			if why != "" || mv.Target != tt.target || mv.Copy != "p-waypoint" {
				t.Fatalf("move %+v, refusal %q; want target %s", mv, why, tt.target)
			}
			spec := mv.CopyObject["spec"].(map[string]any)
			if _, has := spec["selector"]; has {
				t.Error("copy keeps the selector")
			}
			if len(spec["rules"].([]any)) != len(tt.spec["rules"].([]any)) {
				t.Error("copy's rules differ")
			}
		})
	}
	if _, why := convertPolicy(ap(map[string]any{"selector": sel("api"), "rules": get}), pods, svcs, "waypoint", map[string]bool{"p-waypoint": true}); !strings.Contains(why, "taken") {
		t.Errorf("taken copy name: %q", why)
	}
}
