package migrate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// ErrNotCaptured is returned (wrapped) when pods that should be captured are
// not, when the verification time runs out.
var ErrNotCaptured = errors.New("pods not captured")

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Timeout bounds the wait for capture (default 2m).
	Timeout  time.Duration
	Observer Observer
}

// PodState is one pod that is not (yet) captured, and why.
type PodState struct {
	Pod string `json:"pod"`
	// Workload is Kind/name of the pod's owner.
	Workload string `json:"workload,omitempty"`
	Node     string `json:"node,omitempty"`
	State    string `json:"state"`
	Reason   string `json:"reason"`
}

// Pod states in a verification report.
const (
	PodPending         = "pending"
	PodMissing         = "missing"
	PodAwaitingRollout = "awaiting next rollout"
)

// NamespaceVerify is the capture state of one namespace.
type NamespaceVerify struct {
	Namespace string `json:"namespace"`
	// Expected pods should be captured now; Captured carry redirection=enabled.
	Expected        int `json:"expected"`
	Captured        int `json:"captured"`
	Pending         int `json:"pending"`
	Missing         int `json:"missing"`
	AwaitingRollout int `json:"awaitingRollout"`
	HostNetwork     int `json:"hostNetwork"`
	OptedOut        int `json:"optedOut"`
	// Pods lists every pod not captured (pending, missing, awaiting rollout).
	Pods []PodState `json:"pods,omitempty"`
}

// Done reports whether every pod that should be captured is.
func (n *NamespaceVerify) Done() bool { return n.Captured == n.Expected }

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Namespaces []NamespaceVerify `json:"namespaces"`
	Done       bool              `json:"done"`
	Elapsed    time.Duration     `json:"elapsed"`
}

