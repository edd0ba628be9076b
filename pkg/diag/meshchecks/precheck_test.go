package meshchecks

import (
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/checker"
)

type caseDef struct {
	name    string
	id      string
	mutate  func(*fixture)
	status  checker.Status
	message string // substring the result's message must contain
}

func runCases(t *testing.T, base func() *fixture, checksOf func(*Cluster, *fixture) []checker.Check, cases []caseDef) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := base()
			if tc.mutate != nil {
				tc.mutate(f)
			}
			res, _ := run(t, checksOf(f.cluster(t), f))
			r, ok := res[tc.id]
			if !ok {
				t.Fatalf("no result for %s", tc.id)
			}
			if r.Status != tc.status {
				t.Fatalf("%s: status %s (%q), want %s", tc.id, r.Status, r.Message, tc.status)
			}
			if !strings.Contains(r.Message, tc.message) {
				t.Fatalf("%s: message %q does not contain %q", tc.id, r.Message, tc.message)
			}
			if r.Failed() && r.Hint == "" {
				t.Fatalf("%s failed without a hint", tc.id)
			}
		})
	}
}

func precheckOf(c *Cluster, f *fixture) []checker.Check { return Precheck(c, f.precheck) }

func withCilium(cfg map[string]string) func(*fixture) {
	return func(f *fixture) {
		f.add(daemonSet("kube-system", "cilium", map[string]string{"k8s-app": "cilium"}, "quay.io/cilium/cilium:v1.17.0"),
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cilium-config", Namespace: "kube-system"}, Data: cfg})
	}
}

func withAWS(env ...corev1.EnvVar) func(*fixture) {
	return func(f *fixture) {
		f.add(daemonSet("kube-system", "aws-node", map[string]string{"k8s-app": "aws-node"}, "amazon-k8s-cni:v1.19.0", env...))
	}
}

func env(k, v string) corev1.EnvVar { return corev1.EnvVar{Name: k, Value: v} }

func withSidecarPod(hbone bool) func(*fixture) {
	return func(f *fixture) {
		p := pod("legacy", "old-0", "node-a", map[string]string{"security.istio.io/tlsMode": "istio"}, map[string]string{ambient.AnnotationSidecarStatus: "{}"}, true)
		proxy := corev1.Container{Name: "istio-proxy", Image: "docker.io/istio/proxyv2:1.27.3"}
		if hbone {
			proxy.Env = []corev1.EnvVar{env("ISTIO_META_ENABLE_HBONE", "true")}
		}
		p.Spec.Containers = append(p.Spec.Containers, proxy)
		f.add(namespace("legacy", map[string]string{ambient.LabelInjection: "enabled"}), p)
	}
}

func denyAll(ns string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-all", Namespace: ns},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
}

func allowAmbient(ns string) *networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	port := intstr.FromInt32(HBONEPort)
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "allow-ambient", Namespace: ns},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}}},
				{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "169.254.7.127/32"}}}},
			},
		},
	}
}

func TestPrecheckCleanClusterPasses(t *testing.T) {
	f := cleanCluster()
	res, sum := run(t, Precheck(f.cluster(t), f.precheck))
	if sum.Errors != 0 || sum.Warnings != 0 {
		for _, r := range sum.Results {
			t.Logf("%s %s %s", r.ID, r.Status, r.Message)
		}
		t.Fatalf("clean cluster: %d errors, %d warnings", sum.Errors, sum.Warnings)
	}
	if got := res["platform"].Message; !strings.Contains(got, "kind") {
		t.Errorf("platform message %q does not name kind", got)
	}
	if got := res["cni-detected"].Message; !strings.Contains(got, "Flannel") {
		t.Errorf("cni message %q does not name Flannel", got)
	}
	for _, id := range []string{"cilium-cni-exclusive", "calico-ebpf", "aws-pod-eni", "gke-resource-quota", "istiod-health"} {
		if res[id].Status != checker.StatusSkipped || res[id].SkippedBy != "" {
			t.Errorf("%s: %s %q, want not applicable", id, res[id].Status, res[id].Message)
		}
	}
}

