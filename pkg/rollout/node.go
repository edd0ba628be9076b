package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel/collector"
)

// nodeRun is one node's pass.
type nodeRun struct {
	r     *runner
	n     nodeState
	label string
	res   NodeResult
	steps time.Time
	// waited is the time spent waiting on others (drain, the new pod).
	waited time.Duration
	last   *ztunnel.Metrics
	prev   *ztunnel.Metrics
	certs  []ztunnel.Certificate
	newPod *corev1.Pod
}

func (nr *nodeRun) step(name string) {
	now := time.Now()
	if !nr.steps.IsZero() && len(nr.res.Steps) > 0 {
		nr.res.Steps[len(nr.res.Steps)-1].Seconds = now.Sub(nr.steps).Seconds()
	}
	nr.res.Steps = append(nr.res.Steps, StepTime{Step: name})
	nr.steps = now
}

func (nr *nodeRun) endSteps() {
	if len(nr.res.Steps) > 0 {
		nr.res.Steps[len(nr.res.Steps)-1].Seconds = time.Since(nr.steps).Seconds()
	}
}

func (nr *nodeRun) say(format string, args ...any) {
	nr.r.progress("%s: "+format, append([]any{nr.label}, args...)...)
}

// node runs every step on one node. A failure leaves the node cordoned
// (recorded in the journal) and returns an error naming the step and why.
func (r *runner) node(ctx context.Context, n nodeState, i, total int) (NodeResult, error) {
	nr := &nodeRun{r: r, n: n, label: fmt.Sprintf("[%d/%d] node %s", i, total, n.name),
		res: NodeResult{Node: n.name, Result: ResultFailed, Connections: -1}}
	start := time.Now()
	err := nr.run(ctx)
	nr.endSteps()
	nr.res.OverheadSeconds = (time.Since(start) - nr.waited).Seconds()
	if err == nil {
		nr.res.Result = ResultUpgraded
		nr.say("upgraded to %s in %s (own overhead %s)", nr.res.NewVersion, time.Since(start).Round(time.Millisecond),
			time.Duration(nr.res.OverheadSeconds*float64(time.Second)).Round(time.Millisecond))
		return nr.res, nil
	}
	e := r.jr.entry(n.name)
	nr.res.LeftCordoned = e.CordonedByUs
	if ctx.Err() != nil {
		nr.res.Result = ResultInterrupted
		nr.res.Reason = "interrupted during " + nr.currentStep()
		if e.CordonedByUs {
			nr.say("interrupted during %s; node left cordoned (journaled)", nr.currentStep())
		}
		return nr.res, fmt.Errorf("node %s: %w", n.name, context.Canceled)
	}
	nr.res.Reason = err.Error()
	_ = r.jr.set(ctx, n.name, func(e *NodeEntry) { e.Phase, e.Reason = phaseFailed, err.Error() })
	nr.say("failed: %v", err)
	return nr.res, fmt.Errorf("%w: node %s: %w", ErrNodeFailed, n.name, err)
}

func (nr *nodeRun) currentStep() string {
	if len(nr.res.Steps) == 0 {
		return "start"
	}
	return nr.res.Steps[len(nr.res.Steps)-1].Step
}

