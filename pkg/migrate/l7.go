package migrate

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// AnnotationCopiedFrom names, on a waypoint-targeted AuthorizationPolicy
// this tool wrote, the selector-based policy it was copied from.
const AnnotationCopiedFrom = "kubectl-ambient.io/copied-from"

// CopySuffix is appended to an original policy's name to name its copy.
const CopySuffix = "-waypoint"

// PolicyMove is one selector-based L7 AuthorizationPolicy moved to the
// waypoint: the original (kept whole, for unenroll) and its copy.
type PolicyMove struct {
	Original string `json:"original"`
	Copy     string `json:"copy"`
	// Target says what the copy's targetRefs name: "Gateway/<waypoint>" or
	// "Service/<a>,<b>".
	Target string `json:"target"`
	// OriginalObject is the original as read (metadata trimmed to what a
	// re-create needs); CopyObject is the policy to create.
	OriginalObject map[string]any `json:"originalObject,omitempty"`
	CopyObject     map[string]any `json:"copyObject,omitempty"`
}

// Refusals: fields whose meaning at a waypoint differs from a sidecar's,
// so a copy would not enforce the same policy.
var (
	refusedSourceFields = []string{"ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"}
	refusedWhenPrefixes = []string{"source.ip", "remote.ip", "destination.ip", "connection.sni", "experimental."}
)