// Verify watches the pods of the namespaces (one LIST and one WATCH through
// an informer, never polling) until every pod istio-cni should capture
// carries ambient.istio.io/redirection=enabled, or until opts.Timeout. Pods
// with a sidecar are reported as awaiting their next rollout and do not hold
// the verification up. On timeout the report lists each pending or missing
// pod with a reason, and the error wraps ErrNotCaptured.
func Verify(ctx context.Context, kc kubernetes.Interface, namespaces []string, opts VerifyOptions) (*VerifyReport, error) {
	start := time.Now()
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	want := map[string]bool{}
	for _, n := range namespaces {
		want[n] = true
	}
	var fopts []informers.SharedInformerOption
	if len(namespaces) == 1 {
		fopts = append(fopts, informers.WithNamespace(namespaces[0]))
	}
	factory := informers.NewSharedInformerFactoryWithOptions(kc, 0, fopts...)
	inf := factory.Core().V1().Pods().Informer()
	var (
		mu    sync.Mutex
		dirty = map[string]bool{}
		kick  = make(chan struct{}, 1)
	)
	mark := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		p, ok := obj.(*corev1.Pod)
		if !ok || !want[p.Namespace] {
			return
		}
		mu.Lock()
		dirty[p.Namespace] = true
		mu.Unlock()
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    mark,
		UpdateFunc: func(_, n any) { mark(n) },
		DeleteFunc: mark,
	}); err != nil {
		return nil, fmt.Errorf("watch pods: %w", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	factory.Start(wctx.Done())
	// Stop the watch first: Shutdown waits for the informers to end.
	defer func() { cancel(); factory.Shutdown() }()

	timer := time.NewTimer(opts.Timeout)
	defer timer.Stop()
	synced := make(chan bool, 1)
	go func() { synced <- cache.WaitForCacheSync(wctx.Done(), inf.HasSynced) }()
	select {
	case ok := <-synced:
		if !ok {
			return nil, fmt.Errorf("watch pods: %w", context.Cause(wctx))
		}
	case <-timer.C:
		return nil, fmt.Errorf("watch pods: could not list pods within %s; check the connection to the cluster", opts.Timeout)
	}

	state := make(map[string]*NamespaceVerify, len(namespaces))
	outstanding := 0
	eval := func(ns string) {
		if old := state[ns]; old != nil {
			outstanding -= old.Expected - old.Captured
		}
		objs, _ := inf.GetIndexer().ByIndex(cache.NamespaceIndex, ns)
		nv := evalNamespace(ns, objs)
		state[ns] = nv
		outstanding += nv.Expected - nv.Captured
	}
	for _, ns := range namespaces {
		eval(ns)
	}
	opts.Observer.emit(StepVerifyStarted, "", fmt.Sprintf("%d namespace(s), %d pod(s) to be captured", len(namespaces), outstanding))
	report := func(done bool) *VerifyReport {
		r := &VerifyReport{Done: done, Elapsed: time.Since(start)}
		for _, ns := range namespaces {
			r.Namespaces = append(r.Namespaces, *state[ns])
		}
		return r
	}
	lastProgress := time.Now()
	for outstanding > 0 {
		select {
		case <-ctx.Done():
			return report(false), fmt.Errorf("verify capture: %w", ctx.Err())
		case <-timer.C:
			r := report(false)
			n, nsCount := 0, 0
			for _, v := range r.Namespaces {
				if !v.Done() {
					n += v.Expected - v.Captured
					nsCount++
				}
			}
			return r, fmt.Errorf("%w: %d pod(s) in %d namespace(s) still not captured after %s; see the pods listed, then check istio-cni and ztunnel on their nodes", ErrNotCaptured, n, nsCount, opts.Timeout)
		case <-kick:
			mu.Lock()
			d := dirty
			dirty = map[string]bool{}
			mu.Unlock()
			for ns := range d {
				eval(ns)
			}
			if time.Since(lastProgress) > 2*time.Second {
				lastProgress = time.Now()
				opts.Observer.emit(StepVerifyProgress, "", fmt.Sprintf("%d pod(s) still to be captured", outstanding))
			}
		}
	}
	return report(true), nil
}

func evalNamespace(ns string, objs []any) *NamespaceVerify {
	nv := &NamespaceVerify{Namespace: ns}
	for _, o := range objs {
		p, ok := o.(*corev1.Pod)
		if !ok {
			continue
		}
		switch classify(p) {
		case classSkip:
		case classHostNetwork:
			nv.HostNetwork++
		case classOptedOut:
			nv.OptedOut++
		case classSidecar:
			nv.AwaitingRollout++
			kind, name := ownerOf(p)
			nv.Pods = append(nv.Pods, PodState{Pod: p.Name, Workload: kind + "/" + name, Node: p.Spec.NodeName, State: PodAwaitingRollout,
				Reason: fmt.Sprintf("has a sidecar; captured when %s/%s next rolls out (or use --restart-sidecars)", kind, name)})
		case classCapture:
			nv.Expected++
			switch p.Annotations[ambient.AnnotationRedirection] {
			case ambient.RedirectionEnabled:
				nv.Captured++
			case ambient.RedirectionPending:
				nv.Pending++
				nv.Pods = append(nv.Pods, PodState{Pod: p.Name, Node: p.Spec.NodeName, State: PodPending,
					Reason: fmt.Sprintf("istio-cni set up redirection but ztunnel on node %s has not accepted the pod yet; check ztunnel there", p.Spec.NodeName)})
			default:
				nv.Missing++
				nv.Pods = append(nv.Pods, PodState{Pod: p.Name, Node: p.Spec.NodeName, State: PodMissing, Reason: missingReason(p)})
			}
		}
	}
	sort.Slice(nv.Pods, func(i, j int) bool { return nv.Pods[i].Pod < nv.Pods[j].Pod })
	return nv
}

func missingReason(p *corev1.Pod) string {
	switch {
	case p.Spec.NodeName == "":
		return "not scheduled yet"
	case p.Status.Phase == corev1.PodPending:
		return fmt.Sprintf("not running yet on node %s", p.Spec.NodeName)
	}
	return fmt.Sprintf("no %s annotation: istio-cni on node %s has not processed the pod; check the istio-cni node agent there", ambient.AnnotationRedirection, p.Spec.NodeName)
}
