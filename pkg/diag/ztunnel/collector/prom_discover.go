package collector

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// PrometheusSelectors are the Service labels that mark a Prometheus server,
// in the order they are tried: the recommended Kubernetes label (Istio's
// Prometheus add-on, the Prometheus Helm chart), the prometheus-operator's
// governing Service, the older app label.
var PrometheusSelectors = []string{
	"app.kubernetes.io/name=prometheus",
	"operated-prometheus=true",
	"app=prometheus",
}

// ErrNoPrometheus is returned (wrapped) when no Prometheus Service is found.
var ErrNoPrometheus = errors.New("no prometheus service found")

// DiscoverPrometheus finds a Prometheus Service by the usual labels (all
// namespaces; ztunnel's namespace first, then by name) and returns a source
// that reaches it through the API server's service proxy, so no network path
// to the cluster is needed beyond the one kubectl has.
func DiscoverPrometheus(ctx context.Context, kc kubernetes.Interface, cfg *rest.Config, ztunnelNS string) (*Prometheus, error) {
	for _, sel := range PrometheusSelectors {
		l, err := kc.CoreV1().Services("").List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return nil, fmt.Errorf("find a prometheus service (label %s): %w", sel, err)
		}
		svcs := l.Items
		sort.SliceStable(svcs, func(i, j int) bool {
			a, b := svcs[i].Namespace == ztunnelNS, svcs[j].Namespace == ztunnelNS
			if a != b {
				return a
			}
			return svcs[i].Namespace+"/"+svcs[i].Name < svcs[j].Namespace+"/"+svcs[j].Name
		})
		for _, s := range svcs {
			port, ok := webPort(&s)
			if !ok {
				continue
			}
			return PrometheusThroughService(cfg, s.Namespace, s.Name, port, ztunnelNS,
				fmt.Sprintf("service %s/%s port %s (found by label %s)", s.Namespace, s.Name, port, sel))
		}
	}
	return nil, fmt.Errorf("%w with label %s in any namespace", ErrNoPrometheus, strings.Join(PrometheusSelectors, " or "))
}

// webPort picks the Service port Prometheus serves its API on: one named
// web or http, else 9090, else the only port.
func webPort(s *corev1.Service) (string, bool) {
	for _, p := range s.Spec.Ports {
		if p.Name == "web" || p.Name == "http" || p.Name == "http-web" {
			return p.Name, true
		}
	}
	for _, p := range s.Spec.Ports {
		if p.Port == 9090 {
			return fmt.Sprint(p.Port), true
		}
	}
	if len(s.Spec.Ports) == 1 {
		return fmt.Sprint(s.Spec.Ports[0].Port), true
	}
	return "", false
}

// PrometheusThroughService reaches a Prometheus Service through the API
// server's service proxy with the cluster's credentials.
func PrometheusThroughService(cfg *rest.Config, ns, name, port, ztunnelNS, describe string) (*Prometheus, error) {
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("transport for the service proxy: %w", err)
	}
	addr := strings.TrimRight(cfg.Host, "/") + fmt.Sprintf("/api/v1/namespaces/%s/services/%s:%s/proxy", ns, name, port)
	return NewPrometheus(addr, describe, rt, ztunnelNS)
}
