// Package waypoint creates, lists and deletes Istio waypoints: Gateway API
// Gateways of class istio-waypoint with one HBONE listener on 15008, and
// reports what uses each (namespaces, Services, ServiceEntries and pods with
// istio.io/use-waypoint) and whether istiod bound them (the
// istio.io/WaypointBound condition).
//
// Gateways are built with the Gateway API's Go types and written through the
// dynamic client at whatever version the cluster serves (v1 on current
// clusters), so one binary works across Gateway API releases.
package waypoint

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// DefaultName is the name istioctl and Istio's docs give a namespace's waypoint.
const DefaultName = "waypoint"

// Labels this package puts on the Gateways it creates.
const (
	// LabelManagedBy marks objects this tool created.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is our value of LabelManagedBy.
	ManagedByValue = "kubectl-ambient"
)

// Values of ambient.LabelWaypointFor.
var forValues = []string{"service", "workload", "all", "none"}

// ErrNoGatewayAPI marks a cluster that does not serve the Gateway API.
var ErrNoGatewayAPI = errors.New("the Gateway API CRDs are not installed; install them (Istio's docs: Kubernetes Gateway API CRDs) before creating waypoints")

// ErrNotWaypoint marks a Gateway of another class under the requested name.
var ErrNotWaypoint = errors.New("not a waypoint")

// ErrInUse marks a waypoint that something still uses (delete would fail open).
var ErrInUse = errors.New("waypoint in use")

// ErrNotProgrammed marks a waypoint istiod has not programmed in time.
var ErrNotProgrammed = errors.New("waypoint not programmed")

// GVRs are the served resources this package reads and writes; a zero value
// means the kind is not served.
type GVRs struct {
	Gateway      schema.GroupVersionResource
	ServiceEntry schema.GroupVersionResource
}

// Discover finds the served versions of Gateway and ServiceEntry, each at
// its group's preferred version.
func Discover(disc discovery.DiscoveryInterface) (GVRs, error) {
	var g GVRs
	if disc == nil {
		return g, nil
	}
	groups, err := disc.ServerGroups()
	if err != nil {
		return g, fmt.Errorf("discover API groups: %w", err)
	}
	for _, grp := range groups.Groups {
		gv, err := schema.ParseGroupVersion(grp.PreferredVersion.GroupVersion)
		if err != nil {
			continue
		}
		switch grp.Name {
		case gatewayv1.GroupName:
			g.Gateway = gv.WithResource("gateways")
		case "networking.istio.io":
			g.ServiceEntry = gv.WithResource("serviceentries")
		}
	}
	return g, nil
}

// Build returns the waypoint Gateway for namespace/name as istioctl's
// `waypoint apply` writes it: class istio-waypoint, one HBONE listener on
// 15008, istio.io/waypoint-for set to forWhat, labelled as ours.
func Build(gv schema.GroupVersion, namespace, name, forWhat string) (*unstructured.Unstructured, error) {
	gw := &gatewayv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: namespace,
			Labels:    map[string]string{ambient.LabelWaypointFor: forWhat, LabelManagedBy: ManagedByValue},
		},
		Spec: gatewayv1.GatewaySpec{
			GatewayClassName: ambient.WaypointClass,
			Listeners: []gatewayv1.Listener{{
				Name:     "mesh",
				Port:     ambient.WaypointPort,
				Protocol: ambient.WaypointProtocol,
			}},
		},
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(gw)
	if err != nil {
		return nil, fmt.Errorf("encode waypoint Gateway %s/%s: %w", namespace, name, err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(gv.String())
	u.SetKind("Gateway")
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u, nil
}

// decode reads an unstructured Gateway into the Gateway API's types.
func decode(u *unstructured.Unstructured) (*gatewayv1.Gateway, error) {
	gw := &gatewayv1.Gateway{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, gw); err != nil {
		return nil, fmt.Errorf("read Gateway %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return gw, nil
}

// IsWaypoint reports whether u is a Gateway of class istio-waypoint.
func IsWaypoint(u *unstructured.Unstructured) bool {
	cls, _, _ := unstructured.NestedString(u.Object, "spec", "gatewayClassName")
	return cls == ambient.WaypointClass
}

// Programmed reads the Gateway's Programmed condition: its status (True,
// False or Unknown when absent), reason and message. A condition written for
// an older generation counts as Unknown: istiod has not seen the latest spec.
func Programmed(u *unstructured.Unstructured) (status metav1.ConditionStatus, reason, message string) {
	gw, err := decode(u)
	if err != nil {
		return metav1.ConditionUnknown, "Unreadable", err.Error()
	}
	c := meta.FindStatusCondition(gw.Status.Conditions, ambient.ConditionProgrammed)
	if c == nil {
		return metav1.ConditionUnknown, "Pending", "no Programmed condition yet: istiod has not handled this Gateway"
	}
	if c.ObservedGeneration != 0 && c.ObservedGeneration < gw.Generation {
		return metav1.ConditionUnknown, "Stale", fmt.Sprintf("Programmed was written for generation %d, the Gateway is at %d", c.ObservedGeneration, gw.Generation)
	}
	return c.Status, c.Reason, c.Message
}

// IsProgrammed reports whether the Gateway's Programmed condition is True
// for its current generation.
func IsProgrammed(u *unstructured.Unstructured) bool {
	s, _, _ := Programmed(u)
	return s == metav1.ConditionTrue
}

// Get reads namespace/name and checks it is a waypoint.
func Get(ctx context.Context, ri resourceGetter, namespace, name string) (*unstructured.Unstructured, error) {
	u, err := ri.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("waypoint %s/%s: %w", namespace, name, err)
		}
		return nil, fmt.Errorf("read Gateway %s/%s: %w", namespace, name, err)
	}
	if !IsWaypoint(u) {
		return nil, fmt.Errorf("gateway %s/%s: %w: its class is not %s; pick another waypoint name", namespace, name, ErrNotWaypoint, ambient.WaypointClass)
	}
	return u, nil
}

type resourceGetter interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions, subresources ...string) (*unstructured.Unstructured, error)
}
