package collector

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
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
		says     string // substring of how the source describes itself
	}{
		{"none", []*corev1.Service{svc("default", "web", map[string]string{"app": "web"}, corev1.ServicePort{Port: 80})}, "", ""},
		{"istio add-on in the ztunnel namespace wins over monitoring", []*corev1.Service{
			svc("monitoring", "prometheus", map[string]string{"app.kubernetes.io/name": "prometheus"}, corev1.ServicePort{Name: "web", Port: 9090}),
			svc("istio-system", "prometheus", map[string]string{"app.kubernetes.io/name": "prometheus"}, corev1.ServicePort{Name: "http", Port: 9090}),
		}, "/api/v1/namespaces/istio-system/services/prometheus:http/proxy",
			"also found monitoring/prometheus: chose the one in ztunnel's namespace istio-system"},
		{"two elsewhere: the first by namespace and name", []*corev1.Service{
			svc("observability", "prometheus", map[string]string{"app.kubernetes.io/name": "prometheus"}, corev1.ServicePort{Name: "http", Port: 9090}),
			svc("monitoring", "prometheus", map[string]string{"app.kubernetes.io/name": "prometheus"}, corev1.ServicePort{Name: "web", Port: 9090}),
		}, "/api/v1/namespaces/monitoring/services/prometheus:web/proxy",
			"also found observability/prometheus: chose the first by namespace and name"},
		{"operator's governing service, port 9090 unnamed", []*corev1.Service{
			svc("monitoring", "prometheus-operated", map[string]string{"operated-prometheus": "true"}, corev1.ServicePort{Port: 8080}, corev1.ServicePort{Port: 9090}),
		}, "/api/v1/namespaces/monitoring/services/prometheus-operated:9090/proxy", "found by label operated-prometheus=true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset()
			var asked []string
			c.PrependProxyReactor("services", func(a k8stesting.Action) (bool, rest.ResponseWrapper, error) {
				p := a.(k8stesting.ProxyGetAction)
				asked = append(asked, p.GetNamespace()+"/"+p.GetName()+":"+p.GetPort()+"/proxy"+p.GetPath())
				return true, rawResponse{body: `{"status":"success","data":{"resultType":"scalar","result":[0,"1"]}}`}, nil
			})
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
			if !strings.Contains(p.String(), tt.says) {
				t.Errorf("the source must say how it was found (%q): %s", tt.says, p)
			}
			if len(asked) != 1 || !strings.Contains(tt.want, "/namespaces/"+strings.TrimSuffix(strings.Replace(asked[0], "/", "/services/", 1), "/api/v1/query")) {
				t.Errorf("asked %v through the service proxy, want one query to the chosen service (%s)", asked, tt.want)
			}
			if addr := p.Address(); !strings.HasPrefix(addr, cfg.Host) || !strings.Contains(addr, tt.want) {
				t.Errorf("address %s, want it through %s", addr, tt.want)
			}
		})
	}
}

// rawResponse is what the fake clientset's proxy reactor answers.
type rawResponse struct {
	body string
	err  error
}

func (r rawResponse) DoRaw(context.Context) ([]byte, error) { return []byte(r.body), r.err }
func (r rawResponse) Stream(context.Context) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(r.body)), r.err
}

// TestDiscoverPrometheusAsksTheService: the chosen Service is asked one
// query first, so a missing permission or an empty Service fails by name.
func TestDiscoverPrometheusAsksTheService(t *testing.T) {
	cfg := &rest.Config{Host: "https://cluster.example:6443"}
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "services/proxy"}, "prometheus", errors.New("user cannot get services/proxy"))
	unavailable := apierrors.NewServiceUnavailable("no endpoints available for service \"prometheus\"")
	tests := []struct {
		name     string
		resp     rawResponse
		mayProxy bool // what SelfSubjectAccessReview answers
		want     []string
	}{
		{"no permission", rawResponse{err: forbidden}, false, []string{"grant get on services/proxy in namespace istio-system", "istio-system/prometheus"}},
		{"refused behind the service", rawResponse{err: forbidden}, true, []string{"the server behind the service refused the request", "reach Prometheus by an address"}},
		{"no ready pod", rawResponse{err: unavailable}, false, []string{"no endpoints available", "kubectl get endpointslices -n istio-system -l kubernetes.io/service-name=prometheus"}},
		{"not a prometheus", rawResponse{body: "<html>grafana</html>"}, false, []string{"does not answer as a Prometheus API", "grafana"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset(svc("istio-system", "prometheus", map[string]string{"app.kubernetes.io/name": "prometheus"}, corev1.ServicePort{Name: "http", Port: 9090}))
			c.PrependProxyReactor("services", func(k8stesting.Action) (bool, rest.ResponseWrapper, error) { return true, tt.resp, nil })
			c.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
				r := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
				ra := r.Spec.ResourceAttributes
				r.Status.Allowed = tt.mayProxy && ra.Resource == "services" && ra.Subresource == "proxy" && ra.Verb == "get" && ra.Namespace == "istio-system"
				return true, r, nil
			})
			_, err := DiscoverPrometheus(t.Context(), c, cfg, "istio-system")
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tt.mayProxy != errors.Is(err, ErrPrometheusRefused) {
				t.Errorf("error %q: errors.Is(ErrPrometheusRefused) = %v, want %v", err, !tt.mayProxy, tt.mayProxy)
			}
			if tt.resp.err != nil && !errors.Is(err, tt.resp.err) {
				t.Errorf("error %q does not wrap the API server's", err)
			}
		})
	}
}
