package meshchecks

import (
	"context"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/checker"
	wp "github.com/kubectl-ambient/kubectl-ambient/pkg/waypoint"
)

// GVRServiceEntry is where istiod writes WaypointBound on ServiceEntries.
var GVRServiceEntry = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}

// waypointChecks are the waypoint checks that guard against failing open:
// use-waypoint labels that name no waypoint, and waypoint-targeted policies
// in namespaces without one.
func waypointChecks(c *Cluster) []checker.Check {
	return []checker.Check{
		{
			ID: "waypoint-labels", Category: CategoryWaypoints,
			Description: "every istio.io/use-waypoint label names an existing waypoint",
			Hint:        "traffic of these objects skips L7 policy: create the waypoint (kubectl ambient waypoint apply -n <ns> <name>) or fix the label",
			Run:         func(ctx context.Context) error { return danglingWaypointLabels(ctx, c) },
		},
		{
			ID: "waypoint-policies", Category: CategoryWaypoints,
			Description: "policies that target a waypoint have one in their namespace",
			Hint:        "an AuthorizationPolicy with targetRefs to a Gateway or Service is enforced only by a waypoint: deploy one (kubectl ambient waypoint apply) and label the namespace, or the policy is not enforced",
			Run:         func(ctx context.Context) error { return policiesWithoutWaypoint(ctx, c) },
		},
	}
}

func danglingWaypointLabels(ctx context.Context, c *Cluster) error {
	gws, found, err := c.listDynamic(ctx, GVRGateway, "")
	if err != nil {
		return err
	}
	if !found {
		return skipf("Gateway API CRDs not installed")
	}
	inv := &wp.Inventory{Gateways: gws}
	if inv.Namespaces, err = c.Namespaces(ctx); err != nil {
		return err
	}
	svcs, err := c.Kube.CoreV1().Services(c.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list services: %w", err)
	}
	inv.Services = svcs.Items
	if inv.ServiceEntries, inv.ServiceEntriesServed, err = c.listDynamic(ctx, GVRServiceEntry, c.Namespace); err != nil {
		return err
	}
	req, _ := labels.NewRequirement(ambient.LabelUseWaypoint, selection.Exists, nil)
	pods, err := c.Kube.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.NewSelector().Add(*req).String()})
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	inv.Pods = pods.Items
	rep := wp.BuildReport(inv)
	var bad []string
	for _, d := range rep.Dangling {
		if c.Namespace != "" && d.Namespace != c.Namespace && (d.Kind != "Namespace" || d.Name != c.Namespace) {
			continue
		}
		who := d.Namespace + "/" + d.Name
		if d.Kind == "Namespace" {
			who = d.Name
		}
		bad = append(bad, fmt.Sprintf("%s %s -> %s", d.Kind, who, d.Waypoint))
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d use-waypoint label(s) name no waypoint: %s", len(bad), names(bad))
	}
	users := 0
	for i := range rep.Waypoints {
		users += rep.Waypoints[i].Users()
	}
	if users == 0 {
		return skipf("nothing uses a waypoint")
	}
	return infof("%d object(s) use a waypoint", users)
}

func policiesWithoutWaypoint(ctx context.Context, c *Cluster) error {
	pols, found, err := c.listDynamic(ctx, GVRAuthorizationPolicy, c.Namespace)
	if err != nil {
		return err
	}
	if !found {
		return skipf("Istio security CRDs not installed")
	}
	gws, _, err := c.listDynamic(ctx, GVRGateway, c.Namespace)
	if err != nil {
		return err
	}
	has := map[string]bool{}
	for i := range gws {
		if wp.IsWaypoint(&gws[i]) {
			has[gws[i].GetNamespace()] = true
		}
	}
	var bad []string
	for _, p := range pols {
		if has[p.GetNamespace()] {
			continue
		}
		if kinds := waypointTargets(&p); len(kinds) > 0 {
			bad = append(bad, fmt.Sprintf("%s/%s targets %s", p.GetNamespace(), p.GetName(), strings.Join(kinds, ", ")))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("%d AuthorizationPolicy(ies) target a waypoint in a namespace without one, so nothing enforces them: %s", len(bad), names(bad))
	}
	return nil
}

// waypointTargets lists the targetRefs a waypoint enforces (Gateway,
// Service, ServiceEntry); GatewayClass targets are ingress policy.
func waypointTargets(u *unstructured.Unstructured) []string {
	refs, _, _ := unstructured.NestedSlice(u.Object, "spec", "targetRefs")
	if m, ok, _ := unstructured.NestedMap(u.Object, "spec", "targetRef"); ok {
		refs = append(refs, m)
	}
	var out []string
	for _, r := range refs {
		m, _ := r.(map[string]any)
		k, _ := m["kind"].(string)
		n, _ := m["name"].(string)
		if k == "Service" || k == "ServiceEntry" || k == "Gateway" {
			out = append(out, k+"/"+n)
		}
	}
	return out
}
