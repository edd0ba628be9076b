package meshchecks

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/checker"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

func TestMain(m *testing.M) {
	kubelab.Main(m, kubelab.Options{Nodes: 3})
}

// getLab returns the lab, skipping under -short (make unit runs no lab).
func getLab(t *testing.T) *kubelab.Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("lab test: skipped with -short")
	}
	return kubelab.Get(t)
}

// create creates typed objects in the lab, in order.
func create(t *testing.T, lab *kubelab.Lab, objs ...runtime.Object) {
	t.Helper()
	ctx := context.Background()
	cs := lab.Clients.Kube
	for _, o := range objs {
		var err error
		switch v := o.(type) {
		case *corev1.Namespace:
			_, err = cs.CoreV1().Namespaces().Create(ctx, v, metav1.CreateOptions{})
		case *corev1.Pod:
			_, err = cs.CoreV1().Pods(v.Namespace).Create(ctx, v, metav1.CreateOptions{})
		case *corev1.Secret:
			_, err = cs.CoreV1().Secrets(v.Namespace).Create(ctx, v, metav1.CreateOptions{})
		case *corev1.ConfigMap:
			_, err = cs.CoreV1().ConfigMaps(v.Namespace).Create(ctx, v, metav1.CreateOptions{})
		case *corev1.Service:
			status := v.Status
			var s *corev1.Service
			if s, err = cs.CoreV1().Services(v.Namespace).Create(ctx, v, metav1.CreateOptions{}); err == nil && len(status.Conditions) > 0 {
				s.Status = status
				_, err = cs.CoreV1().Services(v.Namespace).UpdateStatus(ctx, s, metav1.UpdateOptions{})
			}
		case *appsv1.DaemonSet:
			_, err = cs.AppsV1().DaemonSets(v.Namespace).Create(ctx, v, metav1.CreateOptions{})
		case *appsv1.Deployment:
			_, err = cs.AppsV1().Deployments(v.Namespace).Create(ctx, v, metav1.CreateOptions{})
		case *networkingv1.NetworkPolicy:
			_, err = cs.NetworkingV1().NetworkPolicies(v.Namespace).Create(ctx, v, metav1.CreateOptions{})
		default:
			t.Fatalf("create: unsupported %T", o)
		}
		if err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}
}

