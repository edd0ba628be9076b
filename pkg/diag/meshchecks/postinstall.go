package meshchecks

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/checker"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

// Check categories, in the order they run.
const (
	CategoryControlPlane = "control-plane"
	CategoryDataPlane    = "data-plane"
	CategoryEnrollment   = "enrollment"
	CategoryWaypoints    = "waypoints"
)

// ConfigDumpFetcher reads ztunnel's admin /config_dump from one ztunnel pod
// (the admin port listens on localhost only, so callers port-forward);
// watch.AdminFetcher of pkg/diag/ztunnel implements it.
type ConfigDumpFetcher interface {
	ConfigDump(ctx context.Context, ns, pod string) (*ztunnel.ConfigDump, error)
}

// HealthOptions tunes `check`.
type HealthOptions struct {
	// ConfigDumps reads ztunnel certificates; nil skips that check.
	ConfigDumps ConfigDumpFetcher
	// CertSample is how many ztunnel pods to read certificates from (the
	// only per-pod requests `check` makes); 3 when zero.
	CertSample int
	// Now is the clock for certificate expiry; time.Now when nil.
	Now func() time.Time
}

// Health returns the checks of `kubectl ambient check`.
func Health(c *Cluster, o HealthOptions) []checker.Check {
	if o.CertSample <= 0 {
		o.CertSample = 3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	h := &healther{c: c, o: o}
	return append([]checker.Check{
		apiReachable(c),
		{
			ID: "helm-releases", Category: CategoryControlPlane,
			Description: "Helm releases are deployed",
			Hint:        "see the release history with helm history <release> -n " + c.IstioNamespace + "; rerun kubectl ambient install or helm rollback a failed release",
			Run:         h.releases,
		},
		{
			ID: "istiod-ready", Category: CategoryControlPlane,
			Description: "istiod is ready",
			Hint:        "kubectl -n " + c.IstioNamespace + " describe deploy -l app=istiod; kubectl -n " + c.IstioNamespace + " logs deploy/istiod",
			Run:         h.istiodReady,
		},
		{
			ID: "version-skew", Category: CategoryControlPlane,
			Description: "istio-cni and ztunnel versions are compatible with istiod",
			Hint:        "istio-cni and ztunnel may trail istiod by one minor release at most: upgrade istiod first, then istio-cni and ztunnel",
			Run:         h.versionSkew,
		},
		{
			ID: "cni-daemonset", Category: CategoryDataPlane,
			Description: "istio-cni-node DaemonSet exists",
			Hint:        "install the cni chart: kubectl ambient install",
			Run:         h.daemonSetExists(cniDaemonSet),
		},
		{
			ID: "cni-nodes", Category: CategoryDataPlane,
			Description: "istio-cni-node is ready on every eligible node",
			Hint:        "kubectl -n " + c.IstioNamespace + " get pods -l k8s-app=istio-cni-node -o wide; describe the pods (or nodes) named",
			Needs:       []string{"cni-daemonset"},
			Run:         h.daemonSetNodes(cniDaemonSet),
		},
		{
			ID: "ztunnel-daemonset", Category: CategoryDataPlane,
			Description: "ztunnel DaemonSet exists",
			Hint:        "install the ztunnel chart: kubectl ambient install",
			Run:         h.daemonSetExists(ztunnelDaemonSet),
		},
		{
			ID: "ztunnel-nodes", Category: CategoryDataPlane,
			Description: "ztunnel is ready on every eligible node",
			Hint:        "kubectl -n " + c.IstioNamespace + " get pods -l app=ztunnel -o wide; pods on a node without ztunnel lose traffic",
			Needs:       []string{"ztunnel-daemonset"},
			Run:         h.daemonSetNodes(ztunnelDaemonSet),
		},
		{
			ID: "ztunnel-certificates", Category: CategoryDataPlane,
			Description: "ztunnel workload certificates are available",
			Hint:        "check istiod is reachable from ztunnel and kubectl -n " + c.IstioNamespace + " logs ds/ztunnel for certificate errors",
			Needs:       []string{"ztunnel-daemonset"},
			Run:         h.certificates,
		},
		{
			ID: "namespace-labels", Category: CategoryEnrollment,
			Description: "no namespace asks for both ambient and sidecar injection",
			Hint:        "remove the injection label: kubectl label ns <ns> istio-injection- istio.io/rev- (kubectl ambient enroll does this)",
			Run:         h.dualLabels,
		},
		{
			ID: "pod-redirection", Category: CategoryEnrollment,
			Description: "pods in ambient namespaces are captured",
			Hint:        "pending: ztunnel on that node has not taken the pod (check it); missing: istio-cni has not processed the pod (check istio-cni-node on its node, then restart the pod)",
			Run:         h.redirection,
		},
		{
			ID: "sidecars-in-ambient", Category: CategoryEnrollment,
			Description: "no sidecar pods in ambient namespaces",
			Severity:    checker.SeverityWarning,
			Hint:        "restart these workloads so they are recreated without a sidecar (kubectl rollout restart)",
			Run:         h.sidecars,
		},
		{
			ID: "waypoints-programmed", Category: CategoryWaypoints,
			Description: "waypoints are programmed",
			Hint:        "kubectl describe gateway <waypoint> -n <ns>; check istiod's logs for the waypoint deployment",
			Run:         h.waypoints,
		},
		{
			ID: "waypoint-bindings", Category: CategoryWaypoints,
			Description: "services are bound to their waypoints",
			Hint:        "the istio.io/use-waypoint label names a waypoint that does not exist or does not accept this service; fix the label or the waypoint",
			Run:         h.waypointBindings,
		},
		{
			ID: "l7-authorization", Category: CategoryWaypoints,
			Description: "no selector-based L7 AuthorizationPolicies in ambient namespaces",
			Hint:        "ztunnel cannot enforce HTTP rules and denies all traffic they select: attach the policy to a waypoint with targetRefs instead of selector",
			Run:         h.l7Policies,
		},
	}, waypointChecks(c)...)
}

type healther struct {
	c *Cluster
	o HealthOptions
}

func (h *healther) releases(ctx context.Context) error {
	h.c.Prefetch(ctx)
	rels, err := h.c.Releases(ctx)
	if err != nil {
		return err
	}
	if len(rels) == 0 {
		return skipf("no Helm releases in %s (installed by other means)", h.c.IstioNamespace)
	}
	have := map[string]Release{}
	for _, r := range rels {
		have[r.Name] = r
	}
	var lines, bad []string
	for _, r := range rels {
		chart := r.Chart
		if chart == "" {
			chart = "unknown chart version"
		}
		lines = append(lines, fmt.Sprintf("%s %s: %s (revision %d)", r.Name, chart, r.Status, r.Revision))
		if r.Status != "deployed" {
			bad = append(bad, fmt.Sprintf("%s is %s (revision %d)", r.Name, r.Status, r.Revision))
		}
	}
	for _, name := range ambient.Releases() {
		if _, ok := have[name]; !ok {
			bad = append(bad, fmt.Sprintf("%s is not installed", name))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "\n"))
	}
	return infof("%s", strings.Join(lines, "\n"))
}

