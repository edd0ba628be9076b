package meshchecks

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/checker"
)

// The fixtures below describe clusters as plain objects; the unit tests run
// them through the fake clientset and the lab tests create the same objects
// in the lab's real API server.

func node(name string, mut ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}, Annotations: map[string]string{}}}
	for _, m := range mut {
		m(n)
	}
	return n
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func daemonSet(ns, name string, sel map[string]string, image string, env ...corev1.EnvVar) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec: corev1.PodSpec{
					Containers:  []corev1.Container{{Name: name, Image: image, Env: env}},
					Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
				},
			},
		},
	}
}

func deployment(ns, name string, labels map[string]string, image string, ready int32) *appsv1.Deployment {
	one := int32(1)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "discovery", Image: image}}},
			},
		},
		Status: appsv1.DeploymentStatus{Replicas: 1, ReadyReplicas: ready},
	}
}

func pod(ns, name, nodeName string, labels, ann map[string]string, ready bool) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: ann},
		Spec:       corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: st},
		}},
	}
}

// releaseSecret encodes a release the way Helm's Secret driver stores it.
func releaseSecret(ns, name string, rev int, status, chartVersion string) *corev1.Secret {
	body, _ := json.Marshal(map[string]any{
		"name": name, "version": rev,
		"info":  map[string]any{"status": status},
		"chart": map[string]any{"metadata": map[string]any{"name": name, "version": chartVersion, "appVersion": chartVersion}},
	})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(body)
	_ = zw.Close()
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("sh.helm.release.v1.%s.v%d", name, rev), Namespace: ns,
			Labels: map[string]string{"owner": "helm", "name": name, "status": status, "version": strconv.Itoa(rev)},
		},
		Type: "helm.sh/release.v1",
		Data: map[string][]byte{"release": []byte(base64.StdEncoding.EncodeToString(gz.Bytes()))},
	}
}

func unstr(gvk schema.GroupVersionKind, ns, name string, obj map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: obj}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

var (
	gvkGateway = schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "Gateway"}
	gvkAuthz   = schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicy"}
	gvkCRD     = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}
	gvkFelix   = schema.GroupVersionKind{Group: "crd.projectcalico.org", Version: "v1", Kind: "FelixConfiguration"}
)

func waypoint(ns, name string, programmed bool) *unstructured.Unstructured {
	st := "True"
	if !programmed {
		st = "False"
	}
	return unstr(gvkGateway, ns, name, map[string]any{
		"spec": map[string]any{"gatewayClassName": "istio-waypoint"},
		"status": map[string]any{"conditions": []any{
			map[string]any{"type": "Programmed", "status": st, "reason": map[bool]string{true: "Programmed", false: "Invalid"}[programmed], "message": "waypoint deployment"},
		}},
	})
}

func gatewayCRD(bundle string) *unstructured.Unstructured {
	u := unstr(gvkCRD, "", gatewayAPIGatewaysCRD, map[string]any{"spec": map[string]any{"group": "gateway.networking.k8s.io"}})
	u.SetAnnotations(map[string]string{gatewayAPIBundleVersion: bundle, gatewayAPIChannel: "standard"})
	return u
}

type runtimeObject = runtime.Object

// fixture is one cluster: typed objects, CRD-backed objects and options.
type fixture struct {
	server   string
	objs     []runtime.Object
	dyn      []runtime.Object
	denied   map[string]bool // resources SelfSubjectAccessReview denies
	narrow   string
	precheck PrecheckOptions
	health   HealthOptions
}

func (f *fixture) add(o ...runtime.Object) *fixture { f.objs = append(f.objs, o...); return f }

// replace swaps the object with the same kind, namespace and name.
func (f *fixture) replace(o runtime.Object) *fixture {
	key := func(x runtime.Object) string {
		m, _ := x.(metav1.Object)
		return fmt.Sprintf("%T/%s/%s", x, m.GetNamespace(), m.GetName())
	}
	for i := range f.objs {
		if key(f.objs[i]) == key(o) {
			f.objs[i] = o
			return f
		}
	}
	return f.add(o)
}