// createCR creates a custom resource and then sets its status, the way a
// controller would.
func createCR(t *testing.T, lab *kubelab.Lab, u *unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	gvr := map[string]struct{ g, v, r string }{"Gateway": {"gateway.networking.k8s.io", "v1", "gateways"}, "AuthorizationPolicy": {"security.istio.io", "v1", "authorizationpolicies"}}[u.GetKind()]
	ri := lab.Clients.Dynamic.Resource(GVRGateway)
	if gvr.r == "authorizationpolicies" {
		ri = lab.Clients.Dynamic.Resource(GVRAuthorizationPolicy)
	}
	status, hasStatus := u.Object["status"]
	created, err := ri.Namespace(u.GetNamespace()).Create(ctx, u, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
	}
	if hasStatus {
		created.Object["status"] = status
		if _, err := ri.Namespace(u.GetNamespace()).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("update status of %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

// ensureCRDs installs minimal Gateway and AuthorizationPolicy CRDs (schema
// preserved as-is, status subresource) and waits until they are served.
func ensureCRDs(t *testing.T, lab *kubelab.Lab, bundle string) {
	t.Helper()
	ctx := context.Background()
	for _, c := range []struct{ group, kind, plural string }{
		{"gateway.networking.k8s.io", "Gateway", "gateways"},
		{"security.istio.io", "AuthorizationPolicy", "authorizationpolicies"},
	} {
		crd := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]any{"name": c.plural + "." + c.group, "annotations": map[string]any{gatewayAPIBundleVersion: bundle, gatewayAPIChannel: "standard"}},
			"spec": map[string]any{
				"group": c.group, "scope": "Namespaced",
				"names": map[string]any{"plural": c.plural, "singular": strings.ToLower(c.kind), "kind": c.kind, "listKind": c.kind + "List"},
				"versions": []any{map[string]any{
					"name": "v1", "served": true, "storage": true,
					"subresources": map[string]any{"status": map[string]any{}},
					"schema":       map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
				}},
			},
		}}
		if strings.HasSuffix(c.group, ".k8s.io") {
			// Groups under k8s.io need an approval annotation; Gateway API's own CRDs carry one.
			ann := crd.GetAnnotations()
			ann["api-approved.kubernetes.io"] = "https://github.com/kubernetes-sigs/gateway-api/pull/2466"
			crd.SetAnnotations(ann)
		}
		if _, err := lab.Clients.Dynamic.Resource(GVRCRD).Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create crd %s: %v", crd.GetName(), err)
		}
	}
	waitFor(t, 30*time.Second, "gateway and authorizationpolicy CRDs served", func() (bool, error) {
		if _, err := lab.Clients.Dynamic.Resource(GVRGateway).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
			return false, nil
		}
		_, err := lab.Clients.Dynamic.Resource(GVRAuthorizationPolicy).List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil, nil
	})
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// labInstall describes what installAmbient creates; the zero value is a
// healthy install.
type labInstall struct {
	ztunnelTag     string // default 1.28.0
	skipZtunnelOn  string // node the ztunnel DaemonSet's affinity excludes
	istiodPending  bool   // istiod cannot be scheduled
	failedRelease  bool   // ztunnel release revision 2 failed
	bothLabels     bool   // the app namespace also asks for injection
	pendingPod     bool   // one app pod with redirection pending
	sidecarPod     bool   // one app pod with a sidecar
	waypointBroken bool   // waypoint not programmed, service not bound
	l7Policy       bool   // a selector-based L7 AuthorizationPolicy
}