func (h *healther) istiodReady(ctx context.Context) error {
	deps, err := h.c.Istiods(ctx, h.c.IstioNamespace)
	if err != nil {
		return err
	}
	if len(deps) == 0 {
		return fmt.Errorf("no istiod deployment (label app=istiod) in %s", h.c.IstioNamespace)
	}
	return deploymentsReady(deps, runningIstio)
}

// runningIstio names the Istio version a Deployment runs: its first
// container's image version (what runs), else its version label.
func runningIstio(d *appsv1.Deployment) string {
	v := ""
	if cs := d.Spec.Template.Spec.Containers; len(cs) > 0 {
		v = ambient.ImageVersion(cs[0].Image)
	}
	if v == "" || v == "latest" {
		v = d.Labels[ambient.LabelAppVersion]
	}
	if v == "" {
		return ""
	}
	return ", running istio " + v
}

// deploymentsReady fails when any deployment has fewer ready replicas than
// wanted (ambient.Readiness.Serving: a rollout in progress still serves).
// describe, when set, adds to each ready deployment's line.
func deploymentsReady(deps []appsv1.Deployment, describe func(*appsv1.Deployment) string) error {
	var bad, ok []string
	for i := range deps {
		d := &deps[i]
		r := ambient.DeploymentReadiness(d)
		if !r.Serving() {
			bad = append(bad, fmt.Sprintf("deployment %s/%s has %d of %d replicas ready", d.Namespace, d.Name, r.Ready, r.Want))
		} else {
			line := fmt.Sprintf("%s/%s %d/%d ready", d.Namespace, d.Name, r.Ready, r.Want)
			if describe != nil {
				line += describe(d)
			}
			ok = append(ok, line)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "\n"))
	}
	return infof("%s", strings.Join(ok, "\n"))
}