func (nr *nodeRun) run(ctx context.Context) error {
	r, o, name := nr.r, nr.r.o, nr.n.name
	kc := o.Kube
	entry := r.jr.entry(name)
	replaced := nr.n.current // a previous run already replaced this node's ztunnel
	if nr.n.pod != nil {
		nr.res.OldPod, nr.res.OldVersion = nr.n.pod.Name, podVersion(nr.n.pod)
	}

	nr.step("record")
	captured, err := r.capturedPods(ctx, name)
	if err != nil {
		return err
	}
	nr.res.Captured = len(captured)
	if nr.n.pod != nil && !replaced {
		if m, err := collector.Scrape(ctx, kc, o.Namespace, nr.n.pod.Name, 4*time.Second, time.Now); err == nil {
			nr.res.Connections = max(0, m.ConnOpened-m.ConnClosed)
		}
	}
	conns := "unknown"
	if nr.res.Connections >= 0 {
		conns = fmt.Sprintf("%.0f", nr.res.Connections)
	}
	nr.say("carries %d captured pod(s), %s open connection(s); ztunnel %s %s", len(captured), conns, nr.res.OldPod, nr.res.OldVersion)

	nr.step("cordon")
	node, err := kc.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read node %s: %w", name, err)
	}
	if !node.Spec.Unschedulable {
		// Journal first: a crash between the two writes leaves a journal
		// that claims a cordon that did not happen, never the reverse.
		if err := r.jr.set(ctx, name, func(e *NodeEntry) { e.Phase, e.CordonedByUs = phaseCordoned, true }); err != nil {
			return err
		}
		if err := setUnschedulable(ctx, kc, name, true); err != nil {
			return err
		}
		nr.say("cordoned")
	} else if !entry.CordonedByUs {
		nr.say("already cordoned by someone else; it stays cordoned afterwards")
	}

	if !replaced {
		nr.step("drain")
		if o.NoDrain {
			nr.say("not drained (--no-drain): %d captured pod(s) will have their connections reset", len(captured))
		} else if err := nr.drain(ctx, captured); err != nil {
			return err
		}
		_ = r.jr.set(ctx, name, func(e *NodeEntry) { e.Phase = phaseDrained })

		nr.step("delete-ztunnel")
		if nr.n.pod != nil {
			uid := nr.n.pod.UID
			if err := r.jr.set(ctx, name, func(e *NodeEntry) { e.Phase, e.OldPod = phaseReplaced, nr.n.pod.Name }); err != nil {
				return err
			}
			err := kc.CoreV1().Pods(o.Namespace).Delete(ctx, nr.n.pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return fmt.Errorf("delete ztunnel pod %s/%s: %w", o.Namespace, nr.n.pod.Name, err)
			}
			nr.say("deleted ztunnel pod %s", nr.n.pod.Name)
		}
	}

	nr.step("wait-ready")
	if err := nr.waitReady(ctx); err != nil {
		return err
	}
	nr.res.NewPod, nr.res.NewVersion = nr.newPod.Name, podVersion(nr.newPod)

	nr.step("health")
	if err := nr.health(ctx); err != nil {
		return err
	}

	nr.step("uncordon")
	if r.jr.entry(name).CordonedByUs {
		if err := setUnschedulable(ctx, kc, name, false); err != nil {
			return err
		}
		nr.say("uncordoned")
	}
	return r.jr.set(ctx, name, func(e *NodeEntry) { e.Phase, e.CordonedByUs, e.Reason = phaseDone, false, "" })
}

// capturedPods lists the pods on node that ztunnel carries (istio-cni's
// redirection annotation says enabled or pending), except ztunnel's own and
// DaemonSet pods, which a drain does not move.
func (r *runner) capturedPods(ctx context.Context, node string) ([]corev1.Pod, error) {
	pods, err := r.o.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String()})
	if err != nil {
		return nil, fmt.Errorf("list pods on node %s: %w", node, err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		v := p.Annotations[ambient.AnnotationRedirection]
		if v != ambient.RedirectionEnabled && v != ambient.RedirectionPending {
			continue
		}
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if ref := metav1.GetControllerOf(&p); ref != nil && ref.Kind == "DaemonSet" {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// drain evicts every captured pod through the eviction API, retrying the
// ones a PodDisruptionBudget holds, then waits until they are gone.
func (nr *nodeRun) drain(ctx context.Context, pods []corev1.Pod) error {
	kc, o := nr.r.o.Kube, nr.r.o
	start := time.Now()
	defer func() { nr.waited += time.Since(start) }()
	deadline := start.Add(o.DrainTimeout)
	left := append([]corev1.Pod(nil), pods...)
	told := map[string]bool{}
	for len(left) > 0 {
		var still []corev1.Pod
		for _, p := range left {
			ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}}
			err := kc.PolicyV1().Evictions(p.Namespace).Evict(ctx, ev)
			switch {
			case err == nil || apierrors.IsNotFound(err):
				nr.res.Evicted++
			case apierrors.IsTooManyRequests(err):
				// A PodDisruptionBudget does not allow it now.
				if !told[p.Namespace+"/"+p.Name] {
					told[p.Namespace+"/"+p.Name] = true
					nr.say("eviction of pod %s/%s refused by a PodDisruptionBudget (%s); retrying until %s",
						p.Namespace, p.Name, shortMsg(err), o.DrainTimeout)
				}
				still = append(still, p)
			default:
				return fmt.Errorf("evict pod %s/%s: %w", p.Namespace, p.Name, err)
			}
		}
		left = still
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("drain: %d pod(s) %w after %s (first: %s/%s); free the budget",
				len(left), ErrHeldByBudget, o.DrainTimeout, left[0].Namespace, left[0].Name)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
	// Evicted pods end gracefully; wait until they are gone.
	for _, p := range pods {
		for {
			cur, err := kc.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) || (err == nil && cur.UID != p.UID) {
				break
			}
			if err != nil {
				return fmt.Errorf("read pod %s/%s: %w", p.Namespace, p.Name, err)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("drain: pod %s/%s still terminating after %s", p.Namespace, p.Name, o.DrainTimeout)
			}
			if err := sleep(ctx, pollInterval); err != nil {
				return err
			}
		}
	}
	nr.say("drained: %d pod(s) evicted in %s", len(pods), time.Since(start).Round(time.Millisecond))
	return nil
}

// waitReady waits for the node's new ztunnel: at the target revision,
// Ready, certificates Available, no pending proxies.
func (nr *nodeRun) waitReady(ctx context.Context) error {
	o := nr.r.o
	start := time.Now()
	defer func() { nr.waited += time.Since(start) }()
	deadline := start.Add(o.ReadyTimeout)
	why := "no ztunnel pod yet"
	for {
		p, w := nr.findNewPod(ctx)
		if w != "" {
			why = w
		}
		if p != nil {
			nr.newPod = p
			why = nr.ready(ctx, p)
			if why == "" {
				nr.say("ztunnel %s %s ready: certificates Available, no pending proxies (%s)", p.Name, podVersion(p), time.Since(start).Round(time.Millisecond))
				return nil
			}
		}
		if time.Now().After(deadline) {
			pod := ""
			if p != nil {
				pod = " " + p.Name
			}
			return fmt.Errorf("new ztunnel%s not ready within %s: %s", pod, o.ReadyTimeout, why)
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return err
		}
	}
}

// findNewPod returns the node's ztunnel pod at the target revision, or why none.
func (nr *nodeRun) findNewPod(ctx context.Context) (*corev1.Pod, string) {
	r := nr.r
	pods, err := r.o.Kube.CoreV1().Pods(r.o.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: r.sel.String(), FieldSelector: fields.OneTermEqualSelector("spec.nodeName", nr.n.name).String()})
	if err != nil {
		return nil, "list ztunnel pods: " + shortMsg(err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil || !ownedBy(p, r.ds.UID) {
			continue
		}
		if h := p.Labels["controller-revision-hash"]; h != r.rev {
			return nil, fmt.Sprintf("ztunnel pod %s is at revision %s, not %s", p.Name, h, r.rev)
		}
		return p, ""
	}
	return nil, ""
}

// ready returns "" when p is ready in every sense the rollout requires, or
// the first thing missing.
func (nr *nodeRun) ready(ctx context.Context, p *corev1.Pod) string {
	o := nr.r.o
	podReady := false
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			podReady = true
		}
	}
	if !podReady {
		return fmt.Sprintf("pod %s is not Ready (phase %s)", p.Name, p.Status.Phase)
	}
	m, err := collector.Scrape(ctx, o.Kube, o.Namespace, p.Name, 4*time.Second, time.Now)
	if err != nil {
		return "metrics unreadable: " + err.Error()
	}
	nr.prev, nr.last = nr.last, m
	if m.PendingProxies > 0 {
		return fmt.Sprintf("%.0f pending proxies", m.PendingProxies)
	}
	cd, err := o.Admin.ConfigDump(ctx, o.Namespace, p.Name)
	if err != nil {
		return "config_dump unreadable: " + err.Error()
	}
	nr.certs = cd.Certificates
	for _, c := range cd.Certificates {
		if !strings.EqualFold(c.State, "Available") {
			return fmt.Sprintf("certificate %s is %s", c.Identity, c.State)
		}
	}
	return ""
}

