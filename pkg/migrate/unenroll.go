package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// UnenrollOptions tune Unenroll.
type UnenrollOptions struct {
	Workers  int
	Observer Observer
	// GatewayGVR is where waypoints live; empty skips waypoint removal.
	GatewayGVR schema.GroupVersionResource
	// PolicyGVR is where AuthorizationPolicies live (journaled L7 moves).
	PolicyGVR schema.GroupVersionResource
	// DryRun sends each patch as a server-side dry run: the API server
	// validates it and checks permissions, nothing is stored, and the result
	// says which label changes would be made.
	DryRun bool
}

// Unenroll puts back exactly the labels recorded in each namespace's journal
// and removes the journal, in one patch guarded by resourceVersion. Without a
// journal it removes the ambient label and says so in the result. A waypoint
// the enrollment created (and labelled as ours) is deleted. Running it twice
// is harmless: the second run finds nothing to do.
func Unenroll(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, names []string, opts UnenrollOptions) ([]Result, error) {
	if opts.Workers <= 0 {
		opts.Workers = 32
	}
	results := make([]Result, len(names))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(opts.Workers, max(1, len(names))) {
		wg.Go(func() {
			for i := range jobs {
				results[i] = unenrollOne(ctx, kc, dc, names[i], opts)
			}
		})
	}
	for i := range names {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	var errs []error
	for _, r := range results {
		if r.Error != "" {
			errs = append(errs, fmt.Errorf("unenroll namespace %q: %s", r.Namespace, r.Error))
		}
	}
	return results, errors.Join(errs...)
}

func unenrollOne(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, name string, opts UnenrollOptions) Result {
	res := Result{Namespace: name}
	if err := ctx.Err(); err != nil {
		res.Outcome, res.Error = OutcomeNotStarted, err.Error()
		return res
	}
	var waypoint string
	l7done := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ns, err := kc.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		j, has, err := ReadJournal(ns.Annotations)
		if err != nil {
			return err
		}
		var lbl map[string]any
		ann := map[string]any{}
		switch {
		case has && len(j.Moves) > 0 && !opts.DryRun:
			msg, err := unenrollL7(ctx, kc, dc, ns, j, opts)
			if err != nil {
				return err
			}
			res.Outcome, res.Message = OutcomeUnenrolled, msg
			l7done = true
			return nil
		case has:
			lbl = j.restoreLabels(ns.Labels)
			ann[AnnotationJournal] = nil
			waypoint = j.Waypoint
			res.Outcome, res.Message = OutcomeUnenrolled, "labels restored from the journal of "+j.Time.Format("2006-01-02T15:04:05Z")
		case ns.Labels[ambient.LabelDataplaneMode] == ambient.DataplaneAmbient:
			lbl = map[string]any{ambient.LabelDataplaneMode: nil}
			res.Outcome, res.Message = OutcomeUnenrolled, "no journal found: removed "+ambient.LabelDataplaneMode+" only; sidecar injection labels were not restored"
		default:
			res.Outcome, res.Message = OutcomeNotEnrolled, "nothing to do"
			return nil
		}
		meta := map[string]any{"resourceVersion": ns.ResourceVersion, "annotations": ann}
		if len(lbl) > 0 {
			meta["labels"] = lbl
		}
		if len(ann) == 0 {
			delete(meta, "annotations")
		}
		patch, err := json.Marshal(map[string]any{"metadata": meta})
		if err != nil {
			return err
		}
		po := metav1.PatchOptions{FieldManager: ManagedByValue}
		if opts.DryRun {
			po.DryRun = []string{metav1.DryRunAll}
			res.Outcome = OutcomeWouldUnenroll
			res.Message = "labels " + describeLabelPatch(lbl) + " (" + res.Message + ")"
		}
		_, err = kc.CoreV1().Namespaces().Patch(ctx, name, types.MergePatchType, patch, po)
		return err
	})
	if err != nil {
		res.Outcome = OutcomeFailed
		if apierrors.IsNotFound(err) {
			res.Error = "namespace not found; list namespaces with kubectl get ns"
		} else {
			res.Error = err.Error()
		}
		return res
	}
	if l7done {
		opts.Observer.emit(StepUnenrolled, name, res.Message)
		return res
	}
	if opts.DryRun {
		if waypoint != "" {
			res.Message += "; waypoint " + waypoint + " would be deleted"
		}
		return res
	}
	if waypoint != "" && opts.GatewayGVR.Resource != "" && dc != nil {
		ri := dc.Resource(opts.GatewayGVR).Namespace(name)
		gw, err := ri.Get(ctx, waypoint, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			res.Message += fmt.Sprintf("; waypoint %s not removed: %v", waypoint, err)
		case gw.GetLabels()[LabelManagedBy] == ManagedByValue:
			if err := ri.Delete(ctx, waypoint, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				res.Message += fmt.Sprintf("; waypoint %s not removed: %v", waypoint, err)
			} else {
				res.Message += "; waypoint " + waypoint + " deleted"
			}
		}
	}
	opts.Observer.emit(StepUnenrolled, name, res.Message)
	return res
}

// describeLabelPatch renders a merge-patch label map as kubectl label
// arguments: "a=b c-", sorted by key.
func describeLabelPatch(lbl map[string]any) string {
	keys := make([]string, 0, len(lbl))
	for k := range lbl {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if v, ok := lbl[k].(string); ok {
			parts = append(parts, k+"="+v)
		} else {
			parts = append(parts, k+"-")
		}
	}
	if len(parts) == 0 {
		return "unchanged"
	}
	return strings.Join(parts, " ")
}
