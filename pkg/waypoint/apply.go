package waypoint

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// ApplyConfig is one `waypoint apply`.
type ApplyConfig struct {
	Namespace string
	Name      string
	// For is the istio.io/waypoint-for value: service (default), workload, all or none.
	For string
	// Wait waits until the Gateway is Programmed, at most Timeout.
	Wait    bool
	Timeout time.Duration
	// DryRun has the API server validate the write and store nothing.
	DryRun bool
}

// Validate checks the config before any API call.
func (c *ApplyConfig) Validate() error {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.For == "" {
		c.For = "service"
	}
	if !slices.Contains(forValues, c.For) {
		return fmt.Errorf("waypoint-for %q is not one of %s", c.For, strings.Join(forValues, ", "))
	}
	return nil
}

// ApplyReport is what apply did.
type ApplyReport struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	For       string `json:"for"`
	// Action is created, updated, unchanged or, with DryRun, would create / would update.
	Action     string `json:"action"`
	Programmed string `json:"programmed"`
	Reason     string `json:"reason,omitempty"`
	Message    string `json:"message,omitempty"`
	// Waited is how long the wait for Programmed took.
	Waited  string                     `json:"waited,omitempty"`
	Gateway *unstructured.Unstructured `json:"gateway,omitempty"`
}

// ApplyAccess lists the permissions Apply needs in namespace.
func ApplyAccess(g GVRs, namespace string, wait bool) []kube.Permission {
	p := []kube.Permission{
		{Verb: "get", Group: g.Gateway.Group, Resource: g.Gateway.Resource, Namespace: namespace},
		{Verb: "create", Group: g.Gateway.Group, Resource: g.Gateway.Resource, Namespace: namespace},
		{Verb: "patch", Group: g.Gateway.Group, Resource: g.Gateway.Resource, Namespace: namespace},
	}
	if wait {
		p = append(p, kube.Permission{Verb: "list", Group: g.Gateway.Group, Resource: g.Gateway.Resource, Namespace: namespace},
			kube.Permission{Verb: "watch", Group: g.Gateway.Group, Resource: g.Gateway.Resource, Namespace: namespace})
	}
	return p
}

// Apply creates the waypoint Gateway, or brings an existing one's
// istio.io/waypoint-for label to cfg.For, then (with cfg.Wait) waits until
// istiod reports it Programmed. A Gateway of another class under the name
// is refused. The report comes back with the error when the wait fails.
func Apply(ctx context.Context, c *kube.Clients, cfg ApplyConfig) (*ApplyReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g, err := Discover(c.Discovery)
	if err != nil {
		return nil, kube.Unreachable(c.Config.Host, err)
	}
	if g.Gateway.Resource == "" {
		return nil, fmt.Errorf("apply waypoint %s/%s: %w", cfg.Namespace, cfg.Name, ErrNoGatewayAPI)
	}
	if !cfg.DryRun {
		if err := kube.Require(ctx, c.Kube, ApplyAccess(g, cfg.Namespace, cfg.Wait)); err != nil {
			return nil, fmt.Errorf("apply waypoint %s/%s: %w", cfg.Namespace, cfg.Name, err)
		}
	}
	rep, err := Ensure(ctx, c.Dynamic, g, cfg)
	if err != nil || !cfg.Wait || cfg.DryRun {
		return rep, err
	}
	start := time.Now()
	u, err := WaitProgrammed(ctx, c.Dynamic.Resource(g.Gateway).Namespace(cfg.Namespace), cfg.Namespace, cfg.Name, cfg.Timeout)
	rep.Waited = time.Since(start).Round(time.Millisecond).String()
	if u != nil {
		rep.Gateway = u
		s, r, m := Programmed(u)
		rep.Programmed, rep.Reason, rep.Message = string(s), r, m
	}
	return rep, err
}

