package rollout

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/install"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// OnDeleteValues are the ztunnel chart values the rollout sets: OnDelete,
// and rollingUpdate removed (null deletes the chart's default), so the
// rendered DaemonSet carries no rolling-update parameters.
var OnDeleteValues = []string{
	"ztunnel.updateStrategy.type=OnDelete",
	"ztunnel.updateStrategy.rollingUpdate=null",
}

// Steps are what every node goes through, in order.
var Steps = []string{"record", "cordon", "drain", "delete-ztunnel", "wait-ready", "health", "uncordon"}

// Permissions lists what a rollout needs, beyond the chart upgrade's own.
func Permissions(ns string) []kube.Permission {
	return []kube.Permission{
		{Verb: "get", Group: "apps", Resource: "daemonsets", Namespace: ns},
		{Verb: "patch", Group: "apps", Resource: "daemonsets", Namespace: ns},
		{Verb: "list", Group: "apps", Resource: "controllerrevisions", Namespace: ns},
		{Verb: "get", Resource: "nodes"},
		{Verb: "patch", Resource: "nodes"},
		{Verb: "list", Resource: "pods"},
		{Verb: "get", Resource: "pods"},
		{Verb: "create", Resource: "pods", Subresource: "eviction"},
		{Verb: "delete", Resource: "pods", Namespace: ns},
		{Verb: "get", Resource: "pods", Subresource: "proxy", Namespace: ns},
		{Verb: "get", Resource: "configmaps", Namespace: ns},
		{Verb: "create", Resource: "configmaps", Namespace: ns},
		{Verb: "update", Resource: "configmaps", Namespace: ns},
	}
}

// runner is one Run's state.
type runner struct {
	o       Options
	jr      *journal
	ds      *appsv1.DaemonSet
	sel     labels.Selector
	rev     string
	version string
	report  *Report
	pmu     sync.Mutex
}

func (r *runner) progress(format string, args ...any) {
	if r.o.Progress == nil {
		return
	}
	r.pmu.Lock()
	defer r.pmu.Unlock()
	_, _ = fmt.Fprintf(r.o.Progress, format+"\n", args...)
}

// Run performs (or with DryRun plans) the rollout. The report is filled as
// far as the run got, also when an error is returned.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	r := &runner{o: o, report: &Report{Namespace: o.Namespace, DaemonSet: o.DaemonSet, DryRun: o.DryRun, Steps: Steps}}
	if o.NoDrain {
		r.report.Steps = []string{"record", "cordon", "delete-ztunnel", "wait-ready", "health", "uncordon"}
	}
	err := r.run(ctx)
	return r.report, err
}

func (r *runner) run(ctx context.Context) error {
	o := r.o
	kc := o.Kube
	if !o.DryRun {
		if err := kube.Require(ctx, kc, Permissions(o.Namespace)); err != nil {
			return err
		}
	}
	ds, err := kc.AppsV1().DaemonSets(o.Namespace).Get(ctx, o.DaemonSet, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read daemonset %s/%s: %w; is ztunnel installed (kubectl ambient install)?", o.Namespace, o.DaemonSet, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return fmt.Errorf("daemonset %s/%s selector: %w", o.Namespace, o.DaemonSet, err)
	}
	r.ds, r.sel = ds, sel
	if r.jr, err = loadJournal(ctx, kc, o.Namespace); err != nil {
		return err
	}
	r.jr.dryRun = o.DryRun

	var steps []install.Step
	if o.Chart != nil {
		io := o.Chart.Options
		io.Values.Set = append(append([]string(nil), io.Values.Set...), OnDeleteValues...)
		io.Only = []string{install.ChartZtunnel}
		io.Atomic = false
		io.RequireInstalled = true
		o.Chart.Options = io
		// Every chart is fetched before anything is applied.
		if steps, err = install.Resolve(ctx, io); err != nil {
			return err
		}
		if len(steps) == 1 {
			r.version = steps[0].Version
			r.report.Version = r.version
		}
	}
	if o.DryRun {
		return r.plan(ctx)
	}

	// The chart upgrade runs beside the node loop: its wait for the
	// DaemonSet completes only once every pod is replaced, which is what
	// the loop does. It is cancelled if the loop stops.
	var helm *helmRun
	if o.Chart != nil {
		if helm, err = r.startChart(ctx, steps); err != nil {
			return err
		}
		defer helm.stop()
	} else if ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType {
		return fmt.Errorf("daemonset %s/%s uses updateStrategy %s, %w, so deleting its pods one by one races its own rolling update; given a chart, the rollout sets OnDelete through the chart values",
			o.Namespace, o.DaemonSet, ds.Spec.UpdateStrategy.Type, ErrNotOnDelete)
	}
	if note, err := clearRollingUpdate(ctx, kc, o.Namespace, o.DaemonSet); err != nil {
		return err
	} else if note != "" {
		r.report.Notes = append(r.report.Notes, note)
		r.progress("%s", note)
	}
	if r.rev, err = currentRevision(ctx, kc, o.Namespace, o.DaemonSet); err != nil {
		return err
	}
	r.report.Revision = r.rev
	if err := r.jr.reset(ctx, o.DaemonSet, r.rev, r.version, time.Now().UTC()); err != nil {
		return err
	}
	if err := r.loop(ctx); err != nil {
		return err
	}
	if helm != nil {
		if err := helm.finish(ctx); err != nil {
			return err
		}
	}
	r.report.Complete = true
	r.progress("rollout complete: every ztunnel pod of daemonset %s/%s runs revision %s", o.Namespace, o.DaemonSet, r.rev)
	return nil
}