// deploymentVersion is the version label or the first container's image tag.
func deploymentVersion(d *appsv1.Deployment) string {
	if v := d.Labels[ambient.LabelAppVersion]; v != "" {
		return v
	}
	if len(d.Spec.Template.Spec.Containers) > 0 {
		if t := ambient.ImageTag(d.Spec.Template.Spec.Containers[0].Image); t != "" {
			return t
		}
	}
	return "unknown"
}

func daemonSetVersion(ds *appsv1.DaemonSet) string {
	if len(ds.Spec.Template.Spec.Containers) > 0 {
		if t := ambient.ImageTag(ds.Spec.Template.Spec.Containers[0].Image); t != "" {
			return t
		}
	}
	return ds.Labels[ambient.LabelAppVersion]
}

func (h *healther) versionSkew(ctx context.Context) error {
	deps, err := h.c.Istiods(ctx, h.c.IstioNamespace)
	if err != nil {
		return err
	}
	if len(deps) == 0 {
		return skipf("istiod not found")
	}
	// With several revisions the data plane follows the newest istiod.
	istiod, unparsed := "", ""
	var newest ambient.Version
	for i := range deps {
		v := deploymentVersion(&deps[i])
		pv, err := ambient.ParseVersion(v)
		if err != nil {
			if v != "unknown" {
				unparsed = v
			}
			continue
		}
		if istiod == "" || newest.Less(pv) {
			istiod, newest = v, pv
		}
	}
	if istiod == "" && unparsed != "" {
		// Development charts tag images latest: there is no version to judge.
		return warnf("istiod runs image tag %s, which is not a version, so version skew cannot be judged; deploy a released istio version to have it checked", unparsed)
	}
	if istiod == "" {
		return skipf("istiod version unknown (no version label or image tag)")
	}
	parts := []string{"istiod " + istiod}
	var errs, warns []string
	for _, name := range []string{cniDaemonSet, ztunnelDaemonSet} {
		ds, err := h.c.DaemonSet(ctx, name)
		if err != nil {
			return err
		}
		if ds == nil {
			continue
		}
		v := daemonSetVersion(ds)
		if v == "" {
			continue
		}
		parts = append(parts, name+" "+v)
		if err := checkSkew(istiod, name, v); errors.Is(err, errNotAVersion) {
			warns = append(warns, fmt.Sprintf("%s runs image tag %s, which is not a version, so its skew against istiod %s cannot be judged", name, v, istiod))
		} else if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		// A judged skew error outranks a component that could not be judged.
		errs = append(errs, warns...)
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	if len(warns) > 0 {
		return warnf("%s", strings.Join(warns, "\n"))
	}
	return infof("%s", strings.Join(parts, ", "))
}

func (h *healther) daemonSetExists(name string) func(context.Context) error {
	return func(ctx context.Context) error {
		ds, err := h.c.DaemonSet(ctx, name)
		if err != nil {
			return err
		}
		if ds == nil {
			return fmt.Errorf("daemonset %s/%s not found", h.c.IstioNamespace, name)
		}
		return nil
	}
}

// NodeGap is one eligible node where a DaemonSet is not ready.
type NodeGap struct {
	Node, Pod, Reason string
}

// DaemonSetGaps compares a DaemonSet's pods with the nodes it should run on:
// nodes matching its nodeSelector whose NoSchedule/NoExecute taints it
// tolerates. Node affinity is not evaluated (the Istio charts set none).
func DaemonSetGaps(ds *appsv1.DaemonSet, nodes []corev1.Node, pods []corev1.Pod) (eligible int, gaps []NodeGap) {
	byNode := map[string]*corev1.Pod{}
	for i := range pods {
		p := &pods[i]
		if p.Spec.NodeName == "" || p.DeletionTimestamp != nil {
			continue
		}
		// Prefer a ready pod when a node briefly has two (rolling update).
		if cur, ok := byNode[p.Spec.NodeName]; !ok || (!podReady(cur) && podReady(p)) {
			byNode[p.Spec.NodeName] = p
		}
	}
	tmpl := ds.Spec.Template.Spec
	for i := range nodes {
		n := &nodes[i]
		if !nodeEligible(n, tmpl.NodeSelector, tmpl.Tolerations) {
			continue
		}
		eligible++
		p, ok := byNode[n.Name]
		switch {
		case !ok:
			gaps = append(gaps, NodeGap{Node: n.Name, Reason: "no pod"})
		case !podReady(p):
			gaps = append(gaps, NodeGap{Node: n.Name, Pod: p.Name, Reason: "pod " + p.Name + " not ready (" + podState(p) + ")"})
		}
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i].Node < gaps[j].Node })
	return eligible, gaps
}

