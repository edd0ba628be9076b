package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// ErrPrometheusRefused is returned (wrapped) when the API server let the
// query through but the server behind the Service refused it (an
// authenticating proxy): Prometheus must then be reached by its own address.
var ErrPrometheusRefused = errors.New("the server behind the service refused the request")

// DiscoverPrometheus finds a Prometheus Service by the usual labels (all
// namespaces; ztunnel's namespace first, then by name) and returns a source
// that reaches it through the API server's service proxy, so no network path
// to the cluster is needed beyond the one kubectl has. It asks the chosen
// Service one trivial query first, so a missing services/proxy permission or
// a Service without a ready Prometheus behind it fails here, by name, rather
// than as every row's scrape error.
func DiscoverPrometheus(ctx context.Context, kc kubernetes.Interface, cfg *rest.Config, ztunnelNS string) (*Prometheus, error) {
	for _, sel := range PrometheusSelectors {
		l, err := kc.CoreV1().Services("").List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			if apierrors.IsForbidden(err) {
				return nil, fmt.Errorf("find a prometheus service (label %s): %w; grant list on services in all namespaces", sel, err)
			}
			return nil, fmt.Errorf("find a prometheus service (label %s): %w", sel, err)
		}
		type candidate struct {
			svc  *corev1.Service
			port string
		}
		var found []candidate
		for i := range l.Items {
			if port, ok := webPort(&l.Items[i]); ok {
				found = append(found, candidate{&l.Items[i], port})
			}
		}
		if len(found) == 0 {
			continue
		}
		sort.SliceStable(found, func(i, j int) bool {
			a, b := found[i].svc, found[j].svc
			if ai, bi := a.Namespace == ztunnelNS, b.Namespace == ztunnelNS; ai != bi {
				return ai
			}
			return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
		})
		s, port := found[0].svc, found[0].port
		describe := fmt.Sprintf("service %s/%s port %s (found by label %s", s.Namespace, s.Name, port, sel)
		if len(found) > 1 {
			others := make([]string, 0, len(found)-1)
			for _, c := range found[1:] {
				others = append(others, c.svc.Namespace+"/"+c.svc.Name)
			}
			why := "the first by namespace and name"
			if s.Namespace == ztunnelNS {
				why = "the one in ztunnel's namespace " + ztunnelNS
			}
			describe += fmt.Sprintf("; also found %s: chose %s", strings.Join(others, ", "), why)
		}
		describe += ")"
		if err := askService(ctx, kc, s.Namespace, s.Name, port); err != nil {
			return nil, err
		}
		return PrometheusThroughService(cfg, s.Namespace, s.Name, port, ztunnelNS, describe)
	}
	return nil, fmt.Errorf("%w with label %s in any namespace", ErrNoPrometheus, strings.Join(PrometheusSelectors, " or "))
}

// askService sends one trivial query through the API server's service proxy
// and checks that a Prometheus API answers it.
func askService(ctx context.Context, kc kubernetes.Interface, ns, name, port string) error {
	rw := kc.CoreV1().Services(ns).ProxyGet("", name, port, "/api/v1/query", map[string]string{"query": "1"})
	if rw == nil {
		return fmt.Errorf("prometheus service %s/%s: the client cannot reach the service proxy", ns, name)
	}
	body, err := rw.DoRaw(ctx)
	switch {
	case (apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err)) && mayProxy(ctx, kc, ns, name):
		// The API server let the request through: the server behind the
		// Service refused it (an authenticating proxy in front of Prometheus).
		return fmt.Errorf("query prometheus service %s/%s port %s through the API server's service proxy: %w; %w (an authenticating proxy?); reach Prometheus by an address that serves its API", ns, name, port, err, ErrPrometheusRefused)
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		return fmt.Errorf("query prometheus service %s/%s through the API server's service proxy: %w; grant get on services/proxy in namespace %s", ns, name, err, ns)
	case err != nil:
		return fmt.Errorf("query prometheus service %s/%s port %s through the API server's service proxy: %w; check that a ready Prometheus pod backs it (kubectl get endpointslices -n %s -l kubernetes.io/service-name=%s)", ns, name, port, err, ns, name)
	}
	var r struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(body, &r) != nil || r.Status != "success" {
		return fmt.Errorf("service %s/%s port %s does not answer as a Prometheus API (/api/v1/query said %.80q)", ns, name, port, body)
	}
	return nil
}

// mayProxy asks the API server whether the caller may get services/proxy
// on the Service; false when it cannot tell.
func mayProxy(ctx context.Context, kc kubernetes.Interface, ns, name string) bool {
	r, err := kc.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: ns, Verb: "get", Resource: "services", Subresource: "proxy", Name: name}}}, metav1.CreateOptions{})
	return err == nil && r.Status.Allowed
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
