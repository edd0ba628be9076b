package migrate

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// ErrRefused marks a namespace that must never be enrolled (kube-system,
// istio-system, the ztunnel namespace).
var ErrRefused = errors.New("namespace refused")

// ErrNotFound marks a namespace named on the command line that does not exist.
var ErrNotFound = errors.New("namespace not found")

// ErrBlocked marks a plan that has blockers and was not forced.
var ErrBlocked = errors.New("enrollment blocked")

// Selection says which namespaces to act on. The three ways combine (union).
type Selection struct {
	Names []string
	// Selector is a label selector over namespaces; nil selects nothing.
	Selector labels.Selector
	// AllInjected selects every namespace with sidecar injection on.
	AllInjected bool
}

// PlanOptions tune the plan.
type PlanOptions struct {
	// Force lets blocked namespaces through (their blockers stay in the plan).
	Force bool
	// Waypoint asks for a waypoint Gateway named WaypointName in each namespace.
	Waypoint     bool
	WaypointName string
	// SystemNamespaces are refused in addition to the ztunnel namespace; nil
	// means DefaultSystemNamespaces.
	SystemNamespaces []string
	// RootNamespace is Istio's root namespace (mesh-wide policies); default istio-system.
	RootNamespace string
}

// Plan is what an enrollment will do, namespace by namespace.
type Plan struct {
	Namespaces []NamespacePlan `json:"namespaces"`
	// Skipped lists selected namespaces left out, with why (system namespaces
	// matched by a selector).
	Skipped []ResourceRef `json:"skipped,omitempty"`
	// MeshWarnings apply to the whole mesh, not one namespace.
	MeshWarnings []string `json:"meshWarnings,omitempty"`
	// GatewayGVR is where waypoint Gateways are written; empty when the Gateway API is not installed.
	GatewayGVR schema.GroupVersionResource `json:"-"`
	// PolicyGVR is where AuthorizationPolicies are read and written.
	PolicyGVR schema.GroupVersionResource `json:"-"`
}

// NamespacePlan is the plan for one namespace.
type NamespacePlan struct {
	Name string `json:"name"`
	Mode Mode   `json:"mode"`
	// Action is enroll, none (already enrolled) or blocked.
	Action string `json:"action"`
	// ResourceVersion of the namespace as read; Apply uses it as the precondition of its first patch.
	ResourceVersion string            `json:"-"`
	Labels          map[string]string `json:"-"`
	Annotations     map[string]string `json:"-"`
	Pods            PodCounts         `json:"pods"`
	Workloads       []Workload        `json:"workloads,omitempty"`
	L7              []ResourceRef     `json:"l7,omitempty"`
	Blockers        []ResourceRef     `json:"blockers,omitempty"`
	WaypointPresent bool              `json:"waypointPresent"`
	WaypointCreate  string            `json:"waypointCreate,omitempty"`
	// Waypoint is the waypoint the namespace will use: the one present or
	// the one to create.
	Waypoint string `json:"waypoint,omitempty"`
	// Moves are the selector-based L7 AuthorizationPolicies moved to the
	// waypoint; with any, enrollment follows Istio's documented order.
	Moves    []PolicyMove `json:"policyMoves,omitempty"`
	Changes  LabelChanges `json:"labelChanges"`
	Warnings []string     `json:"warnings,omitempty"`
	// HasJournal is true when an earlier enrollment's journal is on the namespace.
	HasJournal bool `json:"hasJournal"`
}

// PodCounts classifies a namespace's live pods.
type PodCounts struct {
	Total int `json:"total"`
	// Capture is how many pods istio-cni will capture at once (no sidecar, not hostNetwork, not opted out).
	Capture int `json:"capture"`
	// Sidecar pods keep their sidecar until their next rollout.
	Sidecar int `json:"sidecar"`
	// SidecarNoHBONE sidecars cannot speak HBONE to ambient pods.
	SidecarNoHBONE int `json:"sidecarNoHBONE"`
	HostNetwork    int `json:"hostNetwork"`
	OptedOut       int `json:"optedOut"`
	// Captured already carry redirection=enabled.
	Captured int `json:"captured"`
}