// podState is a short reason a pod is not ready.
func podState(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Waiting != nil && cs.State.Waiting.Reason != "" {
			return cs.State.Waiting.Reason
		}
	}
	return strings.ToLower(string(p.Status.Phase))
}

func nodeEligible(n *corev1.Node, selector map[string]string, tols []corev1.Toleration) bool {
	for k, v := range selector {
		if n.Labels[k] != v {
			return false
		}
	}
	for i := range n.Spec.Taints {
		t := &n.Spec.Taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		tolerated := false
		for j := range tols {
			if tolerates(&tols[j], t) {
				tolerated = true
				break
			}
		}
		if !tolerated {
			return false
		}
	}
	return true
}

func (h *healther) daemonSetNodes(name string) func(context.Context) error {
	return func(ctx context.Context) error {
		ds, err := h.c.DaemonSet(ctx, name)
		if err != nil {
			return err
		}
		if ds == nil {
			return skipf("daemonset %s not found", name)
		}
		nodes, err := h.c.Nodes(ctx)
		if err != nil {
			return err
		}
		pods, err := h.c.DaemonSetPods(ctx, ds)
		if err != nil {
			return err
		}
		n, gaps := DaemonSetGaps(ds, nodes, pods)
		if len(gaps) == 0 {
			return infof("ready on %d of %d eligible nodes", n, n)
		}
		var items []string
		for _, g := range gaps {
			items = append(items, g.Node+" ("+g.Reason+")")
		}
		return fmt.Errorf("%s is not ready on %d of %d eligible nodes: %s", name, len(gaps), n, names(items))
	}
}

func (h *healther) certificates(ctx context.Context) error {
	if h.o.ConfigDumps == nil {
		return skipf("reading ztunnel's admin port is not available in this build")
	}
	ds, err := h.c.DaemonSet(ctx, ztunnelDaemonSet)
	if err != nil || ds == nil {
		return skipf("ztunnel not found")
	}
	pods, err := h.c.DaemonSetPods(ctx, ds)
	if err != nil {
		return err
	}
	var ready []corev1.Pod
	for _, p := range pods {
		if podReady(&p) {
			ready = append(ready, p)
		}
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i].Spec.NodeName < ready[j].Spec.NodeName })
	if len(ready) > h.o.CertSample {
		ready = ready[:h.o.CertSample]
	}
	now := h.o.Now()
	var bad []string
	total := 0
	for i := range ready {
		p := &ready[i]
		dump, err := h.o.ConfigDumps.ConfigDump(ctx, p.Namespace, p.Name)
		if err != nil {
			bad = append(bad, fmt.Sprintf("node %s: %v", p.Spec.NodeName, err))
			continue
		}
		for _, cert := range dump.Certificates {
			total++
			switch {
			case cert.State != "Available":
				bad = append(bad, fmt.Sprintf("node %s: %s is %s", p.Spec.NodeName, cert.Identity, cert.State))
			case ambient.CertExpiry(cert.ValidFrom, cert.Expiration, now, ambient.CertWarnLimit) == ambient.CertExpired:
				bad = append(bad, fmt.Sprintf("node %s: %s expired at %s", p.Spec.NodeName, cert.Identity, cert.Expiration.UTC().Format(time.RFC3339)))
			}
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "\n"))
	}
	return infof("%d certificates available on %d sampled ztunnel pods", total, len(ready))
}