// nodeState is a node as the loop finds it.
type nodeState struct {
	name    string
	pod     *corev1.Pod
	current bool
}

// nodes lists the nodes that run a ztunnel pod, by name, and whether the pod
// is at revision rev ("" when unknown, as in a dry run before the chart).
func (r *runner) nodes(ctx context.Context, rev string) ([]nodeState, error) {
	pods, err := r.o.Kube.CoreV1().Pods(r.o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: r.sel.String()})
	if err != nil {
		return nil, fmt.Errorf("list ztunnel pods in %s: %w", r.o.Namespace, err)
	}
	by := map[string]*corev1.Pod{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName == "" || p.DeletionTimestamp != nil || !ownedBy(p, r.ds.UID) {
			continue
		}
		by[p.Spec.NodeName] = p
	}
	var out []nodeState
	for n, p := range by {
		out = append(out, nodeState{name: n, pod: p, current: rev != "" && p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == rev})
	}
	// Nodes a previous run cordoned but whose pod is gone are still ours.
	for n, e := range r.jr.j.Nodes {
		if _, ok := by[n]; !ok && e.CordonedByUs && e.Phase != phaseDone {
			out = append(out, nodeState{name: n})
		}
	}
	// By name: a stable order that --dry-run, the journal and a re-run agree on.
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func ownedBy(p *corev1.Pod, uid types.UID) bool {
	for _, ref := range p.OwnerReferences {
		if ref.UID == uid {
			return true
		}
	}
	return false
}

// plan fills the report for --dry-run.
func (r *runner) plan(ctx context.Context) error {
	rev := ""
	if r.o.Chart == nil {
		var err error
		if rev, err = currentRevision(ctx, r.o.Kube, r.o.Namespace, r.o.DaemonSet); err != nil {
			return err
		}
	}
	ns, err := r.nodes(ctx, rev)
	if err != nil {
		return err
	}
	for i, n := range ns {
		nr := NodeResult{Node: n.name, Result: ResultPlanned, Connections: -1}
		if n.pod != nil {
			nr.OldPod, nr.OldVersion = n.pod.Name, podVersion(n.pod)
			nr.NewVersion = r.version
		}
		if n.current && r.jr.entry(n.name).Phase != phaseCordoned {
			nr.Result = ResultUpToDate
		}
		if n.pod != nil {
			if c, err := r.capturedPods(ctx, n.name); err == nil {
				nr.Captured = len(c)
			}
		}
		batch := i/r.o.MaxUnavailable + 1
		if nr.Result == ResultPlanned {
			r.progress("batch %d: node %s: %s", batch, n.name, strings.Join(r.report.Steps, ", "))
		}
		r.report.Nodes = append(r.report.Nodes, nr)
	}
	return nil
}

// loop handles the nodes batch by batch and stops at the first failure.
func (r *runner) loop(ctx context.Context) error {
	ns, err := r.nodes(ctx, r.rev)
	if err != nil {
		return err
	}
	var todo []nodeState
	for _, n := range ns {
		e := r.jr.entry(n.name)
		if n.current && (e.Phase == "" || e.Phase == phaseDone) {
			r.report.Nodes = append(r.report.Nodes, NodeResult{Node: n.name, Result: ResultUpToDate, OldPod: n.pod.Name,
				OldVersion: podVersion(n.pod), NewVersion: podVersion(n.pod), Connections: -1})
			continue
		}
		todo = append(todo, n)
	}
	r.progress("rollout of daemonset %s/%s to revision %s: %d node(s) to replace, %d up to date, %d at a time",
		r.o.Namespace, r.o.DaemonSet, r.rev, len(todo), len(ns)-len(todo), r.o.MaxUnavailable)
	for start := 0; start < len(todo); start += r.o.MaxUnavailable {
		batch := todo[start:min(start+r.o.MaxUnavailable, len(todo))]
		results := make([]NodeResult, len(batch))
		errs := make([]error, len(batch))
		var wg sync.WaitGroup
		for i, n := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = r.node(ctx, n, start+i+1, len(todo))
			}()
		}
		wg.Wait()
		r.report.Nodes = append(r.report.Nodes, results...)
		if err := errors.Join(errs...); err != nil {
			for _, n := range todo[start+len(batch):] {
				r.report.Nodes = append(r.report.Nodes, NodeResult{Node: n.name, Result: ResultNotReached, Connections: -1})
			}
			return r.stopped(ctx, results, err)
		}
	}
	return nil
}