func TestPrecheckChecks(t *testing.T) {
	runCases(t, cleanCluster, precheckOf, []caseDef{
		{name: "api unreachable skips the rest", id: "kubernetes-version", status: checker.StatusSkipped, message: "kubernetes-api failed",
			mutate: func(f *fixture) { f.server = "unreachable" }},
		{name: "kube version supported", id: "kubernetes-version", status: checker.StatusPass, message: "1.32 to 1.36"},
		{name: "kube version too old", id: "kubernetes-version", status: checker.StatusError, message: "outside the range istio 1.32 supports",
			mutate: func(f *fixture) { f.server = "v1.27.3" }},
		{name: "kube version too new for older istio", id: "kubernetes-version", status: checker.StatusError, message: "1.29 to 1.33",
			mutate: func(f *fixture) { f.server = "v1.34.1"; f.precheck.IstioVersion = "1.27.2" }},
		{name: "permissions granted", id: "install-permissions", status: checker.StatusPass},
		{name: "permissions denied", id: "install-permissions", status: checker.StatusError, message: "customresourcedefinitions.apiextensions.k8s.io, clusterroles.rbac.authorization.k8s.io",
			mutate: func(f *fixture) {
				f.denied = map[string]bool{"customresourcedefinitions": true, "clusterroles": true, "daemonsets": true}
			}},
		{name: "platform override", id: "platform", status: checker.StatusPass, message: "gke (set by --platform)",
			mutate: func(f *fixture) { f.precheck.Platform = "gke" }},
		{name: "gke without quota", id: "gke-resource-quota", status: checker.StatusWarning, message: "no resourcequota",
			mutate: func(f *fixture) {
				f.objs = nil
				f.add(node("gke-1", func(n *corev1.Node) { n.Labels["cloud.google.com/gke-nodepool"] = "pool" }), namespace("istio-system", nil))
			}},
		{name: "gke with quota", id: "gke-resource-quota", status: checker.StatusPass, message: "allows system-node-critical",
			mutate: func(f *fixture) {
				f.precheck.Platform = "gke"
				f.add(&corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "gcp-critical-pods", Namespace: "istio-system"},
					Spec: corev1.ResourceQuotaSpec{ScopeSelector: &corev1.ScopeSelector{MatchExpressions: []corev1.ScopedResourceSelectorRequirement{
						{ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpIn, Values: []string{"system-node-critical"}},
					}}}})
			}},
		{name: "no cni found", id: "cni-detected", status: checker.StatusWarning, message: "no known CNI",
			mutate: func(f *fixture) { f.objs = f.objs[:1] }},
		{name: "cni from k3s node annotation", id: "cni-detected", status: checker.StatusPass, message: "annotation flannel.alpha.coreos.com/backend-type",
			mutate: func(f *fixture) {
				f.objs = []runtimeObject{node("k3s-1", func(n *corev1.Node) { n.Annotations["flannel.alpha.coreos.com/backend-type"] = "vxlan" })}
			}},
		{name: "cilium shares cni config", id: "cilium-cni-exclusive", status: checker.StatusPass,
			mutate: withCilium(map[string]string{"cni-exclusive": "false"})},
		{name: "cilium exclusive by default", id: "cilium-cni-exclusive", status: checker.StatusError, message: "unset (default true)",
			mutate: withCilium(map[string]string{})},
		{name: "cilium exclusive", id: "cilium-cni-exclusive", status: checker.StatusError, message: "cni-exclusive is true",
			mutate: withCilium(map[string]string{"cni-exclusive": "true"})},
		{name: "cilium iptables masquerade", id: "cilium-bpf-masquerade", status: checker.StatusPass,
			mutate: withCilium(map[string]string{"enable-bpf-masquerade": "false"})},
		{name: "cilium bpf masquerade", id: "cilium-bpf-masquerade", status: checker.StatusWarning, message: "enable-bpf-masquerade is true",
			mutate: withCilium(map[string]string{"enable-bpf-masquerade": "true"})},
		{name: "cilium kpr with host-only socket lb", id: "cilium-socket-lb", status: checker.StatusPass,
			mutate: withCilium(map[string]string{"kube-proxy-replacement": "true", "bpf-lb-sock-hostns-only": "true"})},
		{name: "cilium kpr with pod socket lb", id: "cilium-socket-lb", status: checker.StatusWarning, message: "bpf-lb-sock-hostns-only",
			mutate: withCilium(map[string]string{"kube-proxy-replacement": "true"})},
		{name: "calico iptables", id: "calico-ebpf", status: checker.StatusPass, message: "iptables",
			mutate: func(f *fixture) {
				f.add(daemonSet("calico-system", "calico-node", map[string]string{"k8s-app": "calico-node"}, "calico/node:v3.29.0"))
			}},
		{name: "calico ebpf with ctlb", id: "calico-ebpf", status: checker.StatusWarning, message: "bpfConnectTimeLoadBalancing=TCP",
			mutate: func(f *fixture) {
				f.add(daemonSet("calico-system", "calico-node", map[string]string{"k8s-app": "calico-node"}, "calico/node:v3.29.0"))
				f.dyn = append(f.dyn, unstr(gvkFelix, "", "default", map[string]any{"spec": map[string]any{"bpfEnabled": true}}))
			}},
		{name: "calico ebpf from env, ctlb disabled", id: "calico-ebpf", status: checker.StatusPass, message: "disabled",
			mutate: func(f *fixture) {
				f.add(daemonSet("kube-system", "calico-node", map[string]string{"k8s-app": "calico-node"}, "calico/node:v3.29.0",
					env("FELIX_BPFENABLED", "true"), env("FELIX_BPFCONNECTTIMELOADBALANCING", "Disabled")))
			}},
		{name: "aws without pod eni", id: "aws-pod-eni", status: checker.StatusPass, message: "off", mutate: withAWS()},
		{name: "aws pod eni standard", id: "aws-pod-eni", status: checker.StatusPass,
			mutate: withAWS(env("ENABLE_POD_ENI", "true"), env("POD_SECURITY_GROUP_ENFORCING_MODE", "standard"))},
		{name: "aws pod eni strict", id: "aws-pod-eni", status: checker.StatusWarning, message: "strict (default)",
			mutate: withAWS(env("ENABLE_POD_ENI", "true"))},
		{name: "no istio", id: "istio-installed", status: checker.StatusPass, message: "none found"},
		{name: "existing istio", id: "istio-installed", status: checker.StatusPass, message: "istio-system/istiod-canary 1.27.3 (revision canary)",
			mutate: func(f *fixture) {
				f.add(deployment("istio-system", "istiod-canary", map[string]string{"app": "istiod", "istio.io/rev": "canary"}, "docker.io/istio/pilot:1.27.3", 1))
			}},
		{name: "existing istiod ready", id: "istiod-health", status: checker.StatusPass, message: "1/1 ready",
			mutate: func(f *fixture) {
				f.add(deployment("istio-system", "istiod", map[string]string{"app": "istiod"}, "docker.io/istio/pilot:1.27.3", 1))
			}},
		{name: "existing istiod not ready", id: "istiod-health", status: checker.StatusWarning, message: "0 of 1 replicas ready",
			mutate: func(f *fixture) {
				f.add(deployment("istio-system", "istiod", map[string]string{"app": "istiod"}, "docker.io/istio/pilot:1.27.3", 0))
			}},
		{name: "injection namespaces", id: "injection-namespaces", status: checker.StatusPass, message: "1: legacy", mutate: withSidecarPod(true)},
		{name: "sidecars with hbone", id: "sidecars-hbone", status: checker.StatusPass, message: "all 1 sidecar pods", mutate: withSidecarPod(true)},
		{name: "sidecars without hbone", id: "sidecars-hbone", status: checker.StatusWarning, message: "legacy/old-0", mutate: withSidecarPod(false)},
		{name: "gateway api missing", id: "gateway-api-crds", status: checker.StatusWarning, message: "not installed",
			mutate: func(f *fixture) { f.dyn = nil }},
		{name: "gateway api too old", id: "gateway-api-crds", status: checker.StatusWarning, message: "v1.0.0 is older than v1.5.1",
			mutate: func(f *fixture) { f.dyn = []runtimeObject{gatewayCRD("v1.0.0")} }},
		{name: "gateway api current", id: "gateway-api-crds", status: checker.StatusPass, message: "v1.5.1 (standard channel)"},
		{name: "istio namespace to be created", id: "pod-security", status: checker.StatusPass, message: "install creates it"},
		{name: "istio namespace privileged", id: "pod-security", status: checker.StatusPass,
			mutate: func(f *fixture) {
				f.add(namespace("istio-system", map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}))
			}},
		{name: "istio namespace restricted", id: "pod-security", status: checker.StatusError, message: `enforces pod security level "baseline"`,
			mutate: func(f *fixture) {
				f.add(namespace("istio-system", map[string]string{"pod-security.kubernetes.io/enforce": "baseline"}))
			}},
		{name: "network policies admit ambient", id: "network-policies", status: checker.StatusPass, message: "shop",
			mutate: func(f *fixture) { f.add(denyAll("shop"), allowAmbient("shop")) }},
		{name: "network policy denies all", id: "network-policies", status: checker.StatusError, message: "namespace shop: policies deny-all admit no TCP 15008 and no probes",
			mutate: func(f *fixture) { f.add(denyAll("shop"), denyAll("elsewhere")) }},
		{name: "network policy in a namespace named by --enroll", id: "network-policies", status: checker.StatusError, message: "namespace payments",
			mutate: func(f *fixture) {
				f.precheck.EnrollNamespaces = []string{"payments"}
				f.add(denyAll("payments"))
			}},
	})
}

