package waypoint

import (
	"context"
	"fmt"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// Inventory is one read of everything a waypoint report needs.
type Inventory struct {
	Gateways       []unstructured.Unstructured
	Namespaces     []corev1.Namespace
	Services       []corev1.Service
	ServiceEntries []unstructured.Unstructured
	// Pods are only those carrying istio.io/use-waypoint themselves.
	Pods []corev1.Pod
	// ServiceEntriesServed is false when the cluster has no ServiceEntry CRD.
	ServiceEntriesServed bool
}

// ReadInventory lists Gateways, namespaces, Services, ServiceEntries and
// labelled pods in all namespaces, one LIST each, concurrently.
func ReadInventory(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, g GVRs) (*Inventory, error) {
	inv := &Inventory{ServiceEntriesServed: g.ServiceEntry.Resource != ""}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
	listDyn := func(gvr fmt.Stringer, ri dynamic.NamespaceableResourceInterface, out *[]unstructured.Unstructured) {
		l, err := ri.Namespace("").List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		if err != nil {
			fail(fmt.Errorf("list %s in all namespaces: %w", gvr, err))
			return
		}
		*out = l.Items
	}
	if g.Gateway.Resource != "" {
		wg.Go(func() { listDyn(g.Gateway, dc.Resource(g.Gateway), &inv.Gateways) })
	}
	if g.ServiceEntry.Resource != "" {
		wg.Go(func() { listDyn(g.ServiceEntry, dc.Resource(g.ServiceEntry), &inv.ServiceEntries) })
	}
	wg.Go(func() {
		l, err := kc.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			fail(fmt.Errorf("list namespaces: %w", err))
			return
		}
		inv.Namespaces = l.Items
	})
	wg.Go(func() {
		l, err := kc.CoreV1().Services("").List(ctx, metav1.ListOptions{})
		if err != nil {
			fail(fmt.Errorf("list services in all namespaces: %w", err))
			return
		}
		inv.Services = l.Items
	})
	wg.Go(func() {
		req, _ := labels.NewRequirement(ambient.LabelUseWaypoint, selection.Exists, nil)
		l, err := kc.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: labels.NewSelector().Add(*req).String()})
		if err != nil {
			fail(fmt.Errorf("list pods labelled %s: %w", ambient.LabelUseWaypoint, err))
			return
		}
		inv.Pods = l.Items
	})
	wg.Wait()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return inv, nil
}

