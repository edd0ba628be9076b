package install

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// Workload is a Deployment or DaemonSet a release created, whose readiness
// decides whether the component is ready.
type Workload struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (w Workload) String() string { return fmt.Sprintf("%s %s/%s", w.Kind, w.Namespace, w.Name) }

// Workloads lists the Deployments and DaemonSets in a rendered manifest.
func Workloads(manifest, defaultNamespace string) []Workload {
	var out []Workload
	for _, doc := range releaseutil.SplitManifests(manifest) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			continue
		}
		if head.APIVersion != "apps/v1" || (head.Kind != "Deployment" && head.Kind != "DaemonSet") {
			continue
		}
		ns := head.Metadata.Namespace
		if ns == "" {
			ns = defaultNamespace
		}
		out = append(out, Workload{Kind: head.Kind, Namespace: ns, Name: head.Metadata.Name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Readiness is one workload's state.
type Readiness struct {
	Ready bool
	// Detail is "2/3 pods ready" or similar.
	Detail string
	// Selector selects the workload's pods, for diagnosis.
	Selector *metav1.LabelSelector
}

// readinessOf evaluates a Deployment or DaemonSet with ambient's rule
// (rolled out: observed, every pod updated and available, none old).
func readinessOf(obj runtime.Object) (Readiness, bool) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		r := ambient.DeploymentReadiness(o)
		return Readiness{Ready: r.RolledOut, Detail: r.Detail, Selector: o.Spec.Selector}, true
	case *appsv1.DaemonSet:
		r := ambient.DaemonSetReadiness(o)
		return Readiness{Ready: r.RolledOut, Detail: r.Detail, Selector: o.Spec.Selector}, true
	}
	return Readiness{}, false
}

// WaitResult is when a workload was seen ready.
type WaitResult struct {
	Workload Workload
	ReadyAt  time.Time
}

// NotReadyError says which workloads did not become ready and why.
type NotReadyError struct {
	Workloads []string // "DaemonSet istio-system/ztunnel: 0/3 nodes ready"
	Pods      []string // "ztunnel-x7k2 on kwok-1: Unschedulable: 0/3 nodes are available: 3 Insufficient cpu"
	Err       error    // context.DeadlineExceeded or context.Canceled
}

func (e *NotReadyError) Error() string {
	msg := strings.Join(e.Workloads, "; ")
	if len(e.Pods) > 0 {
		const limit = 5
		pods := e.Pods
		more := ""
		if len(pods) > limit {
			more = fmt.Sprintf(" (and %d more)", len(pods)-limit)
			pods = pods[:limit]
		}
		msg += "; pods not ready: " + strings.Join(pods, "; ") + more
	}
	return msg
}

func (e *NotReadyError) Unwrap() error { return e.Err }

// Waiter waits for workloads by watching them: one LIST+WATCH per workload,
// narrowed to its name, so readiness is seen as soon as the controller
// writes the status that makes it true.
type Waiter struct {
	Kube kubernetes.Interface
	// OnUpdate, when set, is called with a workload's readiness as it changes.
	OnUpdate func(w Workload, r Readiness)
}

// Wait blocks until every workload is ready or ctx ends. On failure it
// returns a *NotReadyError naming the pods that are not ready and why.
func (wt *Waiter) Wait(ctx context.Context, workloads []Workload) ([]WaitResult, error) {
	var (
		mu      sync.Mutex
		results = make([]WaitResult, len(workloads))
		last    = make([]Readiness, len(workloads))
		errs    = make([]error, len(workloads))
		wg      sync.WaitGroup
	)
	for i, w := range workloads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at, err := wt.waitOne(ctx, w, func(r Readiness) {
				mu.Lock()
				last[i] = r
				mu.Unlock()
				if wt.OnUpdate != nil {
					wt.OnUpdate(w, r)
				}
			})
			results[i] = WaitResult{Workload: w, ReadyAt: at}
			errs[i] = err
		}()
	}
	wg.Wait()
	var nr *NotReadyError
	for i, w := range workloads {
		err := errs[i]
		if err == nil {
			continue
		}
		if nr == nil {
			nr = &NotReadyError{Err: err}
		}
		detail := last[i].Detail
		if detail == "" {
			detail = "not seen yet"
		}
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			detail = err.Error()
		}
		nr.Workloads = append(nr.Workloads, fmt.Sprintf("%s: %s", w, detail))
		if last[i].Selector != nil {
			// The wait context is over; diagnose with a short fresh one.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			nr.Pods = append(nr.Pods, PodProblems(dctx, wt.Kube, w.Namespace, last[i].Selector)...)
			cancel()
		}
	}
	if nr != nil {
		return results, nr
	}
	return results, nil
}

