// Package cnisim is a TEST-ONLY stand-in for istio-cni's node agent. It does
// no networking at all: it only writes the pod annotation that istio-cni
// writes, so kubectl-ambient's verification can be exercised against a lab
// cluster whose pods are fake (kwok). Never deploy it to a real cluster.
//
// For every scheduled, non-terminating pod that istio-cni would capture (its
// namespace, or the pod itself, labelled istio.io/dataplane-mode=ambient; not
// hostNetwork; not opted out with the pod label istio.io/dataplane-mode=none;
// no sidecar.istio.io/status annotation) it writes
// ambient.istio.io/redirection=enabled once, as istio-cni does after ztunnel
// accepts the pod. With Options.Delay set it plays a ztunnel that has not
// accepted the pod yet: istio-cni then writes pending (the redirection rules
// are in place, ztunnel is not serving the pod) and enabled once it is; the
// stand-in writes pending, then enabled after Delay. When a pod stops qualifying (namespace unenrolled, pod opted out) it
// removes the annotation. Writes go through the pods/status subresource, as
// istio-cni's do.
package cnisim

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// Options tune the stand-in.
type Options struct {
	// Delay, when above zero, makes every capture go through pending for
	// this long before enabled (ztunnel slow to accept pods). Zero, the
	// default, writes enabled at once: one write per pod, as istio-cni.
	Delay time.Duration
	// Workers bounds concurrent pod patches (default 16).
	Workers int
	// Logf, when set, receives one line per write.
	Logf func(format string, args ...any)
}

// Controller is a running stand-in.
type Controller struct {
	kc      kubernetes.Interface
	opts    Options
	factory informers.SharedInformerFactory
	pods    cache.SharedIndexInformer
	nss     cache.SharedIndexInformer
	queue   workqueue.TypedDelayingInterface[string]

	mu           sync.Mutex
	pendingSince map[string]time.Time

	// Writes counts annotation patches made.
	Writes atomic.Int64
}

// New builds a stand-in; call Run to start it.
func New(kc kubernetes.Interface, opts Options) *Controller {
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	f := informers.NewSharedInformerFactory(kc, 0)
	c := &Controller{
		kc: kc, opts: opts, factory: f,
		pods:         f.Core().V1().Pods().Informer(),
		nss:          f.Core().V1().Namespaces().Informer(),
		queue:        workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[string]{Name: "cnisim"}),
		pendingSince: map[string]time.Time{},
	}
	return c
}

// Run starts the informers and workers and blocks until ctx ends. It
// returns an error only when the informers cannot sync.
func (c *Controller) Run(ctx context.Context) error {
	enqueuePod := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			c.queue.Add(key)
		}
	}
	if _, err := c.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueuePod,
		UpdateFunc: func(_, n any) { enqueuePod(n) },
	}); err != nil {
		return err
	}
	enqueueNS := func(obj any) {
		ns, ok := obj.(*corev1.Namespace)
		if !ok {
			return
		}
		objs, _ := c.pods.GetIndexer().ByIndex(cache.NamespaceIndex, ns.Name)
		for _, o := range objs {
			enqueuePod(o)
		}
	}
	if _, err := c.nss.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(o, n any) {
			on, ok1 := o.(*corev1.Namespace)
			nn, ok2 := n.(*corev1.Namespace)
			if ok1 && ok2 && on.Labels[ambient.LabelDataplaneMode] != nn.Labels[ambient.LabelDataplaneMode] {
				enqueueNS(n)
			}
		},
	}); err != nil {
		return err
	}
	c.factory.Start(ctx.Done())
	defer c.factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), c.pods.HasSynced, c.nss.HasSynced) {
		return fmt.Errorf("cni stand-in: pod and namespace caches did not sync: %w", ctx.Err())
	}
	var wg sync.WaitGroup
	for range c.opts.Workers {
		wg.Go(func() {
			for {
				key, quit := c.queue.Get()
				if quit {
					return
				}
				c.reconcile(ctx, key)
				c.queue.Done(key)
			}
		})
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

// HasSynced reports whether the stand-in has seen every pod and namespace.
func (c *Controller) HasSynced() bool { return c.pods.HasSynced() && c.nss.HasSynced() }

func (c *Controller) eligible(p *corev1.Pod) bool {
	if p.Spec.NodeName == "" || p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false
	}
	if p.Spec.HostNetwork || p.Labels[ambient.LabelDataplaneMode] == ambient.DataplaneNone {
		return false
	}
	if _, ok := p.Annotations[ambient.AnnotationSidecarStatus]; ok {
		return false
	}
	if p.Labels[ambient.LabelDataplaneMode] == ambient.DataplaneAmbient {
		return true
	}
	obj, ok, _ := c.nss.GetIndexer().GetByKey(p.Namespace)
	if !ok {
		return false
	}
	ns := obj.(*corev1.Namespace)
	return ns.Labels[ambient.LabelDataplaneMode] == ambient.DataplaneAmbient
}

func (c *Controller) reconcile(ctx context.Context, key string) {
	obj, ok, _ := c.pods.GetIndexer().GetByKey(key)
	if !ok {
		c.forget(key)
		return
	}
	p := obj.(*corev1.Pod)
	cur, has := p.Annotations[ambient.AnnotationRedirection]
	switch want := c.eligible(p); {
	case want && !has && c.opts.Delay <= 0:
		c.patch(ctx, p, ambient.RedirectionEnabled)
	case want && !has:
		if c.patch(ctx, p, ambient.RedirectionPending) {
			c.mu.Lock()
			c.pendingSince[key] = time.Now()
			c.mu.Unlock()
			c.queue.AddAfter(key, c.opts.Delay)
		}
	case want && cur == ambient.RedirectionPending:
		c.mu.Lock()
		since, seen := c.pendingSince[key]
		if !seen {
			since = time.Now()
			c.pendingSince[key] = since
		}
		c.mu.Unlock()
		if left := c.opts.Delay - time.Since(since); left > 0 {
			c.queue.AddAfter(key, left)
			return
		}
		if c.patch(ctx, p, ambient.RedirectionEnabled) {
			c.forget(key)
		}
	case !want && has:
		if c.patch(ctx, p, "") {
			c.forget(key)
		}
	}
}

func (c *Controller) forget(key string) {
	c.mu.Lock()
	delete(c.pendingSince, key)
	c.mu.Unlock()
}

// patch sets (or, with value "", removes) the annotation; false means retry later.
func (c *Controller) patch(ctx context.Context, p *corev1.Pod, value string) bool {
	var v any = value
	if value == "" {
		v = nil
	}
	body, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{ambient.AnnotationRedirection: v}}})
	_, err := c.kc.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: "cni-standin"}, "status")
	if err != nil {
		if apierrors.IsNotFound(err) || ctx.Err() != nil {
			return false
		}
		if c.opts.Logf != nil {
			c.opts.Logf("cni stand-in: annotate pod %s/%s: %v", p.Namespace, p.Name, err)
		}
		c.queue.AddAfter(p.Namespace+"/"+p.Name, 500*time.Millisecond)
		return false
	}
	c.Writes.Add(1)
	if c.opts.Logf != nil {
		if value == "" {
			value = "(removed)"
		}
		c.opts.Logf("pod %s/%s %s=%s", p.Namespace, p.Name, ambient.AnnotationRedirection, value)
	}
	return true
}