// Binding is one object that uses (or points at) a waypoint.
type Binding struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Waypoint is namespace/name of the waypoint it points at.
	Waypoint string `json:"waypoint"`
	// Bound is the istio.io/WaypointBound condition's status (Services and
	// ServiceEntries only): True, False, or Unknown when istiod wrote none.
	Bound   string `json:"bound,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// Info is one waypoint and what uses it.
type Info struct {
	Namespace  string   `json:"namespace"`
	Name       string   `json:"name"`
	For        string   `json:"for"`
	Programmed string   `json:"programmed"`
	Reason     string   `json:"reason,omitempty"`
	Message    string   `json:"message,omitempty"`
	Addresses  []string `json:"addresses,omitempty"`
	// Ours is true when kubectl-ambient created it.
	Ours           bool      `json:"ours"`
	Namespaces     []string  `json:"namespaces,omitempty"`
	Services       []Binding `json:"services,omitempty"`
	ServiceEntries []Binding `json:"serviceEntries,omitempty"`
	Workloads      []Binding `json:"workloads,omitempty"`
}

// Report lists waypoints and the use-waypoint labels that point at none.
type Report struct {
	Waypoints []Info `json:"waypoints"`
	// Dangling are objects whose istio.io/use-waypoint names no waypoint:
	// their traffic skips L7 policy (fails open).
	Dangling []Binding `json:"dangling,omitempty"`
	// ServiceEntriesServed is false when ServiceEntries could not be checked.
	ServiceEntriesServed bool `json:"serviceEntriesChecked"`
}

// ListConfig selects what List reports.
type ListConfig struct {
	// Namespace limits the report to waypoints in it; empty means all.
	Namespace string
	// Name limits the report to one waypoint (status).
	Name string
}

// List reads the cluster once and reports every waypoint (or the selected
// one) with what uses it.
func List(ctx context.Context, c *kube.Clients, cfg ListConfig) (*Report, error) {
	g, err := Discover(c.Discovery)
	if err != nil {
		return nil, kube.Unreachable(c.Config.Host, err)
	}
	if g.Gateway.Resource == "" {
		return nil, fmt.Errorf("list waypoints: %w", ErrNoGatewayAPI)
	}
	inv, err := ReadInventory(ctx, c.Kube, c.Dynamic, g)
	if err != nil {
		return nil, kube.Unreachable(c.Config.Host, err)
	}
	rep := BuildReport(inv)
	if cfg.Namespace != "" || cfg.Name != "" {
		var keep []Info
		for _, w := range rep.Waypoints {
			if (cfg.Namespace == "" || w.Namespace == cfg.Namespace) && (cfg.Name == "" || w.Name == cfg.Name) {
				keep = append(keep, w)
			}
		}
		rep.Waypoints = keep
		var dang []Binding
		for _, d := range rep.Dangling {
			if cfg.Namespace == "" || d.Namespace == cfg.Namespace {
				dang = append(dang, d)
			}
		}
		rep.Dangling = dang
	}
	if cfg.Name != "" && len(rep.Waypoints) == 0 {
		return rep, fmt.Errorf("waypoint %s/%s: %w; list waypoints with kubectl ambient waypoint list -A", cfg.Namespace, cfg.Name, ErrNotFound)
	}
	return rep, nil
}

// ErrNotFound marks a waypoint that does not exist.
var ErrNotFound = fmt.Errorf("not found")

// target is the waypoint an object's labels point at, with the namespace's
// labels as the fallback; ok is false when none (or "none") is set.
func target(objNS string, own, nsLabels map[string]string) (key string, explicit, ok bool) {
	name, has := own[ambient.LabelUseWaypoint]
	src := own
	if !has {
		name, has = nsLabels[ambient.LabelUseWaypoint]
		src = nsLabels
	} else {
		explicit = true
	}
	if !has || name == "" || name == ambient.UseWaypointNone {
		return "", false, false
	}
	ns := objNS
	if v := src[ambient.LabelUseWaypointNamespace]; v != "" {
		ns = v
	}
	return ns + "/" + name, explicit, true
}

// boundCondition reads istio.io/WaypointBound from a condition list.
func boundCondition(conds []metav1.Condition) (status, reason, msg string) {
	for _, c := range conds {
		if c.Type == ambient.ConditionWaypointBound {
			return string(c.Status), c.Reason, c.Message
		}
	}
	return string(metav1.ConditionUnknown), "", "istiod has written no " + ambient.ConditionWaypointBound + " condition"
}

// BuildReport is the pure part of List: waypoints, their users, and
// dangling use-waypoint labels, sorted by namespace and name.
func BuildReport(inv *Inventory) *Report {
	rep := &Report{ServiceEntriesServed: inv.ServiceEntriesServed}
	idx := map[string]*Info{}
	for i := range inv.Gateways {
		u := &inv.Gateways[i]
		if !IsWaypoint(u) {
			continue
		}
		s, r, m := Programmed(u)
		info := Info{Namespace: u.GetNamespace(), Name: u.GetName(), For: u.GetLabels()[ambient.LabelWaypointFor],
			Programmed: string(s), Reason: r, Message: m, Ours: u.GetLabels()[LabelManagedBy] == ManagedByValue}
		if info.For == "" {
			info.For = "service" // istiod's default for a waypoint without the label
		}
		if gw, err := decode(u); err == nil {
			for _, a := range gw.Status.Addresses {
				info.Addresses = append(info.Addresses, a.Value)
			}
		}
		rep.Waypoints = append(rep.Waypoints, info)
	}
	sort.Slice(rep.Waypoints, func(i, j int) bool {
		a, b := rep.Waypoints[i], rep.Waypoints[j]
		return a.Namespace < b.Namespace || (a.Namespace == b.Namespace && a.Name < b.Name)
	})
	for i := range rep.Waypoints {
		w := &rep.Waypoints[i]
		idx[w.Namespace+"/"+w.Name] = w
	}
	nsLabels := map[string]map[string]string{}
	for _, ns := range inv.Namespaces {
		nsLabels[ns.Name] = ns.Labels
		if key, _, ok := target(ns.Name, ns.Labels, nil); ok {
			if w := idx[key]; w != nil {
				w.Namespaces = append(w.Namespaces, ns.Name)
			} else {
				rep.Dangling = append(rep.Dangling, Binding{Kind: "Namespace", Name: ns.Name, Waypoint: key})
			}
		}
	}
	add := func(kind string, b Binding, explicit bool, pick func(*Info) *[]Binding) {
		if w := idx[b.Waypoint]; w != nil {
			*pick(w) = append(*pick(w), b)
		} else if explicit {
			// Objects inheriting a dangling namespace label are already
			// reported through the namespace.
			rep.Dangling = append(rep.Dangling, b)
		}
	}
	for i := range inv.Services {
		s := &inv.Services[i]
		if s.Labels[gatewayv1.GatewayNameLabelKey] != "" {
			continue // a gateway's (or waypoint's) own Service: istiod never sends it through a waypoint
		}
		key, explicit, ok := target(s.Namespace, s.Labels, nsLabels[s.Namespace])
		if !ok {
			continue
		}
		st, r, m := boundCondition(s.Status.Conditions)
		add("Service", Binding{Kind: "Service", Namespace: s.Namespace, Name: s.Name, Waypoint: key, Bound: st, Reason: r, Message: m},
			explicit, func(w *Info) *[]Binding { return &w.Services })
	}
	for i := range inv.ServiceEntries {
		u := &inv.ServiceEntries[i]
		key, explicit, ok := target(u.GetNamespace(), u.GetLabels(), nsLabels[u.GetNamespace()])
		if !ok {
			continue
		}
		st, r, m := boundCondition(unstructuredConditions(u))
		add("ServiceEntry", Binding{Kind: "ServiceEntry", Namespace: u.GetNamespace(), Name: u.GetName(), Waypoint: key, Bound: st, Reason: r, Message: m},
			explicit, func(w *Info) *[]Binding { return &w.ServiceEntries })
	}
	for i := range inv.Pods {
		p := &inv.Pods[i]
		key, explicit, ok := target(p.Namespace, p.Labels, nil)
		if !ok {
			continue
		}
		add("Pod", Binding{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, Waypoint: key},
			explicit, func(w *Info) *[]Binding { return &w.Workloads })
	}
	for i := range rep.Waypoints {
		w := &rep.Waypoints[i]
		sort.Strings(w.Namespaces)
		sortBindings(w.Services)
		sortBindings(w.ServiceEntries)
		sortBindings(w.Workloads)
	}
	sortBindings(rep.Dangling)
	return rep
}

func sortBindings(b []Binding) {
	sort.Slice(b, func(i, j int) bool {
		if b[i].Namespace != b[j].Namespace {
			return b[i].Namespace < b[j].Namespace
		}
		if b[i].Kind != b[j].Kind {
			return b[i].Kind < b[j].Kind
		}
		return b[i].Name < b[j].Name
	})
}

func unstructuredConditions(u *unstructured.Unstructured) []metav1.Condition {
	raw, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	out := make([]metav1.Condition, 0, len(raw))
	for _, r := range raw {
		m, _ := r.(map[string]any)
		c := metav1.Condition{}
		c.Type, _ = m["type"].(string)
		s, _ := m["status"].(string)
		c.Status = metav1.ConditionStatus(s)
		c.Reason, _ = m["reason"].(string)
		c.Message, _ = m["message"].(string)
		out = append(out, c)
	}
	return out
}

// Users counts everything that uses w.
func (w *Info) Users() int {
	return len(w.Namespaces) + len(w.Services) + len(w.ServiceEntries) + len(w.Workloads)
}
