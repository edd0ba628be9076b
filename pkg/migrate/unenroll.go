package migrate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// UnenrollOptions tune Unenroll.
type UnenrollOptions struct {
	Workers  int
	Observer Observer
	// GatewayGVR is where waypoints live; empty skips waypoint removal.
	GatewayGVR schema.GroupVersionResource
	// PolicyGVR is where AuthorizationPolicies live (journaled L7 moves).
	PolicyGVR schema.GroupVersionResource
	// WaypointTimeout bounds the wait for a waypoint that a restored
	// istio.io/use-waypoint label names to be Programmed.
	WaypointTimeout time.Duration
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
	errs := make([]error, len(names))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(opts.Workers, max(1, len(names))) {
		wg.Go(func() {
			for i := range jobs {
				results[i], errs[i] = unenrollOne(ctx, kc, dc, names[i], opts)
			}
		})
	}
	for i := range names {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	var failed []error
	for i, r := range results {
		if r.Error != "" {
			// Wrapped, so the command layer sees the condition (a
			// waypoint not Programmed in time, a missing right).
			failed = append(failed, fmt.Errorf("unenroll namespace %q: %s%w", r.Namespace, r.Error, silent{errs[i]}))
		}
	}
	return results, errors.Join(failed...)
}

func unenrollOne(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, name string, opts UnenrollOptions) (Result, error) {
	res := Result{Namespace: name}
	if err := ctx.Err(); err != nil {
		res.Outcome, res.Error = OutcomeNotStarted, err.Error()
		return res, err
	}
	nsMissing := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		res = Result{Namespace: name}
		ns, err := kc.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			nsMissing = apierrors.IsNotFound(err)
			return err
		}
		j, _, err := ReadJournal(ns.Annotations)
		if err != nil {
			return err
		}
		facts, err := readUnenrollFacts(ctx, kc, dc, ns, j, opts)
		if err != nil {
			return err
		}
		steps, err := PlanNamespaceUnenroll(NamespaceInfo{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations}, facts)
		if err != nil {
			return err
		}
		if len(steps) == 0 {
			res.Outcome, res.Message = OutcomeNotEnrolled, "nothing to do"
			return nil
		}
		if opts.DryRun {
			// The label patch goes to the API server as a dry run: it
			// validates it and checks the right to patch, storing nothing.
			for _, s := range steps {
				if s.Action == UnenrollLabel {
					if err := patchUnenrollLabels(ctx, kc, dc, opts.GatewayGVR, ns, j, s, true); err != nil {
						return err
					}
				}
			}
			res.Outcome, res.Steps, res.Message = OutcomeWouldUnenroll, steps, describeSteps(steps)
			return nil
		}
		return runUnenrollSteps(ctx, kc, dc, ns, j, facts, steps, opts, &res)
	})
	if err != nil {
		res.Outcome = OutcomeFailed
		if nsMissing {
			res.Error = "namespace not found; list namespaces with kubectl get ns"
		} else {
			res.Error = err.Error()
		}
		return res, err
	}
	if !opts.DryRun && res.Outcome == OutcomeUnenrolled {
		opts.Observer.emit(StepUnenrolled, name, res.Message)
	}
	return res, nil
}

// silent wraps an error so that it matches errors.Is and errors.As but adds
// nothing to the message that already quotes it.
type silent struct{ err error }

func (s silent) Error() string { return "" }
func (s silent) Unwrap() error { return s.err }

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
