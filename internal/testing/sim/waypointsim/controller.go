// Package waypointsim is a TEST-ONLY stand-in for the part of istiod that
// deploys waypoints and reports their binding. Never deploy it to a real
// cluster; product code knows nothing of it.
//
// What it does, as istiod does for kubectl-ambient's purposes:
//   - for every Gateway of class istio-waypoint it creates a Deployment and a
//     Service named after the Gateway (owned by it, labelled
//     gateway.networking.k8s.io/gateway-name), then writes the Gateway's
//     status: Accepted, Programmed (for the Gateway's generation) and the
//     Service's ClusterIP as its address;
//   - on every Service whose own or namespace's istio.io/use-waypoint label
//     names a waypoint it writes the istio.io/WaypointBound condition: True
//     when the waypoint exists, is Programmed and takes service traffic
//     (waypoint-for service or all), False otherwise; it removes the
//     condition when the Service no longer uses a waypoint.
//
// With Options.NeverProgram it plays an istiod that cannot deploy the
// waypoint: Accepted but Programmed=False, and Services stay unbound.
package waypointsim

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// Labels istiod puts on the waypoint Deployment and Service it creates.
const (
	LabelGatewayName = gatewayv1.GatewayNameLabelKey
	LabelManaged     = "gateway.istio.io/managed"
	ManagedValue     = "istio.io-mesh-controller"
)

// Options tune the stand-in.
type Options struct {
	// NeverProgram leaves every waypoint Programmed=False.
	NeverProgram bool
	// Delay postpones Programmed after the Deployment is created (a slow
	// waypoint start).
	Delay time.Duration
}

// Controller is a running stand-in.
type Controller struct {
	kc    kubernetes.Interface
	dc    dynamic.Interface
	gvr   schema.GroupVersionResource
	opts  Options
	f     informers.SharedInformerFactory
	df    dynamicinformer.DynamicSharedInformerFactory
	gws   cache.SharedIndexInformer
	svcs  cache.SharedIndexInformer
	nss   cache.SharedIndexInformer
	queue workqueue.TypedRateLimitingInterface[string]

	// Programmed counts Gateways set Programmed=True.
	Programmed atomic.Int64
}

// New builds a stand-in for Gateways served at gvr; call Run to start it.
func New(kc kubernetes.Interface, dc dynamic.Interface, gvr schema.GroupVersionResource, opts Options) *Controller {
	f := informers.NewSharedInformerFactory(kc, 0)
	df := dynamicinformer.NewDynamicSharedInformerFactory(dc, 0)
	c := &Controller{kc: kc, dc: dc, gvr: gvr, opts: opts, f: f, df: df,
		gws:   df.ForResource(gvr).Informer(),
		svcs:  f.Core().V1().Services().Informer(),
		nss:   f.Core().V1().Namespaces().Informer(),
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
	}
	enqueueNS := func(obj any) {
		if m, err := meta.Accessor(obj); err == nil {
			ns := m.GetNamespace()
			if ns == "" {
				ns = m.GetName() // a Namespace
			}
			c.queue.Add(ns)
		} else if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			if m, err := meta.Accessor(t.Obj); err == nil {
				c.queue.Add(m.GetNamespace())
			}
		}
	}
	h := cache.ResourceEventHandlerFuncs{AddFunc: enqueueNS, UpdateFunc: func(_, n any) { enqueueNS(n) }, DeleteFunc: enqueueNS}
	for _, inf := range []cache.SharedIndexInformer{c.svcs, c.nss} {
		_, _ = inf.AddEventHandler(h)
	}
	// A waypoint's change matters to Services in every namespace that may
	// point at it (istio.io/use-waypoint-namespace).
	all := func(obj any) {
		enqueueNS(obj)
		for _, n := range c.nss.GetStore().ListKeys() {
			c.queue.Add(n)
		}
	}
	_, _ = c.gws.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: all, UpdateFunc: func(_, n any) { all(n) }, DeleteFunc: all})
	return c
}

// HasSynced reports whether the informers have listed everything.
func (c *Controller) HasSynced() bool {
	return c.gws.HasSynced() && c.svcs.HasSynced() && c.nss.HasSynced()
}

