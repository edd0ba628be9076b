package meshchecks

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/checker"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

func healthOf(c *Cluster, f *fixture) []checker.Check { return Health(c, f.health) }

// dumps is a ConfigDumpFetcher serving canned certificates per pod.
type dumps map[string][]ztunnel.Certificate

func (d dumps) ConfigDump(_ context.Context, ns, pod string) (*ztunnel.ConfigDump, error) {
	certs, ok := d[ns+"/"+pod]
	if !ok {
		return nil, errors.New("connection refused")
	}
	return &ztunnel.ConfigDump{Certificates: certs}, nil
}

func at(s string) *time.Time {
	t, _ := time.Parse(time.RFC3339, s)
	return &t
}

func getObj[T any](f *fixture, name string) T {
	for _, o := range f.objs {
		if m, ok := o.(metav1.Object); ok && m.GetName() == name {
			if v, ok := o.(T); ok {
				return v
			}
		}
	}
	var zero T
	return zero
}

func TestHealthyInstallPasses(t *testing.T) {
	f := healthyInstall()
	res, sum := run(t, Health(f.cluster(t), f.health))
	if sum.Errors != 0 || sum.Warnings != 0 {
		for _, r := range sum.Results {
			t.Logf("%s %s %s", r.ID, r.Status, r.Message)
		}
		t.Fatalf("healthy install: %d errors, %d warnings", sum.Errors, sum.Warnings)
	}
	for id, want := range map[string]string{
		"helm-releases":        "istiod 1.28.0: deployed (revision 2)",
		"istiod-ready":         "istio-system/istiod 1/1 ready",
		"version-skew":         "istiod 1.28.0, istio-cni-node 1.28.0, ztunnel 1.28.0",
		"ztunnel-nodes":        "ready on 3 of 3 eligible nodes",
		"pod-redirection":      "3 pods captured in 1 ambient namespaces",
		"waypoints-programmed": "1 waypoints programmed",
		"waypoint-bindings":    "1 services bound",
	} {
		if res[id].Status != checker.StatusPass || !strings.Contains(res[id].Message, want) {
			t.Errorf("%s: %s %q, want pass with %q", id, res[id].Status, res[id].Message, want)
		}
	}
	if r := res["ztunnel-certificates"]; r.Status != checker.StatusSkipped {
		t.Errorf("certificates without a fetcher: %s %q", r.Status, r.Message)
	}
}