// health judges the node with the rules of `status` (ztunnel.Evaluate):
// unhealthy or unknown stops the rollout, warnings are reported.
func (nr *nodeRun) health(ctx context.Context) error {
	o := nr.r.o
	node, err := o.Kube.CoreV1().Nodes().Get(ctx, nr.n.name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read node %s: %w", nr.n.name, err)
	}
	obs := collector.NodeObservation(node, nr.newPod)
	// The node is cordoned by the rollout itself; judge it as it will be.
	obs.Schedulable = true
	pr := collector.Probe(ctx, o.Kube, o.Namespace, nr.newPod.Name, 4*time.Second)
	obs.Probe = &pr
	obs.Metrics = nr.last
	if nr.prev != nil {
		obs.Rates = ztunnel.ComputeRates(nr.prev, nr.last)
	}
	obs.Certificates = nr.certs
	h := ztunnel.Evaluate(obs, time.Now(), ztunnel.DefaultThresholds())
	for _, rs := range h.Reasons {
		if rs.Severity == ztunnel.StateWarning {
			nr.res.Warnings = append(nr.res.Warnings, rs.Message)
		}
	}
	if h.State >= ztunnel.StateUnhealthy {
		return fmt.Errorf("health check: %s (%s)", h.State, h.Summary())
	}
	if len(nr.res.Warnings) > 0 {
		nr.say("healthy with warnings: %s", strings.Join(nr.res.Warnings, "; "))
	}
	return nil
}

func setUnschedulable(ctx context.Context, kc kubernetes.Interface, node string, v bool) error {
	patch := fmt.Appendf(nil, `{"spec":{"unschedulable":%t}}`, v)
	// A cordon change must land even while the run is being cancelled.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := kc.CoreV1().Nodes().Patch(wctx, node, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		verb := "cordon"
		if !v {
			verb = "uncordon"
		}
		return fmt.Errorf("%s node %s: %w", verb, node, err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func shortMsg(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Message != "" {
		return st.Status().Message
	}
	return err.Error()
}