// Run reconciles namespaces until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.f.Start(ctx.Done())
	c.df.Start(ctx.Done())
	go func() { <-ctx.Done(); c.queue.ShutDown() }()
	for i := 0; i < 4; i++ {
		go func() {
			for c.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
	c.f.Shutdown()
	c.df.Shutdown()
	return nil
}

func (c *Controller) next(ctx context.Context) bool {
	ns, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(ns)
	requeue, err := c.reconcile(ctx, ns)
	switch {
	case err != nil && ctx.Err() == nil:
		c.queue.AddRateLimited(ns)
	case requeue > 0:
		c.queue.Forget(ns)
		c.queue.AddAfter(ns, requeue)
	default:
		c.queue.Forget(ns)
	}
	return true
}

// reconcile handles every waypoint in ns, then every Service in ns (a
// Service may point at a waypoint elsewhere, so a waypoint change also
// queues the namespaces that point at it: all of them, cheaply).
func (c *Controller) reconcile(ctx context.Context, ns string) (time.Duration, error) {
	var requeue time.Duration
	programmed := map[string]string{} // ns/name -> waypoint-for, for Programmed waypoints
	for _, obj := range c.gws.GetStore().List() {
		u := obj.(*unstructured.Unstructured)
		if cls, _, _ := unstructured.NestedString(u.Object, "spec", "gatewayClassName"); cls != ambient.WaypointClass || u.GetDeletionTimestamp() != nil {
			continue
		}
		if u.GetNamespace() == ns {
			d, err := c.reconcileGateway(ctx, u)
			if err != nil {
				return 0, err
			}
			if d > 0 {
				requeue = d
			}
		}
		if c.isProgrammed(u) {
			f := u.GetLabels()[ambient.LabelWaypointFor]
			if f == "" {
				f = "service"
			}
			programmed[u.GetNamespace()+"/"+u.GetName()] = f
		}
	}
	nsObj, ok, _ := c.nss.GetStore().GetByKey(ns)
	var nsLabels map[string]string
	if ok {
		nsLabels = nsObj.(*corev1.Namespace).Labels
	}
	for _, obj := range c.svcs.GetStore().List() {
		s := obj.(*corev1.Service)
		if s.Namespace != ns {
			continue
		}
		if err := c.reconcileService(ctx, s, nsLabels, programmed); err != nil {
			return 0, err
		}
	}
	return requeue, nil
}

func (c *Controller) isProgrammed(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, x := range conds {
		m, _ := x.(map[string]any)
		if m["type"] == ambient.ConditionProgrammed && m["status"] == "True" {
			g, _, _ := unstructured.NestedInt64(m, "observedGeneration")
			return g >= u.GetGeneration()
		}
	}
	return false
}

func (c *Controller) reconcileGateway(ctx context.Context, u *unstructured.Unstructured) (time.Duration, error) {
	ns, name := u.GetNamespace(), u.GetName()
	owner := metav1.OwnerReference{APIVersion: u.GetAPIVersion(), Kind: "Gateway", Name: name, UID: u.GetUID(), Controller: ptr.To(true)}
	lbl := map[string]string{LabelGatewayName: name, LabelManaged: ManagedValue, ambient.LabelWaypointFor: u.GetLabels()[ambient.LabelWaypointFor]}
	sel := map[string]string{LabelGatewayName: name}
	created := false
	if _, err := c.kc.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: lbl, OwnerReferences: []metav1.OwnerReference{owner}},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: sel},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: lbl},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: ambient.ProxyContainer, Image: "istio/proxyv2:sim",
						Args:  []string{"proxy", "waypoint"},
						Ports: []corev1.ContainerPort{{Name: "mesh", ContainerPort: ambient.WaypointPort}, {Name: "status-port", ContainerPort: 15021}}}}},
				},
			},
		}
		if _, err := c.kc.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return 0, fmt.Errorf("create waypoint deployment %s/%s: %w", ns, name, err)
		}
		created = true
	} else if err != nil {
		return 0, err
	}
	svc, err := c.kc.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		svc = &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: lbl, OwnerReferences: []metav1.OwnerReference{owner}},
			Spec: corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{
				{Name: "status-port", Port: 15021, TargetPort: intstr.FromInt32(15021)},
				{Name: "mesh", Port: ambient.WaypointPort, TargetPort: intstr.FromInt32(ambient.WaypointPort), AppProtocol: ptr.To("all")},
			}},
		}
		if svc, err = c.kc.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return 0, fmt.Errorf("create waypoint service %s/%s: %w", ns, name, err)
		}
	} else if err != nil {
		return 0, err
	}
	if created && c.opts.Delay > 0 && !c.opts.NeverProgram {
		return c.opts.Delay, c.writeStatus(ctx, u, svc, false)
	}
	if !created && c.opts.Delay > 0 && !c.opts.NeverProgram && u.GetCreationTimestamp().Add(c.opts.Delay).After(time.Now()) {
		return time.Until(u.GetCreationTimestamp().Add(c.opts.Delay)), nil
	}
	return 0, c.writeStatus(ctx, u, svc, !c.opts.NeverProgram)
}

