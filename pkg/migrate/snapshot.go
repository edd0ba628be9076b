package migrate

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// Kinds of Istio and Gateway API objects the planner reads.
const (
	KindAuthorizationPolicy = "AuthorizationPolicy"
	KindPeerAuthentication  = "PeerAuthentication"
	KindVirtualService      = "VirtualService"
	KindDestinationRule     = "DestinationRule"
	KindEnvoyFilter         = "EnvoyFilter"
	KindSidecar             = "Sidecar"
	KindGateway             = "Gateway"
)

// watchedResource is one kind the snapshot lists when its CRD is served.
type watchedResource struct {
	Group, Resource, Kind string
}

var watchedResources = []watchedResource{
	{"security.istio.io", "authorizationpolicies", KindAuthorizationPolicy},
	{"security.istio.io", "peerauthentications", KindPeerAuthentication},
	{"networking.istio.io", "virtualservices", KindVirtualService},
	{"networking.istio.io", "destinationrules", KindDestinationRule},
	{"networking.istio.io", "envoyfilters", KindEnvoyFilter},
	{"networking.istio.io", "sidecars", KindSidecar},
	{"gateway.networking.k8s.io", "gateways", KindGateway},
}

// Snapshot is one read of everything the planner needs. BuildPlan and
// BuildStatus only ever look at a Snapshot, so they are pure and fast.
type Snapshot struct {
	Namespaces []corev1.Namespace
	Pods       []corev1.Pod
	// Services are read so selector-based policies can be mapped to the
	// Services a waypoint enforces them on.
	Services []corev1.Service
	// Resources holds Istio and Gateway API objects by kind.
	Resources map[string][]unstructured.Unstructured
	// Installed says which kinds' CRDs are served (absent kinds could not be checked).
	Installed map[string]bool
	// GVR is the served group/version/resource per installed kind, for writes (waypoints).
	GVR map[string]schema.GroupVersionResource
}

// ReadSnapshot lists namespaces, pods and, through discovery and the dynamic
// client, the Istio and Gateway API objects whose CRDs exist: one LIST per
// kind, run concurrently.
func ReadSnapshot(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, disc discovery.DiscoveryInterface) (*Snapshot, error) {
	s := &Snapshot{
		Resources: map[string][]unstructured.Unstructured{},
		Installed: map[string]bool{},
		GVR:       map[string]schema.GroupVersionResource{},
	}
	if disc != nil && dc != nil {
		gvrs, err := servedResources(disc)
		if err != nil {
			return nil, err
		}
		s.GVR = gvrs
		for k := range gvrs {
			s.Installed[k] = true
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
	wg.Go(func() {
		l, err := kc.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			fail(fmt.Errorf("list namespaces: %w", err))
			return
		}
		s.Namespaces = l.Items
	})
	wg.Go(func() {
		l, err := kc.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			fail(fmt.Errorf("list pods in all namespaces: %w", err))
			return
		}
		s.Pods = l.Items
	})
	wg.Go(func() {
		l, err := kc.CoreV1().Services("").List(ctx, metav1.ListOptions{})
		if err != nil {
			fail(fmt.Errorf("list services in all namespaces: %w", err))
			return
		}
		s.Services = l.Items
	})
	for kind, gvr := range s.GVR {
		wg.Go(func() {
			l, err := dc.Resource(gvr).Namespace("").List(ctx, metav1.ListOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) {
					return // CRD removed between discovery and list
				}
				if apierrors.IsForbidden(err) {
					fail(fmt.Errorf("list %s in all namespaces: %w: %w; the plan must read every Istio policy to find blockers: ask for list permission", gvr.Resource+"."+gvr.Group, kube.ErrForbidden, err))
					return
				}
				fail(fmt.Errorf("list %s in all namespaces: %w", gvr.Resource+"."+gvr.Group, err))
				return
			}
			mu.Lock()
			s.Resources[kind] = l.Items
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return s, nil
}

// servedResources asks discovery which of the watched kinds are served. A
// kind is read at its group's preferred version when that version serves it
// (EnvoyFilter, for one, exists only in v1alpha3), else at the first that does.
func servedResources(disc discovery.DiscoveryInterface) (map[string]schema.GroupVersionResource, error) {
	groups, err := disc.ServerGroups()
	if err != nil {
		return nil, fmt.Errorf("discover API groups: %w", err)
	}
	versions := map[string][]string{}
	for _, g := range groups.Groups {
		vs := []string{g.PreferredVersion.GroupVersion}
		for _, v := range g.Versions {
			if v.GroupVersion != g.PreferredVersion.GroupVersion {
				vs = append(vs, v.GroupVersion)
			}
		}
		versions[g.Name] = vs
	}
	out := map[string]schema.GroupVersionResource{}
	seen := map[string]*metav1.APIResourceList{}
	for _, w := range watchedResources {
	versionLoop:
		for _, gv := range versions[w.Group] {
			list, ok := seen[gv]
			if !ok {
				list, err = disc.ServerResourcesForGroupVersion(gv)
				if err != nil {
					if apierrors.IsNotFound(err) {
						continue
					}
					return nil, fmt.Errorf("discover resources of %s: %w", gv, err)
				}
				seen[gv] = list
			}
			for _, r := range list.APIResources {
				if r.Name == w.Resource {
					pgv, _ := schema.ParseGroupVersion(gv)
					out[w.Kind] = pgv.WithResource(w.Resource)
					break versionLoop
				}
			}
		}
	}
	return out, nil
}