// installAmbient creates, in fresh namespaces, the objects the ambient
// charts create (istiod Deployment, istio-cni-node and ztunnel DaemonSets
// run by the real controllers on every kwok node, Helm release Secrets) and
// an ambient app namespace, then waits for the controllers and kwok.
func installAmbient(t *testing.T, lab *kubelab.Lab, o labInstall) (istioNS, appNS string) {
	t.Helper()
	ensureCRDs(t, lab, "v1.3.0")
	istioNS = lab.Namespace(t, map[string]string{"pod-security.kubernetes.io/enforce": "privileged"})
	appLabels := map[string]string{ambient.LabelDataplaneMode: "ambient"}
	if o.bothLabels {
		appLabels[ambient.LabelInjection] = "enabled"
	}
	appNS = lab.Namespace(t, appLabels)
	tag := o.ztunnelTag
	if tag == "" {
		tag = "1.28.0"
	}
	istiod := deployment(istioNS, "istiod", map[string]string{"app": "istiod"}, "docker.io/istio/pilot:1.28.0", 0)
	istiod.Status = appsv1.DeploymentStatus{}
	if o.istiodPending {
		istiod.Spec.Template.Spec.NodeSelector = map[string]string{"no-such-label": "x"}
	}
	cni := daemonSet(istioNS, "istio-cni-node", map[string]string{"k8s-app": "istio-cni-node"}, "docker.io/istio/install-cni:1.28.0")
	zt := daemonSet(istioNS, "ztunnel", map[string]string{"app": "ztunnel"}, "docker.io/istio/ztunnel:"+tag)
	if o.skipZtunnelOn != "" {
		zt.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpNotIn, Values: []string{o.skipZtunnelOn}}},
			}}},
		}}
	}
	create(t, lab, istiod, cni, zt)
	for _, r := range ambient.Releases() {
		create(t, lab, releaseSecret(istioNS, r, 1, "deployed", "1.28.0"))
	}
	if o.failedRelease {
		create(t, lab, releaseSecret(istioNS, "ztunnel", 2, "failed", "1.28.1"))
	}
	nodes := lab.Nodes[:3]
	for i, n := range nodes {
		create(t, lab, pod(appNS, fmt.Sprintf("web-%d", i), n, map[string]string{"app": "web"}, map[string]string{ambient.AnnotationRedirection: "enabled"}, true))
	}
	if o.pendingPod {
		create(t, lab, pod(appNS, "api-0", nodes[0], map[string]string{"app": "api"}, map[string]string{ambient.AnnotationRedirection: "pending"}, true))
	}
	if o.sidecarPod {
		create(t, lab, pod(appNS, "old-0", nodes[1], map[string]string{"app": "old"}, map[string]string{ambient.AnnotationSidecarStatus: "{}"}, true))
	}
	cond := metav1.Condition{Type: WaypointBoundCondition, Status: metav1.ConditionTrue, Reason: "Bound", Message: "bound to waypoint", LastTransitionTime: metav1.Now()}
	if o.waypointBroken {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "WaypointNotFound", "waypoint missing not found"
	}
	create(t, lab, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: appNS, Labels: map[string]string{ambient.LabelUseWaypoint: "waypoint"}},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}},
		Status:     corev1.ServiceStatus{Conditions: []metav1.Condition{cond}},
	})
	wp := waypoint(appNS, "waypoint", !o.waypointBroken)
	conds := wp.Object["status"].(map[string]any)["conditions"].([]any)
	conds[0].(map[string]any)["lastTransitionTime"] = time.Now().UTC().Format(time.RFC3339)
	createCR(t, lab, wp)
	if o.l7Policy {
		createCR(t, lab, unstr(gvkAuthz, appNS, "get-only", map[string]any{"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
			"rules":    []any{map[string]any{"to": []any{map[string]any{"operation": map[string]any{"methods": []any{"GET"}}}}}},
		}}))
	}

	ctx := context.Background()
	cs := lab.Clients.Kube
	wantZ := int32(len(lab.Nodes))
	if o.skipZtunnelOn != "" {
		wantZ--
	}
	waitFor(t, 90*time.Second+time.Duration(len(lab.Nodes))*120*time.Millisecond, "istio-cni-node and ztunnel ready on the lab's nodes", func() (bool, error) {
		for name, want := range map[string]int32{"istio-cni-node": int32(len(lab.Nodes)), "ztunnel": wantZ} {
			ds, err := cs.AppsV1().DaemonSets(istioNS).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if ds.Status.NumberReady != want || ds.Status.DesiredNumberScheduled != want {
				return false, nil
			}
		}
		return true, nil
	})
	waitFor(t, 60*time.Second, "app pods running", func() (bool, error) {
		pods, err := cs.CoreV1().Pods(appNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for i := range pods.Items {
			if !podReady(&pods.Items[i]) {
				return false, nil
			}
		}
		return len(pods.Items) > 0, nil
	})
	if !o.istiodPending {
		waitFor(t, 60*time.Second, "istiod ready", func() (bool, error) {
			d, err := cs.AppsV1().Deployments(istioNS).Get(ctx, "istiod", metav1.GetOptions{})
			return err == nil && d.Status.ReadyReplicas == 1, err
		})
	}
	return istioNS, appNS
}

// settleNamespaces registers a cleanup, run after the lab's own namespace
// deletions, that waits until every namespace created during the test is
// gone: the broken fixtures (a Cilium-like DaemonSet, a namespace with both
// labels) are visible cluster-wide and must not leak into later tests.
func settleNamespaces(t *testing.T, lab *kubelab.Lab) {
	t.Helper()
	ctx := context.Background()
	before := map[string]bool{}
	list, err := lab.Clients.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range list.Items {
		before[ns.Name] = true
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(90 * time.Second)
		for {
			list, err := lab.Clients.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
			left := 0
			if err == nil {
				for _, ns := range list.Items {
					if !before[ns.Name] {
						left++
					}
				}
			}
			if err == nil && left == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Logf("%d test namespaces still terminating after 90s (%v)", left, err)
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
	})
}