func TestDetectCNIPrefersDaemonSetEvidence(t *testing.T) {
	got := DetectCNI([]appsv1.DaemonSet{*daemonSet("kube-system", "aws-node", nil, "x"), *daemonSet("kube-system", "cilium", nil, "y")},
		[]corev1.Node{*node("n", func(n *corev1.Node) { n.Annotations["io.cilium.network.ipv4-cilium-host"] = "10.0.0.1" })})
	if len(got) != 2 || got[0].Name != CNIAWS || got[1].Name != CNICilium || got[1].DaemonSet == nil {
		t.Fatalf("DetectCNI = %+v", got)
	}
}

func TestEvaluatePolicies(t *testing.T) {
	udp := corev1.ProtocolUDP
	named := intstr.FromString("hbone")
	lo := intstr.FromInt32(15000)
	hi := int32(15010)
	for _, tc := range []struct {
		name         string
		rules        []networkingv1.NetworkPolicyIngressRule
		hbone, probe bool // blocked?
	}{
		{"deny all", nil, true, true},
		{"allow all", []networkingv1.NetworkPolicyIngressRule{{}}, false, false},
		{"port range", []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: &lo, EndPort: &hi}},
			From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "169.254.0.0/16"}}}}}, false, false},
		{"udp and named ports do not count", []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp}, {Port: &named}}}}, true, false},
		{"probe source excepted", []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
			{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"169.254.0.0/16"}}},
			{PodSelector: &metav1.LabelSelector{}},
		}}}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: networkingv1.NetworkPolicySpec{Ingress: tc.rules}}
			got := EvaluatePolicies([]networkingv1.NetworkPolicy{p})
			if !tc.hbone && !tc.probe {
				if len(got) != 0 {
					t.Fatalf("want no finding, got %+v", got)
				}
				return
			}
			if len(got) != 1 || got[0].BlocksHBONE != tc.hbone || got[0].BlocksProbes != tc.probe {
				t.Fatalf("got %+v, want hbone=%v probe=%v", got, tc.hbone, tc.probe)
			}
		})
	}
	egressOnly := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "ns"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}}}
	if got := EvaluatePolicies([]networkingv1.NetworkPolicy{egressOnly}); len(got) != 0 {
		t.Fatalf("egress-only policy reported: %+v", got)
	}
}

func TestVersions(t *testing.T) {
	// The image-tag cases moved to pkg/ambient (TestImageTag).
	for _, tc := range []struct {
		istiod, dp string
		ok         bool
	}{
		{"1.28.0", "1.28.1", true}, {"1.28.0", "1.27.3-distroless", true}, {"1.28.0", "1.26.0", false}, {"1.28.0", "1.29.0", false}, {"1.28.0", "2.28.0", false},
	} {
		if err := checkSkew(tc.istiod, "ztunnel", tc.dp); (err == nil) != tc.ok {
			t.Errorf("checkSkew(%s, %s) = %v, want ok=%v", tc.istiod, tc.dp, err, tc.ok)
		}
	}
	if _, err := checkKubeVersion("v1.31.4-gke.1000", "1.28"); err != nil {
		t.Errorf("gke version: %v", err)
	}
	if _, err := checkKubeVersion("v1.31.0", "1.12"); !errors.Is(err, ErrIstioVersion) || !strings.Contains(err.Error(), "not in the support table") {
		t.Errorf("unknown istio: %v", err)
	}
}