// stopped writes the report's stop and resume lines and returns the error.
func (r *runner) stopped(ctx context.Context, results []NodeResult, err error) error {
	var cordoned []string
	for _, nr := range results {
		if nr.LeftCordoned {
			cordoned = append(cordoned, nr.Node)
		}
	}
	where := ""
	if len(cordoned) > 0 {
		where = fmt.Sprintf("; node(s) %s left cordoned (kubectl uncordon %s to give up on them)", strings.Join(cordoned, ", "), strings.Join(cordoned, " "))
	}
	r.report.Resume = "run the same command again: it resumes from the journal in configmap " + r.o.Namespace + "/" + JournalName
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		r.report.Stopped = "interrupted" + where
		r.progress("interrupted%s; %s", where, r.report.Resume)
		return fmt.Errorf("%w%s; %s", ErrInterrupted, where, r.report.Resume)
	}
	r.report.Stopped = err.Error() + where
	r.progress("stopped: %s%s; fix the cause, then %s", err, where, r.report.Resume)
	return fmt.Errorf("%w%s; fix the cause, then %s", err, where, r.report.Resume)
}

func podVersion(p *corev1.Pod) string {
	for _, c := range p.Spec.Containers {
		if c.Name == ambient.ProxyContainer || len(p.Spec.Containers) == 1 {
			return ambient.ImageVersion(c.Image)
		}
	}
	return ""
}

// currentRevision is the controller-revision-hash of the DaemonSet's newest
// ControllerRevision, once the controller has observed its latest spec.
func currentRevision(ctx context.Context, kc kubernetes.Interface, ns, name string) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ds, err := kc.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("read daemonset %s/%s: %w", ns, name, err)
		}
		if ds.Status.ObservedGeneration >= ds.Generation {
			sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
			if err != nil {
				return "", err
			}
			revs, err := kc.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
			if err != nil {
				return "", fmt.Errorf("list controllerrevisions of daemonset %s/%s: %w", ns, name, err)
			}
			var best *appsv1.ControllerRevision
			for i := range revs.Items {
				cr := &revs.Items[i]
				if !metav1.IsControlledBy(cr, ds) {
					continue
				}
				if best == nil || cr.Revision > best.Revision {
					best = cr
				}
			}
			if best != nil && best.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] != "" {
				return best.Labels[appsv1.DefaultDaemonSetUniqueLabelKey], nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("daemonset %s/%s: the controller has not recorded a revision of its latest spec within 30s; is kube-controller-manager running?", ns, name)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// clearRollingUpdate removes spec.updateStrategy.rollingUpdate from an
// OnDelete DaemonSet. The rollout's values set rollingUpdate to null, so the
// chart renders none; but under server-side apply a rollingUpdate the API
// server defaulted, or another field manager owns, is not removed by an apply
// that stops sending it, and stays beside type OnDelete. Kubernetes 1.33's
// DaemonSet validation ignores it there (pkg/apis/apps/validation), so it
// fails nothing by itself; it fails later, when an apply that sets type back
// to RollingUpdate owns only some of its sub-fields and the leftover ones
// combine into an invalid pair (maxSurge and maxUnavailable both zero).
// Removing it now keeps the object what the chart says. It returns a note
// when it removed something.
func clearRollingUpdate(ctx context.Context, kc kubernetes.Interface, ns, name string) (string, error) {
	ds, err := kc.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("read daemonset %s/%s: %w", ns, name, err)
	}
	if ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType || ds.Spec.UpdateStrategy.RollingUpdate == nil {
		return "", nil
	}
	patch := []byte(`[{"op":"test","path":"/spec/updateStrategy/type","value":"OnDelete"},{"op":"remove","path":"/spec/updateStrategy/rollingUpdate"}]`)
	_, err = kc.AppsV1().DaemonSets(ns).Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return "", fmt.Errorf("remove the leftover spec.updateStrategy.rollingUpdate of daemonset %s/%s: %w", ns, name, err)
	}
	return fmt.Sprintf("daemonset %s/%s: removed spec.updateStrategy.rollingUpdate left behind next to type OnDelete", ns, name), nil
}