func labResults(t *testing.T, cs []checker.Check) map[string]checker.Result {
	t.Helper()
	res, sum := run(t, cs)
	for _, r := range sum.Results {
		t.Logf("%-22s %-7s %s", r.ID, r.Status, strings.ReplaceAll(r.Message, "\n", " | "))
	}
	return res
}

func expect(t *testing.T, res map[string]checker.Result, id string, st checker.Status, msg string) {
	t.Helper()
	r := res[id]
	if r.Status != st || !strings.Contains(r.Message, msg) {
		t.Errorf("%s: %s %q, want %s containing %q", id, r.Status, r.Message, st, msg)
	}
}

func TestLabHealthyInstall(t *testing.T) {
	lab := getLab(t)
	istioNS, appNS := installAmbient(t, lab, labInstall{})
	c := NewCluster(lab.Clients.Kube, lab.Clients.Dynamic, istioNS, appNS)
	res := labResults(t, Health(c, HealthOptions{}))
	for _, r := range res {
		if r.Failed() {
			t.Errorf("%s failed on a healthy install: %s", r.ID, r.Message)
		}
	}
	n := len(lab.Nodes)
	expect(t, res, "helm-releases", checker.StatusPass, "ztunnel 1.28.0: deployed (revision 1)")
	expect(t, res, "istiod-ready", checker.StatusPass, "1/1 ready")
	expect(t, res, "ztunnel-nodes", checker.StatusPass, fmt.Sprintf("ready on %d of %d eligible nodes", n, n))
	expect(t, res, "cni-nodes", checker.StatusPass, fmt.Sprintf("ready on %d of %d eligible nodes", n, n))
	expect(t, res, "pod-redirection", checker.StatusPass, "3 pods captured in 1 ambient namespaces")
	expect(t, res, "waypoints-programmed", checker.StatusPass, "1 waypoints programmed")
	expect(t, res, "waypoint-bindings", checker.StatusPass, "1 services bound")
}

func TestLabBrokenInstall(t *testing.T) {
	lab := getLab(t)
	settleNamespaces(t, lab)
	skip := lab.Nodes[2]
	istioNS, appNS := installAmbient(t, lab, labInstall{
		ztunnelTag: "1.29.0", skipZtunnelOn: skip, istiodPending: true, failedRelease: true, bothLabels: true,
		pendingPod: true, sidecarPod: true, waypointBroken: true, l7Policy: true,
	})
	c := NewCluster(lab.Clients.Kube, lab.Clients.Dynamic, istioNS, appNS)
	res := labResults(t, Health(c, HealthOptions{}))
	expect(t, res, "helm-releases", checker.StatusError, "ztunnel is failed (revision 2)")
	expect(t, res, "istiod-ready", checker.StatusError, "0 of 1 replicas ready")
	expect(t, res, "version-skew", checker.StatusError, "ztunnel 1.29.0 is newer than istiod 1.28.0")
	expect(t, res, "cni-nodes", checker.StatusPass, "ready on")
	expect(t, res, "ztunnel-nodes", checker.StatusError, skip+" (no pod)")
	expect(t, res, "namespace-labels", checker.StatusError, appNS)
	expect(t, res, "pod-redirection", checker.StatusError, appNS+"/api-0 on "+lab.Nodes[0]+" (redirection pending)")
	expect(t, res, "sidecars-in-ambient", checker.StatusWarning, appNS+"/old-0")
	expect(t, res, "waypoints-programmed", checker.StatusError, appNS+"/waypoint: Invalid")
	expect(t, res, "waypoint-bindings", checker.StatusError, "WaypointNotFound")
	expect(t, res, "l7-authorization", checker.StatusError, appNS+"/get-only uses to.operation.methods")
}

