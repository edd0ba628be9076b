package migrate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// UnenrollConfig is one unenroll run.
type UnenrollConfig struct {
	Selection UnenrollSelection
	// Workers bounds concurrent namespace patches.
	Workers int
	// DryRun has the API server validate each patch and store nothing.
	DryRun bool
	// Timeout bounds the wait for a waypoint a restored
	// istio.io/use-waypoint label names to be Programmed.
	Timeout time.Duration
}

// UnenrollReport is the outcome of UnenrollNamespaces.
type UnenrollReport struct {
	// Namespaces are the ones the selection picked (empty: nothing to do).
	Namespaces []string `json:"-"`
	Results    []Result `json:"results"`
}

// UnenrollNamespaces lists the namespaces, picks the ones to unenroll
// (PlanUnenroll), checks permissions, then restores each (Unenroll). An
// empty selection result is not an error: the report names no namespace.
func UnenrollNamespaces(ctx context.Context, c *kube.Clients, cfg UnenrollConfig) (*UnenrollReport, error) {
	list, err := c.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, kube.Unreachable(c.Config.Host, fmt.Errorf("list namespaces: %w", err))
	}
	infos := make([]NamespaceInfo, len(list.Items))
	for i, n := range list.Items {
		infos[i] = NamespaceInfo{Name: n.Name, Labels: n.Labels, Annotations: n.Annotations}
	}
	names, err := PlanUnenroll(infos, cfg.Selection)
	if err != nil {
		return nil, err
	}
	rep := &UnenrollReport{Namespaces: names}
	if len(names) == 0 {
		return rep, nil
	}
	opts := UnenrollOptions{Workers: cfg.Workers, GatewayGVR: GatewayGVR(c.Discovery), PolicyGVR: policyGVR(c.Discovery),
		DryRun: cfg.DryRun, WaypointTimeout: cfg.Timeout}
	chosen := make([]NamespaceInfo, 0, len(names))
	for _, n := range infos {
		if slices.Contains(names, n.Name) {
			chosen = append(chosen, n)
		}
	}
	if err := CheckAccess(ctx, c.Kube, UnenrollAccess(chosen, opts.GatewayGVR, opts.PolicyGVR)); err != nil {
		return nil, err
	}
	rep.Results, err = Unenroll(ctx, c.Kube, c.Dynamic, names, opts)
	return rep, err
}

// UnenrollAccess lists the permissions unenrolling these namespaces needs,
// from their journals: every read and write a step of
// PlanNamespaceUnenroll may take, so a missing right stops the run before
// the first write.
func UnenrollAccess(namespaces []NamespaceInfo, gateway, policy schema.GroupVersionResource) []Access {
	need := []Access{{Verb: "get", Resource: "namespaces"}, {Verb: "patch", Resource: "namespaces"}}
	for _, n := range namespaces {
		j, has, err := ReadJournal(n.Annotations)
		if err != nil || !has {
			continue
		}
		if len(j.Moves) > 0 && policy.Resource != "" {
			for _, v := range []string{"get", "create", "delete"} {
				need = append(need, Access{Verb: v, Group: policy.Group, Resource: policy.Resource, Namespace: n.Name})
			}
		}
		if j.OriginalsConfigMap != "" {
			for _, v := range []string{"get", "delete"} {
				need = append(need, Access{Verb: v, Resource: "configmaps", Namespace: n.Name})
			}
		}
		if gateway.Resource == "" {
			continue
		}
		if j.Waypoint != "" {
			for _, v := range []string{"get", "delete"} {
				need = append(need, Access{Verb: v, Group: gateway.Group, Resource: gateway.Resource, Namespace: n.Name})
			}
		}
		if restoredWaypoint(j, n.Labels) != "" {
			for _, v := range []string{"get", "list", "watch"} {
				need = append(need, Access{Verb: v, Group: gateway.Group, Resource: gateway.Resource, Namespace: n.Name})
			}
		}
	}
	return need
}

// GatewayGVR finds the served Gateway API version's gateways resource, or
// returns the zero value when the API is not served (or discovery fails).
func GatewayGVR(disc discovery.DiscoveryInterface) schema.GroupVersionResource {
	if disc == nil {
		return schema.GroupVersionResource{}
	}
	groups, err := disc.ServerGroups()
	if err != nil {
		return schema.GroupVersionResource{}
	}
	for _, g := range groups.Groups {
		if g.Name == "gateway.networking.k8s.io" {
			if gv, err := schema.ParseGroupVersion(g.PreferredVersion.GroupVersion); err == nil {
				return gv.WithResource("gateways")
			}
		}
	}
	return schema.GroupVersionResource{}
}

// UnenrollSelection says which namespaces to unenroll; the ways combine (union).
type UnenrollSelection struct {
	Names []string
	// Selector is a label selector over namespaces; nil selects nothing.
	Selector labels.Selector
	// All selects every namespace that is enrolled or carries a journal.
	All bool
}

// PlanUnenroll picks the namespaces to unenroll from the cluster's
// namespaces: the named ones first (in order, each once), then those the
// selector or All match. A named namespace that does not exist is an
// ErrNotFound error naming every one missing.
func PlanUnenroll(namespaces []NamespaceInfo, sel UnenrollSelection) ([]string, error) {
	exists := make(map[string]bool, len(namespaces))
	for _, n := range namespaces {
		exists[n.Name] = true
	}
	chosen := map[string]bool{}
	var names, missing []string
	for _, n := range sel.Names {
		if !exists[n] {
			missing = append(missing, n)
			continue
		}
		if !chosen[n] {
			chosen[n] = true
			names = append(names, n)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("unenroll namespace %s: %w; list namespaces with kubectl get ns", strings.Join(missing, ", "), ErrNotFound)
	}
	for _, n := range namespaces {
		_, journal := n.Annotations[AnnotationJournal]
		enrolled := n.Labels[ambient.LabelDataplaneMode] == ambient.DataplaneAmbient
		match := (sel.Selector != nil && sel.Selector.Matches(labels.Set(n.Labels))) || (sel.All && (journal || enrolled))
		if match && !chosen[n.Name] {
			chosen[n.Name] = true
			names = append(names, n.Name)
		}
	}
	return names, nil
}

// NamespaceInfo is what PlanUnenroll reads of a namespace.
type NamespaceInfo struct {
	Name        string
	Labels      map[string]string
	Annotations map[string]string
}

// policyGVR finds the served AuthorizationPolicy resource, or the zero value.
func policyGVR(disc discovery.DiscoveryInterface) schema.GroupVersionResource {
	if disc == nil {
		return schema.GroupVersionResource{}
	}
	gvrs, err := servedResources(disc)
	if err != nil {
		return schema.GroupVersionResource{}
	}
	return gvrs[KindAuthorizationPolicy]
}