func TestHealthChecks(t *testing.T) {
	runCases(t, healthyInstall, healthOf, []caseDef{
		{name: "release failed", id: "helm-releases", status: checker.StatusError, message: "ztunnel is failed (revision 3)",
			mutate: func(f *fixture) { f.add(releaseSecret("istio-system", "ztunnel", 3, "failed", "1.28.1")) }},
		{name: "release missing", id: "helm-releases", status: checker.StatusError, message: "istio-cni is not installed",
			mutate: func(f *fixture) {
				kept := f.objs[:0]
				for _, o := range f.objs {
					if s, ok := o.(*corev1.Secret); ok && s.Labels["name"] == "istio-cni" {
						continue
					}
					kept = append(kept, o)
				}
				f.objs = kept
			}},
		{name: "istiod not ready", id: "istiod-ready", status: checker.StatusError, message: "0 of 1 replicas ready",
			mutate: func(f *fixture) {
				f.replace(deployment("istio-system", "istiod", map[string]string{"app": "istiod"}, "docker.io/istio/pilot:1.28.0", 0))
			}},
		{name: "istiod missing", id: "istiod-ready", status: checker.StatusError, message: "no istiod deployment",
			mutate: func(f *fixture) {
				d := getObj[interface{ GetLabels() map[string]string }](f, "istiod")
				delete(d.GetLabels(), "app")
			}},
		{name: "ztunnel newer than istiod", id: "version-skew", status: checker.StatusError, message: "ztunnel 1.29.0 is newer than istiod 1.28.0",
			mutate: func(f *fixture) {
				f.replace(daemonSet("istio-system", "ztunnel", map[string]string{"app": "ztunnel"}, "docker.io/istio/ztunnel:1.29.0"))
			}},
		{name: "cni two minors behind", id: "version-skew", status: checker.StatusError, message: "istio-cni-node 1.26.2 is more than one minor behind",
			mutate: func(f *fixture) {
				f.replace(daemonSet("istio-system", "istio-cni-node", map[string]string{"k8s-app": "istio-cni-node"}, "docker.io/istio/install-cni:1.26.2"))
			}},
		{name: "ztunnel tag latest cannot be judged", id: "version-skew", status: checker.StatusWarning, message: "ztunnel runs image tag latest, which is not a version, so its skew against istiod 1.28.0 cannot be judged",
			mutate: func(f *fixture) {
				f.replace(daemonSet("istio-system", "ztunnel", map[string]string{"app": "ztunnel"}, "docker.io/istio/ztunnel:latest"))
			}},
		{name: "istiod tag latest cannot be judged", id: "version-skew", status: checker.StatusWarning, message: "istiod runs image tag latest, which is not a version, so version skew cannot be judged",
			mutate: func(f *fixture) {
				f.replace(deployment("istio-system", "istiod", map[string]string{"app": "istiod"}, "docker.io/istio/pilot:latest", 1))
			}},
		{name: "judged skew outranks an unjudged tag", id: "version-skew", status: checker.StatusError, message: "ztunnel 1.29.0 is newer than istiod 1.28.0",
			mutate: func(f *fixture) {
				f.replace(daemonSet("istio-system", "ztunnel", map[string]string{"app": "ztunnel"}, "docker.io/istio/ztunnel:1.29.0"))
				f.replace(daemonSet("istio-system", "istio-cni-node", map[string]string{"k8s-app": "istio-cni-node"}, "docker.io/istio/install-cni:latest"))
			}},
		{name: "cni daemonset missing", id: "cni-daemonset", status: checker.StatusError, message: "istio-system/istio-cni-node not found",
			mutate: func(f *fixture) {
				f.replace(daemonSet("istio-system", "istio-cni-node-renamed", nil, "x"))
				kept := f.objs[:0]
				for _, o := range f.objs {
					if m := o.(metav1.Object); m.GetName() != "istio-cni-node" {
						kept = append(kept, o)
					}
				}
				f.objs = kept
			}},
		{name: "cni nodes skipped without daemonset", id: "cni-nodes", status: checker.StatusSkipped, message: "cni-daemonset did not pass",
			mutate: func(f *fixture) {
				kept := f.objs[:0]
				for _, o := range f.objs {
					if m := o.(metav1.Object); m.GetName() != "istio-cni-node" {
						kept = append(kept, o)
					}
				}
				f.objs = kept
			}},
		{name: "node without ztunnel", id: "ztunnel-nodes", status: checker.StatusError, message: "not ready on 1 of 4 eligible nodes: node-d (no pod)",
			mutate: func(f *fixture) {
				f.add(node("node-d"), pod("istio-system", "istio-cni-node-9", "node-d", map[string]string{"k8s-app": "istio-cni-node"}, nil, true))
			}},
		{name: "tainted node not eligible", id: "ztunnel-nodes", status: checker.StatusPass, message: "3 of 3",
			mutate: func(f *fixture) {
				ztunnelDS(f).Spec.Template.Spec.Tolerations = nil
				f.add(node("gpu-1", func(n *corev1.Node) {
					n.Spec.Taints = []corev1.Taint{{Key: "gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule}}
				}))
			}},
		{name: "ztunnel pod not ready", id: "ztunnel-nodes", status: checker.StatusError, message: "node-b (pod ztunnel-1 not ready (CrashLoopBackOff))",
			mutate: func(f *fixture) {
				p := pod("istio-system", "ztunnel-1", "node-b", map[string]string{"app": "ztunnel"}, nil, false)
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "istio-proxy", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}
				f.replace(p)
			}},
		{name: "certificates available", id: "ztunnel-certificates", status: checker.StatusPass, message: "2 certificates available on 2 sampled",
			mutate: func(f *fixture) {
				f.health = HealthOptions{CertSample: 2, Now: func() time.Time { return *at("2026-01-01T00:00:00Z") }, ConfigDumps: dumps{
					"istio-system/ztunnel-0": {{Identity: "spiffe://cluster.local/ns/shop/sa/web", State: "Available", Expiration: at("2026-01-02T00:00:00Z")}},
					"istio-system/ztunnel-1": {{Identity: "spiffe://cluster.local/ns/shop/sa/db", State: "Available"}},
				}}
			}},
		{name: "certificates unavailable or expired", id: "ztunnel-certificates", status: checker.StatusError, message: "node node-b: spiffe://cluster.local/ns/shop/sa/db is Unavailable: signing failed",
			mutate: func(f *fixture) {
				f.health = HealthOptions{CertSample: 3, Now: func() time.Time { return *at("2026-01-01T00:00:00Z") }, ConfigDumps: dumps{
					"istio-system/ztunnel-0": {{Identity: "spiffe://cluster.local/ns/shop/sa/web", State: "Available", Expiration: at("2025-12-31T00:00:00Z")}},
					"istio-system/ztunnel-1": {{Identity: "spiffe://cluster.local/ns/shop/sa/db", State: "Unavailable: signing failed"}},
				}}
			}},
		{name: "namespace with both labels", id: "namespace-labels", status: checker.StatusError, message: "both ambient and sidecar injection: shop",
			mutate: func(f *fixture) {
				f.replace(namespace("shop", map[string]string{ambient.LabelDataplaneMode: "ambient", ambient.LabelInjection: "enabled"}))
			}},
		{name: "narrowed to another namespace", id: "namespace-labels", status: checker.StatusPass,
			mutate: func(f *fixture) {
				f.replace(namespace("shop", map[string]string{ambient.LabelDataplaneMode: "ambient", ambient.LabelRev: "canary"}))
				f.narrow = "legacy"
			}},
		{name: "narrowed to a missing namespace", id: "namespace-labels", status: checker.StatusError, message: `namespace "nope" not found`,
			mutate: func(f *fixture) { f.narrow = "nope" }},
		{name: "pod redirection pending", id: "pod-redirection", status: checker.StatusError, message: "1 of 4 pods are not captured: shop/api-0 on node-a (redirection pending)",
			mutate: func(f *fixture) {
				f.add(pod("shop", "api-0", "node-a", nil, map[string]string{ambient.AnnotationRedirection: "pending"}, true))
			}},
		{name: "pod redirection missing", id: "pod-redirection", status: checker.StatusError, message: "shop/api-0 on node-a (no redirection annotation)",
			mutate: func(f *fixture) { f.add(pod("shop", "api-0", "node-a", nil, nil, true)) }},
		{name: "opted-out and host-network pods are not expected captured", id: "pod-redirection", status: checker.StatusPass, message: "3 pods captured",
			mutate: func(f *fixture) {
				hn := pod("shop", "agent-0", "node-a", nil, nil, true)
				hn.Spec.HostNetwork = true
				f.add(hn, pod("shop", "opt-out", "node-a", map[string]string{ambient.LabelDataplaneMode: "none"}, nil, true))
			}},
		{name: "sidecar pod in ambient namespace", id: "sidecars-in-ambient", status: checker.StatusWarning, message: "1 pods still run a sidecar: shop/old-0",
			mutate: func(f *fixture) {
				f.add(pod("shop", "old-0", "node-a", nil, map[string]string{ambient.AnnotationSidecarStatus: "{}"}, true))
			}},
		{name: "waypoint not programmed", id: "waypoints-programmed", status: checker.StatusError, message: "shop/waypoint: Invalid: waypoint deployment",
			mutate: func(f *fixture) { f.dyn[1] = waypoint("shop", "waypoint", false) }},
		{name: "no gateway api", id: "waypoints-programmed", status: checker.StatusSkipped, message: "no waypoints",
			mutate: func(f *fixture) { f.dyn = f.dyn[:1] }},
		{name: "service not bound", id: "waypoint-bindings", status: checker.StatusError, message: "service shop/web: WaypointNotFound: waypoint shop/missing not found",
			mutate: func(f *fixture) {
				f.replace(&corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
					Status: corev1.ServiceStatus{Conditions: []metav1.Condition{{Type: WaypointBoundCondition, Status: metav1.ConditionFalse,
						Reason: "WaypointNotFound", Message: "waypoint shop/missing not found"}}},
				})
			}},
		{name: "selector-based L7 policy", id: "l7-authorization", status: checker.StatusError, message: "shop/get-only uses to.operation.methods",
			mutate: func(f *fixture) {
				f.dyn = append(f.dyn, unstr(gvkAuthz, "shop", "get-only", map[string]any{"spec": map[string]any{
					"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
					"rules":    []any{map[string]any{"to": []any{map[string]any{"operation": map[string]any{"methods": []any{"GET"}, "ports": []any{"8080"}}}}}},
				}}))
			}},
		{name: "L7 policy outside ambient namespaces", id: "l7-authorization", status: checker.StatusPass,
			mutate: func(f *fixture) {
				f.dyn = append(f.dyn, unstr(gvkAuthz, "legacy", "get-only", map[string]any{"spec": map[string]any{
					"rules": []any{map[string]any{"when": []any{map[string]any{"key": "request.headers[x-user]", "values": []any{"a"}}}}},
				}}))
			}},
	})
}