func (c *Controller) writeStatus(ctx context.Context, u *unstructured.Unstructured, svc *corev1.Service, programmed bool) error {
	gen := u.GetGeneration()
	now := metav1.Now().Rfc3339Copy().Format(time.RFC3339)
	prog := map[string]any{"type": ambient.ConditionProgrammed, "status": "True", "reason": "Programmed", "observedGeneration": gen, "lastTransitionTime": now,
		"message": fmt.Sprintf("Resource programmed, assigned to service(s) %s.%s.svc.cluster.local:%d", svc.Name, svc.Namespace, ambient.WaypointPort)}
	if !programmed {
		prog = map[string]any{"type": ambient.ConditionProgrammed, "status": "False", "reason": "Pending", "observedGeneration": gen, "lastTransitionTime": now,
			"message": "waypoint deployment is not ready"}
	}
	if c.sameStatus(u, prog) {
		return nil
	}
	status := map[string]any{"conditions": []any{
		map[string]any{"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": gen, "lastTransitionTime": now, "message": "Resource accepted"},
		prog,
	}}
	if programmed && svc.Spec.ClusterIP != "" {
		status["addresses"] = []any{map[string]any{"type": "IPAddress", "value": svc.Spec.ClusterIP}}
	}
	cp := u.DeepCopy()
	cp.Object["status"] = status
	if _, err := c.dc.Resource(c.gvr).Namespace(u.GetNamespace()).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("write status of Gateway %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	if programmed {
		c.Programmed.Add(1)
	}
	return nil
}

func (c *Controller) sameStatus(u *unstructured.Unstructured, prog map[string]any) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, x := range conds {
		m, _ := x.(map[string]any)
		if m["type"] == ambient.ConditionProgrammed {
			g, _, _ := unstructured.NestedInt64(m, "observedGeneration")
			return m["status"] == prog["status"] && g == prog["observedGeneration"]
		}
	}
	return false
}

func (c *Controller) reconcileService(ctx context.Context, s *corev1.Service, nsLabels map[string]string, programmed map[string]string) error {
	name, has := s.Labels[ambient.LabelUseWaypoint]
	src := s.Labels
	if !has {
		name, has = nsLabels[ambient.LabelUseWaypoint]
		src = nsLabels
	}
	var want *metav1.Condition
	if has && name != "" && name != ambient.UseWaypointNone && s.Labels[LabelGatewayName] == "" {
		wns := s.Namespace
		if v := src[ambient.LabelUseWaypointNamespace]; v != "" {
			wns = v
		}
		key := wns + "/" + name
		f, ok := programmed[key]
		switch {
		case !ok:
			want = &metav1.Condition{Type: ambient.ConditionWaypointBound, Status: metav1.ConditionFalse, Reason: "WaypointNotFound",
				Message: fmt.Sprintf("waypoint %s not found or not programmed", key)}
		case f != "service" && f != "all":
			want = &metav1.Condition{Type: ambient.ConditionWaypointBound, Status: metav1.ConditionFalse, Reason: "UnsupportedTrafficType",
				Message: fmt.Sprintf("waypoint %s does not accept service traffic (waypoint-for %s)", key, f)}
		default:
			want = &metav1.Condition{Type: ambient.ConditionWaypointBound, Status: metav1.ConditionTrue, Reason: "WaypointAccepted",
				Message: "bound to " + key}
		}
	}
	cur := meta.FindStatusCondition(s.Status.Conditions, ambient.ConditionWaypointBound)
	switch {
	case want == nil && cur == nil:
		return nil
	case want != nil && cur != nil && cur.Status == want.Status && cur.Reason == want.Reason && cur.Message == want.Message:
		return nil
	}
	cp := s.DeepCopy()
	if want == nil {
		meta.RemoveStatusCondition(&cp.Status.Conditions, ambient.ConditionWaypointBound)
	} else {
		meta.SetStatusCondition(&cp.Status.Conditions, *want)
	}
	if _, err := c.kc.CoreV1().Services(s.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("write %s on Service %s/%s: %w", ambient.ConditionWaypointBound, s.Namespace, s.Name, err)
	}
	return nil
}