func (h *healther) dualLabels(ctx context.Context) error {
	nss, err := h.c.scopedNamespaces(ctx)
	if err != nil {
		return err
	}
	var both []string
	for _, ns := range nss {
		if ns.Labels[ambient.LabelDataplaneMode] == ambient.DataplaneAmbient && hasInjection(ns.Labels) {
			both = append(both, ns.Name)
		}
	}
	if len(both) > 0 {
		sort.Strings(both)
		return fmt.Errorf("namespaces labelled for both ambient and sidecar injection: %s", names(both))
	}
	return nil
}

// enrolledPods returns the running pods of ambient namespaces that istio-cni
// should have captured: not opted out, not hostNetwork, no sidecar.
func (h *healther) ambientPods(ctx context.Context) (captured, sidecars []corev1.Pod, err error) {
	pods, err := h.c.AmbientPods(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		if _, ok := p.Annotations[ambient.AnnotationSidecarStatus]; ok {
			sidecars = append(sidecars, p)
			continue
		}
		if p.Spec.HostNetwork || p.Labels[ambient.LabelDataplaneMode] == ambient.DataplaneNone {
			continue
		}
		captured = append(captured, p)
	}
	return captured, sidecars, nil
}

func (h *healther) redirection(ctx context.Context) error {
	nss, err := h.c.AmbientNamespaces(ctx)
	if err != nil {
		return err
	}
	if len(nss) == 0 {
		return skipf("no ambient namespaces")
	}
	pods, _, err := h.ambientPods(ctx)
	if err != nil {
		return err
	}
	var bad []string
	for _, p := range pods {
		switch v := p.Annotations[ambient.AnnotationRedirection]; v {
		case "enabled":
		case "":
			bad = append(bad, fmt.Sprintf("%s/%s on %s (no redirection annotation)", p.Namespace, p.Name, p.Spec.NodeName))
		default:
			bad = append(bad, fmt.Sprintf("%s/%s on %s (redirection %s)", p.Namespace, p.Name, p.Spec.NodeName, v))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("%d of %d pods are not captured: %s", len(bad), len(pods), names(bad))
	}
	return infof("%d pods captured in %d ambient namespaces", len(pods), len(nss))
}

func (h *healther) sidecars(ctx context.Context) error {
	nss, err := h.c.AmbientNamespaces(ctx)
	if err != nil {
		return err
	}
	if len(nss) == 0 {
		return skipf("no ambient namespaces")
	}
	_, sc, err := h.ambientPods(ctx)
	if err != nil {
		return err
	}
	if len(sc) > 0 {
		var n []string
		for _, p := range sc {
			n = append(n, p.Namespace+"/"+p.Name)
		}
		sort.Strings(n)
		return fmt.Errorf("%d pods still run a sidecar: %s", len(sc), names(n))
	}
	return nil
}

// condition finds a status condition in an unstructured object.
func condition(obj map[string]any, typ string) (status, reason, message string, found bool) {
	conds, _, _ := unstructured.NestedSlice(obj, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != typ {
			continue
		}
		status, _ = m["status"].(string)
		reason, _ = m["reason"].(string)
		message, _ = m["message"].(string)
		return status, reason, message, true
	}
	return "", "", "", false
}

func (h *healther) waypoints(ctx context.Context) error {
	gws, found, err := h.c.listDynamic(ctx, GVRGateway, h.c.Namespace)
	if err != nil {
		return err
	}
	if !found {
		return skipf("Gateway API CRDs not installed")
	}
	var bad []string
	n := 0
	for _, gw := range gws {
		class, _, _ := unstructured.NestedString(gw.Object, "spec", "gatewayClassName")
		if class != waypointGatewayClassName {
			continue
		}
		n++
		st, reason, msg, ok := condition(gw.Object, "Programmed")
		if !ok {
			bad = append(bad, fmt.Sprintf("%s/%s has no Programmed condition yet", gw.GetNamespace(), gw.GetName()))
		} else if st != string(metav1.ConditionTrue) {
			bad = append(bad, fmt.Sprintf("%s/%s: %s: %s", gw.GetNamespace(), gw.GetName(), reason, msg))
		}
	}
	if n == 0 {
		return skipf("no waypoints")
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("%d of %d waypoints are not programmed:\n%s", len(bad), n, strings.Join(bad, "\n"))
	}
	return infof("%d waypoints programmed", n)
}

// WaypointBoundCondition is the Service condition istiod writes when a
// Service uses a waypoint.
const WaypointBoundCondition = "istio.io/WaypointBound"

func (h *healther) waypointBindings(ctx context.Context) error {
	svcs, err := pageAll(ctx, metav1.ListOptions{}, func(o metav1.ListOptions) ([]corev1.Service, string, error) {
		l, err := h.c.Kube.CoreV1().Services(h.c.Namespace).List(ctx, o)
		if err != nil {
			return nil, "", err
		}
		return l.Items, l.Continue, nil
	})
	if err != nil {
		return fmt.Errorf("list services: %w", err)
	}
	var bad []string
	bound := 0
	for _, s := range svcs {
		for _, c := range s.Status.Conditions {
			if c.Type != WaypointBoundCondition {
				continue
			}
			if c.Status == metav1.ConditionTrue {
				bound++
			} else {
				bad = append(bad, fmt.Sprintf("service %s/%s: %s: %s", s.Namespace, s.Name, c.Reason, c.Message))
			}
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("%s", strings.Join(bad, "\n"))
	}
	if bound == 0 {
		return skipf("no services use a waypoint")
	}
	return infof("%d services bound", bound)
}

// l7Fields are AuthorizationPolicy fields only a proxy that parses HTTP can
// enforce.
var (
	l7OperationFields = []string{"hosts", "notHosts", "methods", "notMethods", "paths", "notPaths"}
	l7SourceFields    = []string{"requestPrincipals", "notRequestPrincipals"}
)

// L7Rules returns why an AuthorizationPolicy spec needs a waypoint ("" if
// ztunnel can enforce it): HTTP fields in to.operation, request principals
// in from.source, or request.* / experimental conditions in when.
func L7Rules(spec map[string]any) string {
	rules, _, _ := unstructured.NestedSlice(spec, "rules")
	for _, r := range rules {
		rule, ok := r.(map[string]any)
		if !ok {
			continue
		}
		for _, to := range sliceOf(rule["to"]) {
			op, _ := to["operation"].(map[string]any)
			for _, f := range l7OperationFields {
				if _, ok := op[f]; ok {
					return "to.operation." + f
				}
			}
		}
		for _, from := range sliceOf(rule["from"]) {
			src, _ := from["source"].(map[string]any)
			for _, f := range l7SourceFields {
				if _, ok := src[f]; ok {
					return "from.source." + f
				}
			}
		}
		for _, w := range sliceOf(rule["when"]) {
			if k, _ := w["key"].(string); strings.HasPrefix(k, "request.") || strings.HasPrefix(k, "experimental.") {
				return "when " + k
			}
		}
	}
	return ""
}

func sliceOf(v any) []map[string]any {
	s, _ := v.([]any)
	out := make([]map[string]any, 0, len(s))
	for _, e := range s {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func (h *healther) l7Policies(ctx context.Context) error {
	nss, err := h.c.AmbientNamespaces(ctx)
	if err != nil {
		return err
	}
	if len(nss) == 0 {
		return skipf("no ambient namespaces")
	}
	pols, found, err := h.c.listDynamic(ctx, GVRAuthorizationPolicy, h.c.Namespace)
	if err != nil {
		return err
	}
	if !found {
		return skipf("Istio security CRDs not installed")
	}
	ambient := map[string]bool{}
	for _, n := range nss {
		ambient[n] = true
	}
	var bad []string
	for _, p := range pols {
		if !ambient[p.GetNamespace()] {
			continue
		}
		spec, _, _ := unstructured.NestedMap(p.Object, "spec")
		if _, targeted := spec["targetRefs"]; targeted {
			continue
		}
		if _, targeted := spec["targetRef"]; targeted {
			continue
		}
		if why := L7Rules(spec); why != "" {
			bad = append(bad, fmt.Sprintf("%s/%s uses %s", p.GetNamespace(), p.GetName(), why))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("%s", strings.Join(bad, "\n"))
	}
	return nil
}

// tolerates is the Kubernetes toleration match for the Equal and Exists
// operators (an empty key with Exists tolerates everything).
func tolerates(tol *corev1.Toleration, t *corev1.Taint) bool {
	if tol.Effect != "" && tol.Effect != t.Effect {
		return false
	}
	if tol.Key != "" && tol.Key != t.Key {
		return false
	}
	switch tol.Operator {
	case corev1.TolerationOpExists:
		return true
	case corev1.TolerationOpEqual, "":
		return tol.Key != "" && tol.Value == t.Value
	}
	return false
}