// Ensure creates or updates the Gateway without waiting.
func Ensure(ctx context.Context, dc dynamic.Interface, g GVRs, cfg ApplyConfig) (*ApplyReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rep := &ApplyReport{Namespace: cfg.Namespace, Name: cfg.Name, For: cfg.For}
	ri := dc.Resource(g.Gateway).Namespace(cfg.Namespace)
	var dry []string
	if cfg.DryRun {
		dry = []string{metav1.DryRunAll}
	}
	want, err := Build(g.Gateway.GroupVersion(), cfg.Namespace, cfg.Name, cfg.For)
	if err != nil {
		return nil, err
	}
	cur, err := ri.Get(ctx, cfg.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		out, err := ri.Create(ctx, want, metav1.CreateOptions{FieldManager: ManagedByValue, DryRun: dry})
		if err != nil {
			return nil, fmt.Errorf("create waypoint Gateway %s/%s: %w", cfg.Namespace, cfg.Name, err)
		}
		rep.Action, rep.Gateway = "created", out
	case err != nil:
		return nil, fmt.Errorf("read Gateway %s/%s: %w", cfg.Namespace, cfg.Name, err)
	case !IsWaypoint(cur):
		return nil, fmt.Errorf("gateway %s/%s: %w: its class is not %s; pick another waypoint name", cfg.Namespace, cfg.Name, ErrNotWaypoint, ambient.WaypointClass)
	case cur.GetLabels()[ambient.LabelWaypointFor] != cfg.For:
		patch := fmt.Appendf(nil, `{"metadata":{"labels":{%q:%q}}}`, ambient.LabelWaypointFor, cfg.For)
		out, err := ri.Patch(ctx, cfg.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: ManagedByValue, DryRun: dry})
		if err != nil {
			return nil, fmt.Errorf("label waypoint Gateway %s/%s with %s=%s: %w", cfg.Namespace, cfg.Name, ambient.LabelWaypointFor, cfg.For, err)
		}
		rep.Action, rep.Gateway = "updated", out
	default:
		rep.Action, rep.Gateway = "unchanged", cur
	}
	if cfg.DryRun && rep.Action != "unchanged" {
		rep.Action = "would " + strings.TrimSuffix(rep.Action, "d")
	}
	s, r, m := Programmed(rep.Gateway)
	rep.Programmed, rep.Reason, rep.Message = string(s), r, m
	return rep, nil
}

// WaitProgrammed watches namespace/name (one LIST + WATCH on that name)
// until its Programmed condition is True for its current generation, at
// most timeout. It returns the last Gateway seen, also on error.
func WaitProgrammed(ctx context.Context, ri dynamic.ResourceInterface, namespace, name string, timeout time.Duration) (*unstructured.Unstructured, error) {
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return ri.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return ri.Watch(ctx, o)
		},
	}
	var last *unstructured.Unstructured
	_, err := watchtools.UntilWithSync(wctx, lw, &unstructured.Unstructured{}, nil, func(e watch.Event) (bool, error) {
		u, ok := e.Object.(*unstructured.Unstructured)
		if !ok {
			return false, nil
		}
		if e.Type == watch.Deleted {
			return false, fmt.Errorf("waypoint Gateway %s/%s was deleted while waiting for it", namespace, name)
		}
		last = u
		return IsProgrammed(u), nil
	})
	if err != nil {
		why := "no Programmed condition seen"
		if last != nil {
			s, r, m := Programmed(last)
			why = fmt.Sprintf("Programmed=%s %s: %s", s, r, m)
		}
		if ctx.Err() != nil {
			return last, fmt.Errorf("wait for waypoint %s/%s: %w", namespace, name, ctx.Err())
		}
		return last, fmt.Errorf("waypoint Gateway %s/%s: %w after %s (%s): %w; check that istiod runs with ambient enabled and supports class %s (kubectl get gateway -n %s %s -o yaml)",
			namespace, name, ErrNotProgrammed, timeout, why, err, ambient.WaypointClass, namespace, name)
	}
	return last, nil
}