func ztunnelDS(f *fixture) *appsv1.DaemonSet {
	for _, o := range f.objs {
		if ds, ok := o.(*appsv1.DaemonSet); ok && ds.Name == "ztunnel" {
			return ds
		}
	}
	panic("no ztunnel daemonset in fixture")
}

func TestL7Rules(t *testing.T) {
	for _, tc := range []struct {
		rule map[string]any
		want string
	}{
		{map[string]any{"to": []any{map[string]any{"operation": map[string]any{"ports": []any{"80"}}}}}, ""},
		{map[string]any{"to": []any{map[string]any{"operation": map[string]any{"paths": []any{"/x"}}}}}, "to.operation.paths"},
		{map[string]any{"from": []any{map[string]any{"source": map[string]any{"requestPrincipals": []any{"*"}}}}}, "from.source.requestPrincipals"},
		{map[string]any{"from": []any{map[string]any{"source": map[string]any{"namespaces": []any{"a"}}}}}, ""},
		{map[string]any{"when": []any{map[string]any{"key": "source.ip"}}}, ""},
		{map[string]any{"when": []any{map[string]any{"key": "request.auth.claims[iss]"}}}, "when request.auth.claims[iss]"},
	} {
		if got := L7Rules(map[string]any{"rules": []any{tc.rule}}); got != tc.want {
			t.Errorf("L7Rules(%v) = %q, want %q", tc.rule, got, tc.want)
		}
	}
}

func TestReleasesFromSecrets(t *testing.T) {
	s := []corev1.Secret{
		*releaseSecret("istio-system", "istiod", 9, "superseded", "1.27.0"),
		*releaseSecret("istio-system", "istiod", 10, "deployed", "1.28.0"),
		*releaseSecret("istio-system", "istiod", 2, "superseded", "1.26.0"),
	}
	s = append(s, corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other", Labels: map[string]string{"owner": "someone"}}})
	got := ReleasesFromSecrets(s)
	if len(got) != 1 || got[0].Revision != 10 || got[0].Status != "deployed" || got[0].Chart != "1.28.0" {
		t.Fatalf("ReleasesFromSecrets = %+v", got)
	}
}