func (f *fixture) cluster(t testing.TB) *Cluster {
	t.Helper()
	cs := fake.NewClientset(f.objs...)
	server := f.server
	if server == "" {
		server = "v1.33.2"
	}
	cs.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{GitVersion: server}
	if server == "unreachable" {
		cs.PrependReactor("get", "version", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
		})
	}
	cs.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authv1.SelfSubjectAccessReview)
		r.Status.Allowed = !f.denied[r.Spec.ResourceAttributes.Resource]
		return true, r, nil
	})
	scheme := runtime.NewScheme()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme, map[schema.GroupVersionResource]string{
		GVRGateway:             "GatewayList",
		GVRAuthorizationPolicy: "AuthorizationPolicyList",
		GVRServiceEntry:        "ServiceEntryList",
		GVRCRD:                 "CustomResourceDefinitionList",
		GVRFelixConfiguration:  "FelixConfigurationList",
	})
	for _, o := range f.dyn {
		// The tracker guesses "gatewaies" from the kind Gateway, so every
		// object is created under its real resource name.
		u := o.(*unstructured.Unstructured)
		gvr := map[string]schema.GroupVersionResource{"Gateway": GVRGateway, "AuthorizationPolicy": GVRAuthorizationPolicy,
			"CustomResourceDefinition": GVRCRD, "FelixConfiguration": GVRFelixConfiguration}[u.GetKind()]
		if err := dyn.Tracker().Create(gvr, u, u.GetNamespace()); err != nil {
			t.Fatalf("add %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	return NewCluster(cs, dyn, "istio-system", f.narrow)
}

// run runs a check set and returns results by ID.
func run(t testing.TB, cs []checker.Check, obs ...checker.Observer) (map[string]checker.Result, checker.Summary) {
	t.Helper()
	sum, err := (&checker.Runner{Observers: obs}).Run(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]checker.Result{}
	for _, r := range sum.Results {
		out[r.ID] = r
	}
	return out, sum
}

var nodeNames = []string{"node-a", "node-b", "node-c"}

// healthyInstall is an ambient install as the charts create it, with one
// ambient namespace whose pods are captured and one waypoint.
func healthyInstall() *fixture {
	f := &fixture{}
	f.add(namespace("istio-system", map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}),
		namespace("shop", map[string]string{ambient.LabelDataplaneMode: "ambient"}),
		namespace("legacy", map[string]string{}),
		deployment("istio-system", "istiod", map[string]string{"app": "istiod", "istio.io/rev": "default"}, "docker.io/istio/pilot:1.28.0", 1),
		daemonSet("istio-system", "istio-cni-node", map[string]string{"k8s-app": "istio-cni-node"}, "docker.io/istio/install-cni:1.28.0"),
		daemonSet("istio-system", "ztunnel", map[string]string{"app": "ztunnel"}, "docker.io/istio/ztunnel:1.28.0"),
	)
	for _, r := range []string{"istio-base", "istiod", "istio-cni", "ztunnel"} {
		f.add(releaseSecret("istio-system", r, 1, "superseded", "1.27.3"), releaseSecret("istio-system", r, 2, "deployed", "1.28.0"))
	}
	for i, n := range nodeNames {
		f.add(node(n),
			pod("istio-system", "istio-cni-node-"+strconv.Itoa(i), n, map[string]string{"k8s-app": "istio-cni-node"}, nil, true),
			pod("istio-system", "ztunnel-"+strconv.Itoa(i), n, map[string]string{"app": "ztunnel"}, nil, true),
			pod("shop", "web-"+strconv.Itoa(i), n, map[string]string{"app": "web"}, map[string]string{ambient.AnnotationRedirection: "enabled"}, true),
		)
	}
	f.add(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Labels: map[string]string{ambient.LabelUseWaypoint: "waypoint"}},
		Status:     corev1.ServiceStatus{Conditions: []metav1.Condition{{Type: WaypointBoundCondition, Status: metav1.ConditionTrue, Reason: "Bound", Message: "bound to shop/waypoint"}}},
	})
	f.dyn = append(f.dyn, gatewayCRD("v1.5.1"), waypoint("shop", "waypoint", true),
		unstr(gvkAuthz, "shop", "l4-only", map[string]any{"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
			"rules":    []any{map[string]any{"from": []any{map[string]any{"source": map[string]any{"principals": []any{"cluster.local/ns/shop/sa/web"}}}}}},
		}}),
		unstr(gvkAuthz, "shop", "on-waypoint", map[string]any{"spec": map[string]any{
			"targetRefs": []any{map[string]any{"kind": "Service", "name": "web"}},
			"rules":      []any{map[string]any{"to": []any{map[string]any{"operation": map[string]any{"methods": []any{"GET"}}}}}},
		}}),
	)
	return f
}

// cleanCluster is a cluster ready for an ambient install: kind-like, with a
// Flannel CNI, no Istio yet, one namespace to be enrolled.
func cleanCluster() *fixture {
	f := &fixture{}
	f.add(namespace("kube-system", nil), namespace("shop", map[string]string{ambient.LabelDataplaneMode: "ambient"}),
		daemonSet("kube-flannel", "kube-flannel-ds", map[string]string{"app": "flannel"}, "docker.io/flannel/flannel:v0.26.0"),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-flannel"}})
	for _, n := range nodeNames {
		f.add(node(n, func(n *corev1.Node) { n.Spec.ProviderID = "kind://docker/lab/" + n.Name }))
	}
	f.dyn = append(f.dyn, gatewayCRD("v1.5.1"))
	return f
}