// Workload groups pods by owner (Deployment, StatefulSet, DaemonSet, Job or bare Pod).
type Workload struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	Pods int    `json:"pods"`
	// Sidecars counts pods with a sidecar; HBONE those whose sidecar speaks HBONE.
	Sidecars int `json:"sidecars"`
	HBONE    int `json:"hbone"`
}

// LabelChanges are the namespace label edits of an enrollment.
type LabelChanges struct {
	Add    map[string]string `json:"add,omitempty"`
	Remove []string          `json:"remove,omitempty"`
}

// String renders the changes as kubectl label arguments.
func (c LabelChanges) String() string {
	var parts []string
	for _, k := range sortedKeys(c.Add) {
		parts = append(parts, k+"="+c.Add[k])
	}
	for _, k := range c.Remove {
		parts = append(parts, k+"-")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// Empty reports whether there is nothing to change.
func (c LabelChanges) Empty() bool { return len(c.Add) == 0 && len(c.Remove) == 0 }

// Actions of a NamespacePlan.
const (
	ActionEnroll  = "enroll"
	ActionNone    = "none"
	ActionBlocked = "blocked"
)

// Blocked returns the namespaces whose action is blocked.
func (p *Plan) Blocked() []NamespacePlan {
	var out []NamespacePlan
	for _, n := range p.Namespaces {
		if n.Action == ActionBlocked {
			out = append(out, n)
		}
	}
	return out
}

// podClass is how istio-cni treats one pod.
type podClass int

const (
	classSkip podClass = iota // finished or terminating
	classCapture
	classSidecar
	classHostNetwork
	classOptedOut
)

func classify(p *corev1.Pod) podClass {
	switch {
	case p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
		return classSkip
	case p.Spec.HostNetwork:
		return classHostNetwork
	case p.Labels[ambient.LabelDataplaneMode] == ambient.DataplaneNone:
		return classOptedOut
	case hasSidecar(p):
		return classSidecar
	}
	return classCapture
}

func hasSidecar(p *corev1.Pod) bool {
	_, ok := p.Annotations[ambient.AnnotationSidecarStatus]
	return ok
}

// sidecarHBONE reports whether the pod's istio-proxy runs with ISTIO_META_ENABLE_HBONE=true.
func sidecarHBONE(p *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{p.Spec.Containers, p.Spec.InitContainers} {
		for _, c := range cs {
			if c.Name != ambient.ProxyContainer {
				continue
			}
			for _, e := range c.Env {
				if e.Name == EnvEnableHBONE {
					return strings.EqualFold(e.Value, "true")
				}
			}
		}
	}
	return false
}

// injectionOn reports whether the namespace labels turn sidecar injection on.
func injectionOn(l map[string]string) bool {
	return l[ambient.LabelInjection] == "enabled" || l[ambient.LabelRev] != ""
}

// ownerOf names the workload a pod belongs to. A ReplicaSet created by a
// Deployment is named <deployment>-<pod-template-hash>.
func ownerOf(p *corev1.Pod) (kind, name string) {
	for _, o := range p.OwnerReferences {
		if o.Controller == nil || !*o.Controller {
			continue
		}
		if o.Kind == "ReplicaSet" {
			if h := p.Labels["pod-template-hash"]; h != "" && strings.HasSuffix(o.Name, "-"+h) {
				return "Deployment", strings.TrimSuffix(o.Name, "-"+h)
			}
		}
		return o.Kind, o.Name
	}
	return "Pod", p.Name
}

// ZtunnelNamespaces finds the namespaces ztunnel pods run in.
func ZtunnelNamespaces(pods []corev1.Pod) []string {
	set := map[string]bool{}
	for i := range pods {
		if pods[i].Labels["app"] == "ztunnel" {
			set[pods[i].Namespace] = true
		}
	}
	return sortedKeys(set)
}

// BuildPlan is a pure function from a snapshot to a plan for the selected
// namespaces. It returns an error (and no plan) when a named namespace is
// missing or refused; blockers are reported in the plan, and as ErrBlocked
// when opts.Force is false.
func BuildPlan(s *Snapshot, sel Selection, opts PlanOptions) (*Plan, error) {
	if opts.RootNamespace == "" {
		opts.RootNamespace = ambient.IstioNamespace
	}
	if opts.WaypointName == "" {
		opts.WaypointName = "waypoint"
	}
	system := opts.SystemNamespaces
	if system == nil {
		system = DefaultSystemNamespaces
	}
	refused := map[string]string{}
	for _, n := range system {
		refused[n] = "a system namespace"
	}
	for _, n := range ZtunnelNamespaces(s.Pods) {
		refused[n] = "the namespace ztunnel runs in"
	}

	byName := make(map[string]*corev1.Namespace, len(s.Namespaces))
	for i := range s.Namespaces {
		byName[s.Namespaces[i].Name] = &s.Namespaces[i]
	}
	plan := &Plan{GatewayGVR: s.GVR[KindGateway], PolicyGVR: s.GVR[KindAuthorizationPolicy]}
	chosen := map[string]bool{}
	var errs []error
	for _, n := range sel.Names {
		if why, ok := refused[n]; ok {
			errs = append(errs, fmt.Errorf("enroll namespace %q: %w: it is %s; ambient must not capture it", n, ErrRefused, why))
			continue
		}
		if _, ok := byName[n]; !ok {
			errs = append(errs, fmt.Errorf("enroll namespace %q: %w; list namespaces with kubectl get ns", n, ErrNotFound))
			continue
		}
		chosen[n] = true
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if sel.Selector != nil || sel.AllInjected {
		for i := range s.Namespaces {
			ns := &s.Namespaces[i]
			match := (sel.Selector != nil && sel.Selector.Matches(labels.Set(ns.Labels))) ||
				(sel.AllInjected && injectionOn(ns.Labels))
			if !match || chosen[ns.Name] {
				continue
			}
			if why, ok := refused[ns.Name]; ok {
				plan.Skipped = append(plan.Skipped, ResourceRef{Kind: "Namespace", Name: ns.Name, Reason: "refused: " + why})
				continue
			}
			chosen[ns.Name] = true
		}
	}

	// Index pods and resources by namespace once: O(objects).
	podsByNS := map[string][]*corev1.Pod{}
	var noHBONE []string // namespaces with sidecars that cannot speak HBONE
	noHBONESeen := map[string]bool{}
	for i := range s.Pods {
		p := &s.Pods[i]
		if chosen[p.Namespace] {
			podsByNS[p.Namespace] = append(podsByNS[p.Namespace], p)
		}
		if classify(p) == classSidecar && !sidecarHBONE(p) && !noHBONESeen[p.Namespace] {
			noHBONESeen[p.Namespace] = true
			noHBONE = append(noHBONE, p.Namespace)
		}
	}
	sort.Strings(noHBONE)
	svcByNS := map[string][]*corev1.Service{}
	for i := range s.Services {
		if chosen[s.Services[i].Namespace] {
			svcByNS[s.Services[i].Namespace] = append(svcByNS[s.Services[i].Namespace], &s.Services[i])
		}
	}
	var injected []string
	for i := range s.Namespaces {
		if injectionOn(s.Namespaces[i].Labels) {
			injected = append(injected, s.Namespaces[i].Name)
		}
	}
	sort.Strings(injected)
	resByNS := map[string][]*unstructured.Unstructured{}
	for _, kind := range sortedKeys(s.Resources) {
		items := s.Resources[kind]
		for i := range items {
			ns := items[i].GetNamespace()
			if chosen[ns] || ns == opts.RootNamespace {
				resByNS[ns] = append(resByNS[ns], &items[i])
			}
		}
	}

	// Mesh-wide: policies in the root namespace apply to every namespace.
	strictMeshWide := false
	var meshBlockers []ResourceRef
	for _, u := range resByNS[opts.RootNamespace] {
		if u.GetKind() != KindPeerAuthentication || hasSelector(u) {
			continue
		}
		switch peerAuthMode(u) {
		case "STRICT":
			strictMeshWide = true
		case "DISABLE":
			meshBlockers = append(meshBlockers, ResourceRef{Kind: KindPeerAuthentication, Name: opts.RootNamespace + "/" + u.GetName(),
				Reason: "mesh-wide mTLS DISABLE does not carry over to ambient: ztunnel always uses mTLS between captured pods"})
		}
	}
	if len(meshBlockers) > 0 {
		plan.MeshWarnings = append(plan.MeshWarnings, fmt.Sprintf("%d mesh-wide PeerAuthentication(s) with mode DISABLE in %s", len(meshBlockers), opts.RootNamespace))
	}

	for _, name := range sortedKeys(chosen) {
		ns := byName[name]
		np := planNamespace(ns, podsByNS[name], resByNS[name], s.Installed, opts)
		planL7(&np, podsByNS[name], svcByNS[name], resByNS[name], injected, opts)
		np.Blockers = append(np.Blockers, meshBlockers...)
		strict := strictMeshWide || np.strict
		if np.Pods.Capture > 0 || np.Action == ActionEnroll {
			others := slices.DeleteFunc(slices.Clone(noHBONE), func(n string) bool { return n == name })
			if np.Pods.SidecarNoHBONE > 0 {
				others = append([]string{name}, others...)
			}
			if len(others) > 0 {
				w := fmt.Sprintf("sidecars without HBONE (%s not true) in %s will reach this namespace's ambient pods in plaintext", EnvEnableHBONE, listShort(others, 3))
				if strict {
					w = fmt.Sprintf("sidecars without HBONE (%s not true) in %s will be refused by this namespace's ambient pods (STRICT mTLS); re-inject them with the ambient profile first", EnvEnableHBONE, listShort(others, 3))
				}
				np.Warnings = append(np.Warnings, w)
			}
		}
		if len(np.Blockers) > 0 && np.Action == ActionEnroll && !opts.Force {
			np.Action = ActionBlocked
		}
		plan.Namespaces = append(plan.Namespaces, np.NamespacePlan)
	}
	if !opts.Force {
		if b := plan.Blocked(); len(b) > 0 {
			var parts []string
			for _, n := range b {
				var what []string
				for _, r := range n.Blockers {
					what = append(what, r.Kind+" "+r.Name)
				}
				parts = append(parts, fmt.Sprintf("%s (%s)", n.Name, strings.Join(what, ", ")))
			}
			return plan, fmt.Errorf("%w: %s do not carry over to ambient; remove them", ErrBlocked, strings.Join(parts, "; "))
		}
	}
	return plan, nil
}

type nsPlan struct {
	NamespacePlan
	strict bool
}

func planNamespace(ns *corev1.Namespace, pods []*corev1.Pod, res []*unstructured.Unstructured, installed map[string]bool, opts PlanOptions) nsPlan {
	np := nsPlan{NamespacePlan: NamespacePlan{
		Name:            ns.Name,
		ResourceVersion: ns.ResourceVersion,
		Labels:          ns.Labels,
		Annotations:     ns.Annotations,
	}}
	_, np.HasJournal = ns.Annotations[AnnotationJournal]
	wl := map[[2]string]*Workload{}
	var order [][2]string
	podLabelledAmbient := 0
	for _, p := range pods {
		c := classify(p)
		if c == classSkip {
			continue
		}
		np.Pods.Total++
		if p.Labels[ambient.LabelDataplaneMode] == ambient.DataplaneAmbient {
			podLabelledAmbient++
		}
		if p.Annotations[ambient.AnnotationRedirection] == ambient.RedirectionEnabled {
			np.Pods.Captured++
		}
		kind, name := ownerOf(p)
		key := [2]string{kind, name}
		w := wl[key]
		if w == nil {
			w = &Workload{Kind: kind, Name: name}
			wl[key] = w
			order = append(order, key)
		}
		w.Pods++
		switch c {
		case classCapture:
			np.Pods.Capture++
		case classSidecar:
			np.Pods.Sidecar++
			w.Sidecars++
			if sidecarHBONE(p) {
				w.HBONE++
			} else {
				np.Pods.SidecarNoHBONE++
			}
		case classHostNetwork:
			np.Pods.HostNetwork++
		case classOptedOut:
			np.Pods.OptedOut++
		}
	}
	sort.Slice(order, func(i, j int) bool {
		if order[i][0] != order[j][0] {
			return order[i][0] < order[j][0]
		}
		return order[i][1] < order[j][1]
	})
	for _, k := range order {
		np.Workloads = append(np.Workloads, *wl[k])
	}

	l := ns.Labels
	enrolled := l[ambient.LabelDataplaneMode] == ambient.DataplaneAmbient
	inj := injectionOn(l)
	switch {
	case enrolled && (inj || np.Pods.Sidecar > 0):
		np.Mode = ModeMixed
	case enrolled:
		np.Mode = ModeAmbient
	case (inj || np.Pods.Sidecar > 0) && podLabelledAmbient > 0:
		np.Mode = ModeMixed
	case inj || np.Pods.Sidecar > 0:
		np.Mode = ModeSidecar
	case podLabelledAmbient > 0:
		np.Mode = ModeMixed
	default:
		np.Mode = ModeNone
	}

	// The exact label change.
	if !enrolled {
		np.Changes.Add = map[string]string{ambient.LabelDataplaneMode: ambient.DataplaneAmbient}
	}
	for _, k := range []string{ambient.LabelInjection, ambient.LabelRev} {
		if _, ok := l[k]; ok {
			np.Changes.Remove = append(np.Changes.Remove, k)
		}
	}

	// Istio objects.
	waypointSeen := false
	waypointName := ""
	for _, u := range res {
		switch u.GetKind() {
		case KindAuthorizationPolicy:
			if fields := authzL7Fields(u); len(fields) > 0 {
				ref := ResourceRef{Kind: KindAuthorizationPolicy, Name: u.GetName(),
					Reason: "HTTP rules (" + strings.Join(fields, ", ") + ") are enforced only by a waypoint"}
				np.L7 = append(np.L7, ref)
				if (hasSelector(u) || !hasTargetRefs(u)) && !opts.Waypoint && !hasWaypoint(res) {
					np.Warnings = append(np.Warnings, fmt.Sprintf("AuthorizationPolicy %s selects workloads and has HTTP rules: ztunnel cannot enforce them and turns it into DENY-all for those workloads; move it to a waypoint (targetRefs) before enrolling", u.GetName()))
				}
			}
		case KindVirtualService:
			if vsAppliesToMesh(u) {
				np.L7 = append(np.L7, ResourceRef{Kind: KindVirtualService, Name: u.GetName(), Reason: "HTTP routing inside the mesh needs a waypoint"})
			}
		case KindDestinationRule:
			if subs, _, _ := unstructured.NestedSlice(u.Object, "spec", "subsets"); len(subs) > 0 {
				np.L7 = append(np.L7, ResourceRef{Kind: KindDestinationRule, Name: u.GetName(), Reason: fmt.Sprintf("%d subset(s) are honoured only by a waypoint", len(subs))})
			}
		case KindEnvoyFilter:
			np.Blockers = append(np.Blockers, ResourceRef{Kind: KindEnvoyFilter, Name: u.GetName(), Reason: "EnvoyFilter patches sidecar Envoy configuration; ztunnel has no Envoy"})
		case KindSidecar:
			np.Blockers = append(np.Blockers, ResourceRef{Kind: KindSidecar, Name: u.GetName(), Reason: "the Sidecar resource configures sidecars only; it has no ambient equivalent"})
		case KindPeerAuthentication:
			switch peerAuthMode(u) {
			case "STRICT":
				np.strict = true
			case "DISABLE":
				np.Blockers = append(np.Blockers, ResourceRef{Kind: KindPeerAuthentication, Name: u.GetName(), Reason: "mTLS DISABLE does not carry over: ztunnel always uses mTLS between captured pods"})
			}
			if hasPortDisable(u) {
				np.Blockers = append(np.Blockers, ResourceRef{Kind: KindPeerAuthentication, Name: u.GetName(), Reason: "port-level mTLS DISABLE does not carry over to ambient"})
			}
		case KindGateway:
			if cls, _, _ := unstructured.NestedString(u.Object, "spec", "gatewayClassName"); cls == ambient.WaypointClass {
				if !waypointSeen || u.GetName() == opts.WaypointName {
					waypointName = u.GetName()
				}
				waypointSeen = true
			}
		}
	}
	np.WaypointPresent = waypointSeen
	np.Waypoint = waypointName
	if opts.Waypoint && !waypointSeen {
		np.WaypointCreate = opts.WaypointName
		np.Waypoint = opts.WaypointName
	}
	if len(np.L7) > 0 && !waypointSeen && !opts.Waypoint {
		np.Warnings = append(np.Warnings, fmt.Sprintf("%d L7 resource(s) need a waypoint and none exists; pass --waypoint to create one", len(np.L7)))
	}
	if !installed[KindAuthorizationPolicy] && !installed[KindPeerAuthentication] {
		np.Warnings = append(np.Warnings, "Istio CRDs are not installed: L7 resources and blockers were not checked")
	}
	if np.Pods.Capture > 0 && !enrolled {
		np.Warnings = append(np.Warnings, fmt.Sprintf("%d running pod(s) will be captured in place: their established long-lived connections are reset", np.Pods.Capture))
	}
	if np.Pods.Sidecar > 0 {
		np.Warnings = append(np.Warnings, fmt.Sprintf("%d pod(s) keep their sidecar until their next rollout (use --restart-sidecars to restart those workloads now)", np.Pods.Sidecar))
	}
	if np.Pods.HostNetwork > 0 {
		np.Warnings = append(np.Warnings, fmt.Sprintf("%d hostNetwork pod(s) are never captured", np.Pods.HostNetwork))
	}

	switch {
	case np.Changes.Empty() && np.WaypointCreate == "":
		np.Action = ActionNone
	default:
		np.Action = ActionEnroll
	}
	return np
}

func hasSelector(u *unstructured.Unstructured) bool {
	m, ok, _ := unstructured.NestedMap(u.Object, "spec", "selector")
	return ok && len(m) > 0
}

func hasTargetRefs(u *unstructured.Unstructured) bool {
	if s, ok, _ := unstructured.NestedSlice(u.Object, "spec", "targetRefs"); ok && len(s) > 0 {
		return true
	}
	m, ok, _ := unstructured.NestedMap(u.Object, "spec", "targetRef")
	return ok && len(m) > 0
}

func peerAuthMode(u *unstructured.Unstructured) string {
	m, _, _ := unstructured.NestedString(u.Object, "spec", "mtls", "mode")
	return strings.ToUpper(m)
}

func hasPortDisable(u *unstructured.Unstructured) bool {
	ports, _, _ := unstructured.NestedMap(u.Object, "spec", "portLevelMtls")
	for _, v := range ports {
		if m, ok := v.(map[string]any); ok {
			if s, _ := m["mode"].(string); strings.EqualFold(s, "DISABLE") {
				return true
			}
		}
	}
	return false
}

// authzL7Fields lists the HTTP-only fields an AuthorizationPolicy uses.
func authzL7Fields(u *unstructured.Unstructured) []string {
	rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
	set := map[string]bool{}
	for _, r := range rules {
		rm, ok := r.(map[string]any)
		if !ok {
			continue
		}
		for _, to := range asSlice(rm["to"]) {
			op, _ := asMap(to)["operation"].(map[string]any)
			for _, f := range []string{"methods", "notMethods", "paths", "notPaths", "hosts", "notHosts"} {
				if len(asSlice(op[f])) > 0 {
					set["to."+f] = true
				}
			}
		}
		for _, from := range asSlice(rm["from"]) {
			src, _ := asMap(from)["source"].(map[string]any)
			for _, f := range []string{"requestPrincipals", "notRequestPrincipals"} {
				if len(asSlice(src[f])) > 0 {
					set["from."+f] = true
				}
			}
		}
		for _, w := range asSlice(rm["when"]) {
			if k, _ := asMap(w)["key"].(string); strings.HasPrefix(k, "request.") {
				set["when."+k] = true
			}
		}
	}
	return sortedKeys(set)
}

// vsAppliesToMesh: a VirtualService with no gateways, or listing "mesh",
// routes in-mesh traffic.
func vsAppliesToMesh(u *unstructured.Unstructured) bool {
	gws, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "gateways")
	return len(gws) == 0 || slices.Contains(gws, "mesh")
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func listShort(items []string, limit int) string {
	if len(items) <= limit {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:limit], ", "), len(items)-limit)
}
