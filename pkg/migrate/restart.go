package migrate

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// WorkloadRef names one workload to restart.
type WorkloadRef struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
}

func (w WorkloadRef) String() string { return w.Namespace + "/" + w.Kind + "/" + w.Name }

// SidecarWorkloads lists, in a stable order, the workloads that own pods
// awaiting their next rollout in a verification report.
func SidecarWorkloads(r *VerifyReport) []WorkloadRef {
	seen := map[WorkloadRef]bool{}
	var out []WorkloadRef
	for _, ns := range r.Namespaces {
		for _, p := range ns.Pods {
			if p.State != PodAwaitingRollout {
				continue
			}
			kind, name, _ := strings.Cut(p.Workload, "/")
			w := WorkloadRef{Namespace: ns.Namespace, Kind: kind, Name: name}
			if !seen[w] {
				seen[w] = true
				out = append(out, w)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// RestartOptions tune RestartSidecars.
type RestartOptions struct {
	// RolloutTimeout bounds each workload's rollout (default 5m).
	RolloutTimeout time.Duration
	// PDBTimeout bounds the wait for a PodDisruptionBudget to allow a disruption (default 5m).
	PDBTimeout time.Duration
	Observer   Observer
	Now        func() time.Time
}

// RestartResult is what happened to one workload.
type RestartResult struct {
	Workload WorkloadRef `json:"workload"`
	Outcome  string      `json:"outcome"`
	Message  string      `json:"message,omitempty"`
}

// Restart outcomes.
const (
	RestartDone    = "restarted"
	RestartSkipped = "skipped"
	RestartFailed  = "failed"
)

// RestartSidecars restarts the workloads one at a time, the way
// `kubectl rollout restart` does (a pod-template annotation), so their new
// pods come up without a sidecar. Before each restart it waits until every
// PodDisruptionBudget covering the workload's pods allows a disruption;
// after it, it watches the rollout to completion. It stops at the first
// failure and returns the results so far.
func RestartSidecars(ctx context.Context, kc kubernetes.Interface, ws []WorkloadRef, opts RestartOptions) ([]RestartResult, error) {
	if opts.RolloutTimeout <= 0 {
		opts.RolloutTimeout = 5 * time.Minute
	}
	if opts.PDBTimeout <= 0 {
		opts.PDBTimeout = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var out []RestartResult
	for _, w := range ws {
		msg, err := restartOne(ctx, kc, w, opts)
		switch {
		case err != nil:
			out = append(out, RestartResult{Workload: w, Outcome: RestartFailed, Message: err.Error()})
			return out, fmt.Errorf("restart %s %s/%s: %w; the remaining %d workload(s) were not restarted", strings.ToLower(w.Kind), w.Namespace, w.Name, err, len(ws)-len(out))
		case msg != "":
			out = append(out, RestartResult{Workload: w, Outcome: RestartSkipped, Message: msg})
		default:
			out = append(out, RestartResult{Workload: w, Outcome: RestartDone})
		}
	}
	return out, nil
}

func restartOne(ctx context.Context, kc kubernetes.Interface, w WorkloadRef, opts RestartOptions) (skip string, err error) {
	apps := kc.AppsV1()
	var tmplLabels map[string]string
	switch w.Kind {
	case "Deployment":
		d, err := apps.Deployments(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		tmplLabels = d.Spec.Template.Labels
	case "StatefulSet":
		s, err := apps.StatefulSets(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		tmplLabels = s.Spec.Template.Labels
	case "DaemonSet":
		d, err := apps.DaemonSets(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		tmplLabels = d.Spec.Template.Labels
	default:
		return fmt.Sprintf("a %s cannot be rolled out; recreate its pods yourself", w.Kind), nil
	}
	if err := waitPDBs(ctx, kc, w, tmplLabels, opts); err != nil {
		return "", err
	}
	opts.Observer.emit(StepRestarting, w.Namespace, w.Kind+"/"+w.Name)
	patch := fmt.Appendf(nil, `{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, AnnotationRestartedAt, opts.Now().UTC().Format(time.RFC3339))
	po := metav1.PatchOptions{FieldManager: ManagedByValue}
	var gen int64
	switch w.Kind {
	case "Deployment":
		d, err := apps.Deployments(w.Namespace).Patch(ctx, w.Name, types.StrategicMergePatchType, patch, po)
		if err != nil {
			return "", err
		}
		gen = d.Generation
	case "StatefulSet":
		s, err := apps.StatefulSets(w.Namespace).Patch(ctx, w.Name, types.StrategicMergePatchType, patch, po)
		if err != nil {
			return "", err
		}
		gen = s.Generation
	case "DaemonSet":
		d, err := apps.DaemonSets(w.Namespace).Patch(ctx, w.Name, types.StrategicMergePatchType, patch, po)
		if err != nil {
			return "", err
		}
		gen = d.Generation
	}
	if err := waitRollout(ctx, kc, w, gen, opts.RolloutTimeout); err != nil {
		return "", err
	}
	opts.Observer.emit(StepRestarted, w.Namespace, w.Kind+"/"+w.Name)
	return "", nil
}

// waitPDBs waits until every PDB selecting the workload's pods allows at
// least one disruption: restarting one more pod must not break the budget.
func waitPDBs(ctx context.Context, kc kubernetes.Interface, w WorkloadRef, podLabels map[string]string, opts RestartOptions) error {
	pdbs := kc.PolicyV1().PodDisruptionBudgets(w.Namespace)
	list, err := pdbs.List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list PodDisruptionBudgets in %s: %w", w.Namespace, err)
	}
	for _, pdb := range list.Items {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(podLabels)) {
			continue
		}
		if pdbAllows(&pdb) {
			continue
		}
		opts.Observer.emit(StepWaitingPDB, w.Namespace, pdb.Name)
		wctx, cancel := context.WithTimeout(ctx, opts.PDBTimeout)
		name := pdb.Name
		lw := &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
				return pdbs.List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
				return pdbs.Watch(ctx, o)
			},
		}
		_, err = watchtools.UntilWithSync(wctx, lw, &policyv1.PodDisruptionBudget{}, nil, func(e watch.Event) (bool, error) {
			p, ok := e.Object.(*policyv1.PodDisruptionBudget)
			return ok && pdbAllows(p), nil
		})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("PodDisruptionBudget %s/%s allowed no disruption within %s; wait for its pods to be ready or relax the budget", w.Namespace, name, opts.PDBTimeout)
		}
	}
	return nil
}

func pdbAllows(p *policyv1.PodDisruptionBudget) bool {
	return p.Status.ObservedGeneration >= p.Generation && p.Status.DisruptionsAllowed > 0
}

// waitRollout watches the workload until the rollout of generation gen is
// complete, as `kubectl rollout status` judges it.
func waitRollout(ctx context.Context, kc kubernetes.Interface, w WorkloadRef, gen int64, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	apps := kc.AppsV1()
	var lw *cache.ListWatch
	var obj runtime.Object
	switch w.Kind {
	case "Deployment":
		c := apps.Deployments(w.Namespace)
		obj, lw = &appsv1.Deployment{}, kube.NamedListWatch(w.Name, c.List, c.Watch)
	case "StatefulSet":
		c := apps.StatefulSets(w.Namespace)
		obj, lw = &appsv1.StatefulSet{}, kube.NamedListWatch(w.Name, c.List, c.Watch)
	default:
		c := apps.DaemonSets(w.Namespace)
		obj, lw = &appsv1.DaemonSet{}, kube.NamedListWatch(w.Name, c.List, c.Watch)
	}
	_, err := watchtools.UntilWithSync(wctx, lw, obj, nil, func(e watch.Event) (bool, error) {
		if e.Type == watch.Deleted {
			return false, fmt.Errorf("%s was deleted during its rollout", w)
		}
		return rolloutDone(e.Object, gen), nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if wctx.Err() != nil {
			return fmt.Errorf("rollout not complete after %s; inspect it with kubectl rollout status %s/%s -n %s", timeout, strings.ToLower(w.Kind), w.Name, w.Namespace)
		}
		return err
	}
	return nil
}

func rolloutDone(o runtime.Object, gen int64) bool {
	switch d := o.(type) {
	case *appsv1.Deployment:
		// gen is the generation our restart patch produced; the object's
		// own generation may be newer still, and ambient's rule waits for it.
		return d.Status.ObservedGeneration >= gen && ambient.DeploymentReadiness(d).RolledOut
	case *appsv1.StatefulSet:
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		s := d.Status
		return s.ObservedGeneration >= gen && s.UpdatedReplicas == want && s.ReadyReplicas == want && s.CurrentRevision == s.UpdateRevision
	case *appsv1.DaemonSet:
		return d.Status.ObservedGeneration >= gen && ambient.DaemonSetReadiness(d).RolledOut
	}
	return false
}