func (wt *Waiter) waitOne(ctx context.Context, w Workload, seen func(Readiness)) (time.Time, error) {
	sel := fields.OneTermEqualSelector("metadata.name", w.Name).String()
	var list func(ctx context.Context, o metav1.ListOptions) ([]runtime.Object, string, error)
	var watchFn func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error)
	switch w.Kind {
	case "Deployment":
		c := wt.Kube.AppsV1().Deployments(w.Namespace)
		list, watchFn = listObjects(c.List), c.Watch
	case "DaemonSet":
		c := wt.Kube.AppsV1().DaemonSets(w.Namespace)
		list, watchFn = listObjects(c.List), c.Watch
	default:
		return time.Time{}, fmt.Errorf("cannot wait for kind %s", w.Kind)
	}
	check := func(obj runtime.Object) bool {
		r, ok := readinessOf(obj)
		if !ok {
			return false
		}
		seen(r)
		return r.Ready
	}
	// One LIST, then a WATCH from its resourceVersion; only when the watch
	// expires (410 Gone) or drops is the LIST repeated.
	for {
		objs, rv, err := list(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			if ctx.Err() != nil {
				return time.Time{}, ctx.Err()
			}
			return time.Time{}, fmt.Errorf("list %s: %w", w, err)
		}
		if len(objs) == 0 {
			seen(Readiness{Detail: "not found"})
		}
		for _, o := range objs {
			if check(o) {
				return time.Now(), nil
			}
		}
		wi, err := watchFn(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			if ctx.Err() != nil {
				return time.Time{}, ctx.Err()
			}
			return time.Time{}, fmt.Errorf("watch %s: %w", w, err)
		}
		ready, err := func() (bool, error) {
			defer wi.Stop()
			for {
				select {
				case <-ctx.Done():
					return false, ctx.Err()
				case ev, ok := <-wi.ResultChan():
					if !ok {
						return false, nil // dropped: list again
					}
					switch ev.Type {
					case watch.Error:
						return false, nil // expired: list again
					case watch.Deleted:
						seen(Readiness{Detail: "deleted"})
					case watch.Added, watch.Modified:
						if check(ev.Object) {
							return true, nil
						}
					}
				}
			}
		}()
		if ready {
			return time.Now(), nil
		}
		if err != nil {
			return time.Time{}, err
		}
	}
}

// listObjects adapts a typed client's List to the items and the list's
// resourceVersion, which the wait loop watches from.
func listObjects[L interface {
	runtime.Object
	GetResourceVersion() string
}](list func(context.Context, metav1.ListOptions) (L, error)) func(context.Context, metav1.ListOptions) ([]runtime.Object, string, error) {
	return func(ctx context.Context, o metav1.ListOptions) ([]runtime.Object, string, error) {
		l, err := list(ctx, o)
		if err != nil {
			return nil, "", err
		}
		items, err := meta.ExtractList(l)
		return items, l.GetResourceVersion(), err
	}
}

// PodProblems lists the pods of a selector that are not ready, each with the
// most telling reason: unschedulable, a waiting or crashed container, or a
// failing readiness condition.
func PodProblems(ctx context.Context, kc kubernetes.Interface, ns string, sel *metav1.LabelSelector) []string {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil
	}
	pods, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: s.String()})
	if err != nil {
		return []string{fmt.Sprintf("cannot list pods in %s: %v", ns, err)}
	}
	var out []string
	for i := range pods.Items {
		p := &pods.Items[i]
		if why := podNotReadyReason(p); why != "" {
			where := ""
			if p.Spec.NodeName != "" {
				where = " on " + p.Spec.NodeName
			}
			out = append(out, fmt.Sprintf("%s%s: %s", p.Name, where, why))
		}
	}
	if len(pods.Items) == 0 {
		out = append(out, fmt.Sprintf("no pods match %s in %s (check the controller and quota: kubectl get events -n %s)", s, ns, ns))
	}
	sort.Strings(out)
	return out
}

func podNotReadyReason(p *corev1.Pod) string {
	if p.DeletionTimestamp != nil {
		return "terminating"
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return strings.TrimSpace(c.Reason + ": " + oneLine(c.Message))
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			return fmt.Sprintf("container %s waiting: %s %s", cs.Name, w.Reason, oneLine(w.Message))
		}
		if t := cs.State.Terminated; t != nil {
			return fmt.Sprintf("container %s terminated: %s (exit code %d)", cs.Name, t.Reason, t.ExitCode)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			if c.Status == corev1.ConditionTrue {
				return ""
			}
			why := strings.TrimSpace(c.Reason + " " + oneLine(c.Message))
			if why == "" {
				why = "not ready"
			}
			return why
		}
	}
	return "phase " + string(p.Status.Phase) + ", not ready"
}

func oneLine(s string) string { return strings.TrimSpace(strings.Join(strings.Fields(s), " ")) }