func TestLabPrecheck(t *testing.T) {
	lab := getLab(t)
	settleNamespaces(t, lab)
	ensureCRDs(t, lab, "v1.3.0")
	enroll := lab.Namespace(t, map[string]string{ambient.LabelDataplaneMode: "ambient"})
	istioNS := lab.Namespace(t, map[string]string{"pod-security.kubernetes.io/enforce": "privileged"})
	opts := PrecheckOptions{IstioVersion: "1.28", EnrollNamespaces: []string{enroll}}

	t.Run("clean", func(t *testing.T) {
		res := labResults(t, Precheck(NewCluster(lab.Clients.Kube, lab.Clients.Dynamic, istioNS, ""), opts))
		expect(t, res, "kubernetes-version", checker.StatusPass, "is supported by istio 1.28")
		expect(t, res, "install-permissions", checker.StatusPass, "")
		expect(t, res, "platform", checker.StatusPass, "generic")
		// The lab's kwok nodes run no CNI agent at all.
		expect(t, res, "cni-detected", checker.StatusWarning, "no known CNI")
		expect(t, res, "gateway-api-crds", checker.StatusPass, "v1.3.0")
		expect(t, res, "pod-security", checker.StatusPass, "")
		expect(t, res, "network-policies", checker.StatusPass, enroll)
	})

	t.Run("restricted identity lacks RBAC", func(t *testing.T) {
		cfg, err := lab.RestrictedConfig()
		if err != nil {
			t.Fatal(err)
		}
		clients, err := kube.NewClients(cfg)
		if err != nil {
			t.Fatal(err)
		}
		res := labResults(t, Precheck(NewCluster(clients.Kube, clients.Dynamic, istioNS, ""), opts))
		expect(t, res, "kubernetes-api", checker.StatusPass, "")
		expect(t, res, "install-permissions", checker.StatusError, "not allowed to create namespaces, customresourcedefinitions.apiextensions.k8s.io, clusterroles.rbac.authorization.k8s.io")
		hres := labResults(t, Health(NewCluster(clients.Kube, clients.Dynamic, istioNS, ""), HealthOptions{}))
		expect(t, hres, "helm-releases", checker.StatusError, "forbidden")
	})

	t.Run("policies", func(t *testing.T) {
		restricted := lab.Namespace(t, map[string]string{"pod-security.kubernetes.io/enforce": "baseline"})
		create(t, lab, denyAll(enroll))
		res := labResults(t, Precheck(NewCluster(lab.Clients.Kube, lab.Clients.Dynamic, restricted, ""), opts))
		expect(t, res, "pod-security", checker.StatusError, `enforces pod security level "baseline"`)
		expect(t, res, "network-policies", checker.StatusError, "namespace "+enroll+": policies deny-all admit no TCP 15008")
	})

	// Last: the Cilium-like DaemonSet stays visible cluster-wide until its
	// namespace is gone.
	t.Run("cilium-like configuration", func(t *testing.T) {
		ns := lab.Namespace(t, nil)
		ds := daemonSet(ns, "cilium", map[string]string{"k8s-app": "cilium"}, "quay.io/cilium/cilium:v1.17.0")
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"no-such-label": "x"} // no pods needed
		create(t, lab, ds, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cilium-config", Namespace: ns},
			Data: map[string]string{"cni-exclusive": "true", "enable-bpf-masquerade": "true", "kube-proxy-replacement": "true"}})
		res := labResults(t, Precheck(NewCluster(lab.Clients.Kube, lab.Clients.Dynamic, istioNS, ""), opts))
		expect(t, res, "cni-detected", checker.StatusPass, "Cilium (daemonset "+ns+"/cilium)")
		expect(t, res, "cilium-cni-exclusive", checker.StatusError, "cni-exclusive is true")
		expect(t, res, "cilium-bpf-masquerade", checker.StatusWarning, "enable-bpf-masquerade is true")
		expect(t, res, "cilium-socket-lb", checker.StatusWarning, "bpf-lb-sock-hostns-only")
	})
}
