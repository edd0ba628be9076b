package meshchecks

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/checker"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube/platform"
)

// Precheck categories, in the order they run.
const (
	CategoryAPI         = "kubernetes-api"
	CategoryPermissions = "permissions"
	CategoryPlatform    = "platform"
	CategoryCNI         = "cni"
	CategoryIstio       = "existing-istio"
	CategoryGatewayAPI  = "gateway-api"
	CategoryPolicy      = "policies"
)

// PrecheckOptions tunes precheck.
type PrecheckOptions struct {
	// IstioVersion is the version to be installed ("1.28" or "1.28.1").
	IstioVersion string
	// Platform overrides detection when set (anything but "" or "auto").
	Platform string
	// EnrollNamespaces are the namespaces to be moved into ambient, for the
	// NetworkPolicy check; empty means those already labelled for ambient or
	// sidecar injection.
	EnrollNamespaces []string
	// Detect names the platform from the nodes; platform.Detect when nil.
	Detect func([]corev1.Node) platform.Result
}

// Permission is one thing the installing identity must be allowed to do.
type Permission struct {
	Group, Resource string
	// Namespaced permissions are asked for in the Istio namespace.
	Namespaced bool
}

// InstallPermissions are the kinds the istio-base, istiod, cni and ztunnel
// charts create, each of which the installer must be allowed to create.
var InstallPermissions = []Permission{
	{Group: "", Resource: "namespaces"},
	{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"},
	{Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
	{Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"},
	{Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"},
	{Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations"},
	{Group: "", Resource: "serviceaccounts", Namespaced: true},
	{Group: "", Resource: "configmaps", Namespaced: true},
	{Group: "", Resource: "secrets", Namespaced: true},
	{Group: "", Resource: "services", Namespaced: true},
	{Group: "apps", Resource: "deployments", Namespaced: true},
	{Group: "apps", Resource: "daemonsets", Namespaced: true},
	{Group: "rbac.authorization.k8s.io", Resource: "roles", Namespaced: true},
	{Group: "rbac.authorization.k8s.io", Resource: "rolebindings", Namespaced: true},
	{Group: "policy", Resource: "poddisruptionbudgets", Namespaced: true},
	{Group: "autoscaling", Resource: "horizontalpodautoscalers", Namespaced: true},
}

// Precheck returns the checks of `kubectl ambient precheck`.
func Precheck(c *Cluster, o PrecheckOptions) []checker.Check {
	if o.IstioVersion == "" {
		o.IstioVersion = ambient.DefaultIstioVersion
	}
	if o.Detect == nil {
		o.Detect = platform.Detect
	}
	p := &prechecker{c: c, o: o}
	cs := []checker.Check{
		apiReachable(c),
		{
			ID: "kubernetes-version", Category: CategoryAPI,
			Description: fmt.Sprintf("Kubernetes version is supported by Istio %s", o.IstioVersion),
			Hint:        "upgrade the cluster, or pick an Istio release that supports it with --istio-version",
			Run:         p.kubeVersion,
		},
		{
			ID: "install-permissions", Category: CategoryPermissions,
			Description: "can create every kind the Istio charts install",
			Hint:        "run as a cluster administrator, or have one grant create on the kinds listed",
			Run:         p.permissions,
		},
		{
			ID: "platform", Category: CategoryPlatform,
			Description: "platform is recognised",
			Run:         p.detectPlatform,
		},
		{
			ID: "gke-resource-quota", Category: CategoryPlatform,
			Description: "GKE allows node-critical pods in the Istio namespace",
			Severity:    checker.SeverityWarning,
			Hint: "on GKE create a ResourceQuota in the Istio namespace whose scopeSelector allows PriorityClass " +
				"system-node-critical, or install istio-cni and ztunnel into kube-system",
			Needs: []string{"platform"},
			Run:   p.gkeQuota,
		},
		{
			ID: "cni-detected", Category: CategoryCNI,
			Description: "cluster CNI is detected",
			Severity:    checker.SeverityWarning,
			Hint:        "ambient chains istio-cni after the cluster CNI; check the Istio platform prerequisites for yours",
			Run:         p.cniDetected,
		},
		{
			ID: "cilium-cni-exclusive", Category: CategoryCNI,
			Description: "Cilium does not claim the CNI configuration exclusively",
			Hint:        "set cni.exclusive=false in Cilium's Helm values (cni-exclusive: \"false\" in cilium-config) so it keeps istio-cni's configuration",
			Needs:       []string{"cni-detected"},
			Run:         p.ciliumExclusive,
		},
		{
			ID: "cilium-bpf-masquerade", Category: CategoryCNI,
			Description: "Cilium BPF masquerading is off",
			Severity:    checker.SeverityWarning,
			Hint:        "set bpf.masquerade=false (Cilium's iptables masquerading works with ambient); with BPF masquerading kubelet probes from 169.254.7.127 fail",
			Needs:       []string{"cni-detected"},
			Run:         p.ciliumMasquerade,
		},
		{
			ID: "cilium-socket-lb", Category: CategoryCNI,
			Description: "Cilium socket load balancing is limited to the host namespace",
			Severity:    checker.SeverityWarning,
			Hint:        "with kube-proxy replacement set socketLB.hostNamespaceOnly=true so ztunnel sees service addresses",
			Needs:       []string{"cni-detected"},
			Run:         p.ciliumSocketLB,
		},
		{
			ID: "calico-ebpf", Category: CategoryCNI,
			Description: "Calico eBPF connect-time load balancing is disabled",
			Severity:    checker.SeverityWarning,
			Hint:        "set bpfConnectTimeLoadBalancing: Disabled in FelixConfiguration default (or FELIX_BPFCONNECTTIMELOADBALANCING=Disabled on calico-node)",
			Needs:       []string{"cni-detected"},
			Run:         p.calicoEBPF,
		},
		{
			ID: "aws-pod-eni", Category: CategoryCNI,
			Description: "AWS VPC CNI security groups for pods use standard enforcing mode",
			Severity:    checker.SeverityWarning,
			Hint:        "set POD_SECURITY_GROUP_ENFORCING_MODE=standard on the aws-node DaemonSet; strict mode drops the link-local probe traffic ambient uses",
			Needs:       []string{"cni-detected"},
			Run:         p.awsPodENI,
		},
		{
			ID: "istio-installed", Category: CategoryIstio,
			Description: "existing Istio control planes",
			Run:         p.istioInstalled,
		},
		{
			ID: "istiod-health", Category: CategoryIstio,
			Description: "existing istiod is ready",
			Severity:    checker.SeverityWarning,
			Hint:        "fix the existing istiod (kubectl -n <ns> describe deploy istiod) before installing ambient next to it",
			Run:         p.istiodHealth,
		},
		{
			ID: "injection-namespaces", Category: CategoryIstio,
			Description: "namespaces using sidecar injection",
			Run:         p.injectionNamespaces,
		},
		{
			ID: "sidecars-hbone", Category: CategoryIstio,
			Description: "injected sidecars have HBONE enabled",
			Severity:    checker.SeverityWarning,
			Hint:        "after installing ambient, restart these workloads so their sidecars are re-injected with ISTIO_META_ENABLE_HBONE=true and talk HBONE to ambient pods",
			Run:         p.sidecarsHBONE,
		},
		{
			ID: "gateway-api-crds", Category: CategoryGatewayAPI,
			Description: "Gateway API CRDs are installed at a supported version",
			Severity:    checker.SeverityWarning,
			Hint:        "install the standard Gateway API CRDs (the release Istio's docs name) before creating waypoints",
			Run:         p.gatewayAPI,
		},
		{
			ID: "pod-security", Category: CategoryPolicy,
			Description: "Pod Security allows privileged pods in the Istio namespace",
			Hint:        "istio-cni and ztunnel need privileged pods: kubectl label ns <istio-namespace> pod-security.kubernetes.io/enforce=privileged --overwrite",
			Run:         p.podSecurity,
		},
		{
			ID: "network-policies", Category: CategoryPolicy,
			Description: "NetworkPolicies admit HBONE (TCP 15008) and kubelet probes from 169.254.7.127",
			Hint:        "add an ingress rule allowing TCP port 15008 and the source 169.254.7.127/32 to each policy listed",
			Run:         p.networkPolicies,
		},
	}
	return cs
}

// apiReachable is the fatal first check of both commands.
func apiReachable(c *Cluster) checker.Check {
	return checker.Check{
		ID: "kubernetes-api", Category: CategoryAPI,
		Description: "can reach the Kubernetes API",
		Hint:        "check --kubeconfig, --context and that the API server is up (kubectl get --raw /version)",
		Fatal:       true,
		Run: func(ctx context.Context) error {
			v, err := c.Kube.Discovery().ServerVersionWithContext(ctx)
			if err != nil {
				return fmt.Errorf("cannot reach the kubernetes api: %w", err)
			}
			c.mu.Lock()
			c.serverVersion = v.GitVersion
			c.mu.Unlock()
			return checker.Info("kubernetes %s", v.GitVersion)
		},
	}
}

type prechecker struct {
	c *Cluster
	o PrecheckOptions

	mu       sync.Mutex
	detected string
}

func (p *prechecker) kubeVersion(ctx context.Context) error {
	p.c.mu.Lock()
	v := p.c.serverVersion
	p.c.mu.Unlock()
	if v == "" {
		info, err := p.c.Kube.Discovery().ServerVersionWithContext(ctx)
		if err != nil {
			return fmt.Errorf("read server version: %w", err)
		}
		v = info.GitVersion
	}
	msg, err := checkKubeVersion(v, p.o.IstioVersion)
	if err != nil {
		return err
	}
	return checker.Info("%s", msg)
}

// permissions asks the API server, one SelfSubjectAccessReview per kind (in
// parallel), whether the caller may create it.
func (p *prechecker) permissions(ctx context.Context) error {
	attrs := make([]authv1.ResourceAttributes, len(InstallPermissions))
	for i, perm := range InstallPermissions {
		attrs[i] = authv1.ResourceAttributes{Verb: "create", Group: perm.Group, Resource: perm.Resource}
		if perm.Namespaced {
			attrs[i].Namespace = p.c.IstioNamespace
		}
	}
	allowed, err := kube.Allowed(ctx, p.c.Kube, attrs)
	if err != nil {
		return fmt.Errorf("ask which install resources may be created: %w", err)
	}
	var denied []string
	for i, ok := range allowed {
		if !ok {
			denied = append(denied, resourceName(InstallPermissions[i]))
		}
	}
	if len(denied) > 0 {
		return fmt.Errorf("not allowed to create %s", strings.Join(denied, ", "))
	}
	return nil
}

func resourceName(p Permission) string {
	n := p.Resource
	if p.Group != "" {
		n += "." + p.Group
	}
	return n
}

func (p *prechecker) detectPlatform(ctx context.Context) error {
	if p.o.Platform != "" && p.o.Platform != "auto" {
		p.setPlatform(p.o.Platform)
		return checker.Info("%s (set by --platform)", p.o.Platform)
	}
	nodes, err := p.c.Nodes(ctx)
	if err != nil {
		return err
	}
	r := p.o.Detect(nodes)
	p.setPlatform(r.Name)
	if hp := helmPlatform(r.Name); hp != "" {
		return checker.Info("%s (%s); install sets global.platform=%s", r.Name, r.Reason, hp)
	}
	return checker.Info("%s (%s); install sets no global.platform", r.Name, r.Reason)
}

// helmPlatform is the global.platform value install sets for a platform;
// platforms without special needs leave it empty.
func helmPlatform(name string) string {
	switch name {
	case platform.Generic, platform.Kind, platform.EKS, "":
		return ""
	}
	return name
}

func (p *prechecker) setPlatform(name string) {
	p.mu.Lock()
	p.detected = name
	p.mu.Unlock()
}

func (p *prechecker) gkeQuota(ctx context.Context) error {
	p.mu.Lock()
	plat := p.detected
	p.mu.Unlock()
	if plat != platform.GKE {
		return checker.Skip("not GKE")
	}
	ns := p.c.IstioNamespace
	if ns == "kube-system" {
		return checker.Info("istio-cni and ztunnel go to kube-system, which GKE already allows")
	}
	quotas, err := p.c.Kube.CoreV1().ResourceQuotas(ns).List(ctx, metav1.ListOptions{Limit: PageSize})
	if err != nil {
		return fmt.Errorf("list resourcequotas in %s: %w", ns, err)
	}
	for _, q := range quotas.Items {
		if q.Spec.ScopeSelector == nil {
			continue
		}
		for _, e := range q.Spec.ScopeSelector.MatchExpressions {
			if e.ScopeName == corev1.ResourceQuotaScopePriorityClass && e.Operator == corev1.ScopeSelectorOpIn {
				for _, v := range e.Values {
					if v == "system-node-critical" {
						return checker.Info("resourcequota %s/%s allows system-node-critical pods", ns, q.Name)
					}
				}
			}
		}
	}
	return fmt.Errorf("namespace %s has no resourcequota for priority class system-node-critical, so GKE will refuse the istio-cni and ztunnel pods", ns)
}

func (p *prechecker) istioInstalled(ctx context.Context) error {
	deps, err := p.c.Istiods(ctx, "")
	if err != nil {
		return err
	}
	if len(deps) == 0 {
		return checker.Info("none found")
	}
	var out []string
	for _, d := range deps {
		rev := d.Labels[ambient.LabelRev]
		if rev == "" {
			rev = "default"
		}
		out = append(out, fmt.Sprintf("%s/%s %s (revision %s)", d.Namespace, d.Name, deploymentVersion(&d), rev))
	}
	return checker.Info("%s", strings.Join(out, "\n"))
}

func (p *prechecker) istiodHealth(ctx context.Context) error {
	deps, err := p.c.Istiods(ctx, "")
	if err != nil {
		return err
	}
	if len(deps) == 0 {
		return checker.Skip("no istiod installed")
	}
	return deploymentsReady(deps, nil)
}

func (p *prechecker) injectionNamespaces(ctx context.Context) error {
	nss, err := p.c.Namespaces(ctx)
	if err != nil {
		return err
	}
	var inj []string
	for _, ns := range nss {
		if hasInjection(ns.Labels) {
			inj = append(inj, ns.Name)
		}
	}
	if len(inj) == 0 {
		return checker.Info("none")
	}
	sort.Strings(inj)
	return checker.Info("%d: %s (kubectl ambient enroll moves them to ambient)", len(inj), names(inj))
}

// sidecarsHBONE finds injected pods (label security.istio.io/tlsMode=istio
// selects them server-side) whose istio-proxy lacks ISTIO_META_ENABLE_HBONE.
func (p *prechecker) sidecarsHBONE(ctx context.Context) error {
	pods, err := p.c.listPods(ctx, "", "security.istio.io/tlsMode=istio")
	if err != nil {
		return err
	}
	var without []string
	total := 0
	for _, pod := range pods {
		if _, ok := pod.Annotations[ambient.AnnotationSidecarStatus]; !ok {
			continue
		}
		total++
		if !sidecarHasHBONE(&pod) {
			without = append(without, pod.Namespace+"/"+pod.Name)
		}
	}
	if total == 0 {
		return checker.Skip("no sidecars injected")
	}
	if len(without) > 0 {
		sort.Strings(without)
		return fmt.Errorf("%d of %d sidecar pods run without HBONE: %s", len(without), total, names(without))
	}
	return checker.Info("all %d sidecar pods have HBONE enabled", total)
}

func sidecarHasHBONE(pod *corev1.Pod) bool {
	all := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		if c.Name != ambient.ProxyContainer {
			continue
		}
		for _, e := range c.Env {
			if e.Name == "ISTIO_META_ENABLE_HBONE" {
				return e.Value == "true"
			}
		}
	}
	return false
}

func (p *prechecker) gatewayAPI(ctx context.Context) error {
	sup, minor, err := supportFor(p.o.IstioVersion)
	if err != nil {
		return err
	}
	if p.c.Dynamic == nil {
		return checker.Skip("no dynamic client")
	}
	crd, err := p.c.Dynamic.Resource(GVRCRD).Get(ctx, gatewayAPIGatewaysCRD, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return errors.New("the Gateway API CRDs are not installed; waypoints need them")
	}
	if err != nil {
		return fmt.Errorf("get crd %s: %w", gatewayAPIGatewaysCRD, err)
	}
	ann := crd.GetAnnotations()
	bundle := ann[gatewayAPIBundleVersion]
	if bundle == "" {
		return fmt.Errorf("crd %s has no %s annotation, so its Gateway API release is unknown", gatewayAPIGatewaysCRD, gatewayAPIBundleVersion)
	}
	have, err := ambient.ParseVersion(bundle)
	if err != nil {
		return fmt.Errorf("gateway api bundle version: %w", err)
	}
	want, _ := ambient.ParseVersion(sup.MinGatewayAPI)
	if have.Less(want) {
		return fmt.Errorf("gateway api %s is older than %s, the release istio %s is documented with", bundle, sup.MinGatewayAPI, minor)
	}
	channel := ann[gatewayAPIChannel]
	if channel == "" {
		channel = "unknown"
	}
	return checker.Info("gateway api %s (%s channel)", bundle, channel)
}

func (p *prechecker) podSecurity(ctx context.Context) error {
	ns, err := p.c.namespace(ctx, p.c.IstioNamespace)
	if err != nil {
		return err
	}
	if ns == nil {
		return checker.Info("namespace %s does not exist yet; install creates it", p.c.IstioNamespace)
	}
	level, ok := ns.Labels["pod-security.kubernetes.io/enforce"]
	if !ok {
		return checker.Info("namespace %s has no enforce label; the cluster default applies", ns.Name)
	}
	if level != "privileged" {
		return fmt.Errorf("namespace %s enforces pod security level %q", ns.Name, level)
	}
	return nil
}