// convertPolicy turns one selector-based (or namespace-wide) L7
// AuthorizationPolicy into a waypoint-targeted copy with the same rules.
// A namespace-wide original targets the waypoint Gateway; a selector-based
// one targets the Services that front exactly the pods it selects. It
// returns a blocker reason naming the field when no faithful copy exists.
func convertPolicy(u *unstructured.Unstructured, pods []*corev1.Pod, svcs []*corev1.Service, waypoint string, taken map[string]bool) (*PolicyMove, string) {
	spec, _, _ := unstructured.NestedMap(u.Object, "spec")
	action, _ := spec["action"].(string)
	switch strings.ToUpper(action) {
	case "", "ALLOW", "DENY":
	default:
		return nil, fmt.Sprintf("spec.action %s: a waypoint copy would need the provider configured for the waypoint; move it by hand", action)
	}
	if _, ok := spec["provider"]; ok {
		return nil, "spec.provider: an extension provider is configured per proxy; move it by hand"
	}
	for i, r := range asSlice(spec["rules"]) {
		rm := asMap(r)
		for j, from := range asSlice(rm["from"]) {
			src := asMap(asMap(from)["source"])
			for _, f := range refusedSourceFields {
				if _, ok := src[f]; ok {
					return nil, fmt.Sprintf("spec.rules[%d].from[%d].source.%s: a waypoint sees the client through HBONE, not as the sidecar did", i, j, f)
				}
			}
		}
		for j, w := range asSlice(rm["when"]) {
			k, _ := asMap(w)["key"].(string)
			for _, p := range refusedWhenPrefixes {
				if strings.HasPrefix(k, p) {
					return nil, fmt.Sprintf("spec.rules[%d].when[%d].key %s: the condition means something else at a waypoint", i, j, k)
				}
			}
		}
	}
	copyName := u.GetName() + CopySuffix
	if taken[copyName] {
		return nil, fmt.Sprintf("metadata.name: the copy's name %s is taken by a policy this tool did not write; rename one", copyName)
	}
	var refs []any
	target := ""
	sel, hasSel, _ := unstructured.NestedMap(u.Object, "spec", "selector")
	if !hasSel || len(sel) == 0 {
		refs = []any{map[string]any{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": waypoint}}
		target = "Gateway/" + waypoint
	} else {
		ml, _, _ := unstructured.NestedStringMap(u.Object, "spec", "selector", "matchLabels")
		if len(ml) == 0 {
			return nil, "spec.selector: only matchLabels can be mapped to Services"
		}
		ps := labels.SelectorFromSet(ml)
		selected := map[string]bool{}
		for _, p := range pods {
			if ps.Matches(labels.Set(p.Labels)) {
				selected[p.Name] = true
			}
		}
		if len(selected) == 0 {
			return nil, "spec.selector: it selects no running pod, so no Service can stand for it; delete it or start its workload first"
		}
		covered := map[string]bool{}
		var names []string
		for _, s := range svcs {
			if len(s.Spec.Selector) == 0 {
				continue
			}
			ss := labels.SelectorFromSet(s.Spec.Selector)
			var in, out int
			for _, p := range pods {
				if !ss.Matches(labels.Set(p.Labels)) {
					continue
				}
				if selected[p.Name] {
					in++
					covered[p.Name] = true
				} else {
					out++
				}
			}
			if in == 0 {
				continue
			}
			if out > 0 {
				return nil, fmt.Sprintf("spec.selector: Service %s also fronts %d pod(s) the policy does not select; a copy on the Service would widen it", s.Name, out)
			}
			if hasPortRule(spec) && portsRemapped(s) {
				return nil, fmt.Sprintf("spec.rules[].to.operation.ports: Service %s maps ports to other target ports; the sidecar matched target ports, a waypoint matches Service ports", s.Name)
			}
			names = append(names, s.Name)
		}
		for p := range selected {
			if !covered[p] {
				return nil, fmt.Sprintf("spec.selector: pod %s is behind no Service; a waypoint only sees traffic addressed to a Service", p)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			refs = append(refs, map[string]any{"group": "", "kind": "Service", "name": n})
		}
		target = "Service/" + strings.Join(names, ",")
	}
	cspec := map[string]any{}
	for k, v := range spec {
		if k != "selector" {
			cspec[k] = v
		}
	}
	cspec["targetRefs"] = refs
	lbl := map[string]any{LabelManagedBy: ManagedByValue}
	for k, v := range u.GetLabels() {
		lbl[k] = v
	}
	cp := map[string]any{
		"apiVersion": u.GetAPIVersion(),
		"kind":       KindAuthorizationPolicy,
		"metadata": map[string]any{
			"name": copyName, "namespace": u.GetNamespace(), "labels": lbl,
			"annotations": map[string]any{AnnotationCopiedFrom: u.GetName()},
		},
		"spec": cspec,
	}
	return &PolicyMove{Original: u.GetName(), Copy: copyName, Target: target, OriginalObject: trimForRestore(u), CopyObject: cp}, ""
}

func hasPortRule(spec map[string]any) bool {
	for _, r := range asSlice(spec["rules"]) {
		for _, to := range asSlice(asMap(r)["to"]) {
			op := asMap(asMap(to)["operation"])
			if len(asSlice(op["ports"])) > 0 || len(asSlice(op["notPorts"])) > 0 {
				return true
			}
		}
		for _, w := range asSlice(asMap(r)["when"]) {
			if k, _ := asMap(w)["key"].(string); k == "destination.port" {
				return true
			}
		}
	}
	return false
}

func portsRemapped(s *corev1.Service) bool {
	return slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool {
		tp := p.TargetPort
		if tp.StrVal != "" {
			return true // a named port: the container port cannot be checked here
		}
		return tp.IntVal != 0 && tp.IntVal != p.Port
	})
}

// trimForRestore keeps what re-creating the object needs: apiVersion, kind,
// name, namespace, labels, annotations and spec.
func trimForRestore(u *unstructured.Unstructured) map[string]any {
	md := map[string]any{"name": u.GetName(), "namespace": u.GetNamespace()}
	if l := u.GetLabels(); len(l) > 0 {
		m := map[string]any{}
		for k, v := range l {
			m[k] = v
		}
		md["labels"] = m
	}
	if a := u.GetAnnotations(); len(a) > 0 {
		m := map[string]any{}
		for k, v := range a {
			m[k] = v
		}
		md["annotations"] = m
	}
	out := map[string]any{"apiVersion": u.GetAPIVersion(), "kind": u.GetKind(), "metadata": md}
	if s, ok := u.Object["spec"]; ok {
		out["spec"] = runtimeDeepCopy(s)
	}
	return out
}

func runtimeDeepCopy(v any) any {
	return (&unstructured.Unstructured{Object: map[string]any{"v": v}}).DeepCopy().Object["v"]
}

func hasWaypoint(res []*unstructured.Unstructured) bool {
	for _, u := range res {
		if u.GetKind() == KindGateway {
			if cls, _, _ := unstructured.NestedString(u.Object, "spec", "gatewayClassName"); cls == ambient.WaypointClass {
				return true
			}
		}
	}
	return false
}

// planL7 adds the waypoint half of the plan: which selector-based L7
// AuthorizationPolicies move to the waypoint (or block, naming the field),
// the fail-open gates, and the warnings Istio's migration guide gives.
func planL7(np *nsPlan, pods []*corev1.Pod, svcs []*corev1.Service, res []*unstructured.Unstructured, injected []string, opts PlanOptions) {
	taken := map[string]bool{}
	for _, u := range res {
		if u.GetKind() == KindAuthorizationPolicy && u.GetAnnotations()[AnnotationCopiedFrom] == "" {
			taken[u.GetName()] = true
		}
	}
	var live []*corev1.Pod
	for _, p := range pods {
		if classify(p) != classSkip {
			live = append(live, p)
		}
	}
	for _, u := range res {
		switch u.GetKind() {
		case KindAuthorizationPolicy:
			if u.GetAnnotations()[AnnotationCopiedFrom] != "" {
				continue // our own copy from an earlier run
			}
			if hasTargetRefs(u) {
				if np.Waypoint == "" && targetsWaypoint(u) {
					np.Blockers = append(np.Blockers, ResourceRef{Kind: KindAuthorizationPolicy, Name: u.GetName(),
						Reason: "targets a waypoint (targetRefs) but the namespace has none: its rules would not be enforced (fails open); pass --waypoint"})
				}
				continue
			}
			if len(authzL7Fields(u)) == 0 || np.Waypoint == "" {
				continue
			}
			mv, why := convertPolicy(u, live, svcs, np.Waypoint, taken)
			if why != "" {
				np.Blockers = append(np.Blockers, ResourceRef{Kind: KindAuthorizationPolicy, Name: u.GetName(), Reason: "cannot be moved to the waypoint faithfully: " + why})
				continue
			}
			np.Moves = append(np.Moves, *mv)
		case KindDestinationRule:
			if subs, _, _ := unstructured.NestedSlice(u.Object, "spec", "subsets"); len(subs) > 0 && np.Waypoint != "" {
				np.Warnings = append(np.Warnings, fmt.Sprintf("DestinationRule %s has subsets: behind a waypoint give each version its own Service (Istio's migration guide)", u.GetName()))
			}
		case KindVirtualService:
			if vsAppliesToMesh(u) && np.Waypoint != "" {
				np.Warnings = append(np.Warnings, fmt.Sprintf("VirtualService %s: VirtualService on waypoints is alpha, and a VirtualService and an HTTPRoute for one workload is undefined", u.GetName()))
			}
		}
	}
	if len(np.Moves) > 0 || np.WaypointCreate != "" {
		var others []string
		for _, n := range injected {
			if n != np.Name {
				others = append(others, n)
			}
		}
		if len(others) > 0 {
			np.Warnings = append(np.Warnings, fmt.Sprintf("sidecar clients in namespaces still injected (%s) bypass this namespace's waypoint: its L7 policy is not enforced on their requests until they move to ambient", listShort(others, 5)))
		}
	}
	if len(np.Moves) > 0 && np.Action == ActionNone {
		np.Action = ActionEnroll
	}
}

// targetsWaypoint: targetRefs naming a Gateway or a Service are enforced by
// a waypoint.
func targetsWaypoint(u *unstructured.Unstructured) bool {
	refs, _, _ := unstructured.NestedSlice(u.Object, "spec", "targetRefs")
	if m, ok, _ := unstructured.NestedMap(u.Object, "spec", "targetRef"); ok {
		refs = append(refs, m)
	}
	for _, r := range refs {
		if k, _ := asMap(r)["kind"].(string); k == "Gateway" || k == "Service" || k == "ServiceEntry" {
			return true
		}
	}
	return false
}

// L7Steps lists, in order, what enrolling this namespace does when it moves
// L7 policies (Istio's documented migration order), for --dry-run and the
// plan; each step is journaled on the namespace before it is taken.
func (n *NamespacePlan) L7Steps(verify, restart bool) []string {
	if len(n.Moves) == 0 {
		return nil
	}
	var s []string
	if n.WaypointCreate != "" {
		s = append(s, fmt.Sprintf("create waypoint Gateway %s (class %s, HBONE 15008) and wait until Programmed", n.WaypointCreate, ambient.WaypointClass))
	} else {
		s = append(s, fmt.Sprintf("wait until waypoint %s is Programmed", n.Waypoint))
	}
	for _, m := range n.Moves {
		s = append(s, fmt.Sprintf("create AuthorizationPolicy %s (copy of %s, targetRefs %s)", m.Copy, m.Original, m.Target))
	}
	s = append(s, fmt.Sprintf("label namespace %s=%s (only once the waypoint is Programmed)", ambient.LabelUseWaypoint, n.Waypoint))
	s = append(s, "label namespace "+n.Changes.String())
	if verify {
		s = append(s, "verify istio-cni captured the pods")
	}
	if restart {
		s = append(s, "restart sidecar workloads and verify again")
	}
	var orig []string
	for _, m := range n.Moves {
		orig = append(orig, m.Original)
	}
	s = append(s, "delete the selector-based originals "+strings.Join(orig, ", ")+" (kept whole in the journal for unenroll)")
	return s
}
