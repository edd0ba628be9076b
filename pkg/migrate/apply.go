package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/waypoint"
)

// Step names a point in an enrollment, reported to the observer. Tests
// cancel the context at each step to prove interruption safety.
type Step string

// Steps of Apply, Verify and RestartSidecars.
const (
	StepValidated       Step = "validated"        // every check passed; no write yet
	StepBeforePatch     Step = "before-patch"     // about to write journal + labels of Namespace
	StepPatched         Step = "patched"          // journal + labels written for Namespace
	StepUnchanged       Step = "unchanged"        // Namespace needed no change
	StepWaypointCreated Step = "waypoint-created" // waypoint Gateway created in Namespace
	StepWaypointReady   Step = "waypoint-ready"   // istio.io/use-waypoint set on Namespace
	StepVerifyStarted   Step = "verify-started"   // the pod watch is synced
	StepVerifyProgress  Step = "verify-progress"  // Message has counts
	StepRestarting      Step = "restarting"       // rollout restart of Message in Namespace
	StepRestarted       Step = "restarted"        // rollout of Message complete
	StepWaitingPDB      Step = "waiting-pdb"      // PDB Message allows no disruption yet
	StepUnenrolled      Step = "unenrolled"
)

// Event is one progress report.
type Event struct {
	Step      Step
	Namespace string
	Message   string
}

// Observer receives progress events. It must be safe for concurrent use.
type Observer func(Event)

func (o Observer) emit(step Step, ns, msg string) {
	if o != nil {
		o(Event{Step: step, Namespace: ns, Message: msg})
	}
}

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// Workers bounds concurrent namespace patches (default 32).
	Workers int
	// WaypointTimeout bounds the wait for a waypoint to be Programmed (default 2m).
	WaypointTimeout time.Duration
	Observer        Observer
	// Now is the clock for journal timestamps (tests); default time.Now.
	Now func() time.Time
}

// Outcomes of one namespace.
const (
	OutcomeEnrolled        = "enrolled"
	OutcomeAlreadyEnrolled = "already enrolled"
	OutcomeUnenrolled      = "unenrolled"
	OutcomeNotEnrolled     = "not enrolled"
	OutcomeWouldUnenroll   = "would unenroll"
	OutcomeFailed          = "failed"
	OutcomeNotStarted      = "not started"
)

// Result is what happened to one namespace.
type Result struct {
	Namespace string `json:"namespace"`
	Outcome   string `json:"outcome"`
	Message   string `json:"message,omitempty"`
	Error     string `json:"error,omitempty"`
	// Steps are unenroll's steps: the ones it would take (dry run) or took.
	Steps []UnenrollStep `json:"steps,omitempty"`
}

// Access is one permission a run needs.
type Access = kube.Permission

// ErrNoGatewayAPI marks a plan that creates a waypoint on a cluster without
// the Gateway API CRDs.
var ErrNoGatewayAPI = errors.New("a waypoint needs the Gateway API CRDs, which are not installed")

// ErrForbidden marks a missing permission found before any write; it is
// kube.ErrForbidden.
var ErrForbidden = kube.ErrForbidden

// CheckAccess asks the API server whether the current identity holds every
// permission (kube.Require); it returns one error naming all that are
// missing (at most four, then a count).
func CheckAccess(ctx context.Context, kc kubernetes.Interface, need []Access) error {
	err := kube.Require(ctx, kc, need)
	var fe *kube.ForbiddenError
	if errors.As(err, &fe) {
		return fmt.Errorf("%w: the current identity may not %s; nothing was changed; ask a cluster admin for these permissions or use another context",
			ErrForbidden, listShort(fe.Strings(), 4))
	}
	return err
}

// EnrollAccess lists the permissions an enrollment of plan needs.
func EnrollAccess(plan *Plan, verify, restart bool) []Access {
	need := []Access{
		{Verb: "get", Resource: "namespaces"},
		{Verb: "patch", Resource: "namespaces"},
	}
	if verify || restart {
		need = append(need, Access{Verb: "list", Resource: "pods"}, Access{Verb: "watch", Resource: "pods"})
	}
	for _, n := range plan.Namespaces {
		if n.WaypointCreate != "" {
			need = append(need, Access{Verb: "create", Group: plan.GatewayGVR.Group, Resource: plan.GatewayGVR.Resource, Namespace: n.Name},
				Access{Verb: "watch", Group: plan.GatewayGVR.Group, Resource: plan.GatewayGVR.Resource, Namespace: n.Name})
		}
		if len(n.Moves) > 0 {
			for _, v := range []string{"create", "get", "delete"} {
				need = append(need, Access{Verb: v, Group: plan.PolicyGVR.Group, Resource: plan.PolicyGVR.Resource, Namespace: n.Name})
			}
			need = append(need, Access{Verb: "list", Group: plan.GatewayGVR.Group, Resource: plan.GatewayGVR.Resource, Namespace: n.Name},
				Access{Verb: "watch", Group: plan.GatewayGVR.Group, Resource: plan.GatewayGVR.Resource, Namespace: n.Name},
				Access{Verb: "get", Group: plan.GatewayGVR.Group, Resource: plan.GatewayGVR.Resource, Namespace: n.Name})
			if journalNeedsConfigMap(n.Moves) {
				// The originals go to a ConfigMap the journal names.
				for _, v := range []string{"create", "get", "update"} {
					need = append(need, Access{Verb: v, Resource: "configmaps", Namespace: n.Name})
				}
			}
		}
		if restart && n.Pods.Sidecar > 0 {
			for _, r := range []string{"deployments", "statefulsets", "daemonsets"} {
				need = append(need, Access{Verb: "patch", Group: "apps", Resource: r, Namespace: n.Name},
					Access{Verb: "watch", Group: "apps", Resource: r, Namespace: n.Name})
			}
			need = append(need, Access{Verb: "list", Group: "policy", Resource: "poddisruptionbudgets", Namespace: n.Name})
		}
	}
	return need
}

// Apply enrolls every namespace of the plan whose action is enroll. Each
// namespace gets its journal and its label change in one merge patch carrying
// the resourceVersion it was computed from, retried on conflict; a namespace
// is therefore either untouched or fully enrolled with its journal. Patches
// run on opts.Workers workers. Apply refuses a plan with blocked namespaces.
// Results come back in plan order; the error is the first failure.
func Apply(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, plan *Plan, opts ApplyOptions) ([]Result, error) {
	if b := plan.Blocked(); len(b) > 0 {
		return nil, fmt.Errorf("%w: namespace %q has blockers; remove them", ErrBlocked, b[0].Name)
	}
	if opts.Workers <= 0 {
		opts.Workers = 32
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WaypointTimeout == 0 {
		opts.WaypointTimeout = 2 * time.Minute
	}
	for _, n := range plan.Namespaces {
		if n.WaypointCreate != "" && plan.GatewayGVR.Resource == "" {
			return nil, fmt.Errorf("enroll namespace %q: %w", n.Name, ErrNoGatewayAPI)
		}
	}
	results := make([]Result, len(plan.Namespaces))
	errs := make([]error, len(plan.Namespaces))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(opts.Workers, max(1, len(plan.Namespaces))) {
		wg.Go(func() {
			for i := range jobs {
				np := &plan.Namespaces[i]
				switch {
				case len(np.Moves) > 0 && np.Action == ActionEnroll:
					results[i], errs[i] = enrollL7(ctx, kc, dc, plan, np, opts)
				default:
					results[i], errs[i] = enrollOne(ctx, kc, dc, plan, np, opts)
				}
			}
		})
	}
feed:
	for i := range plan.Namespaces {
		select {
		case jobs <- i:
		case <-ctx.Done():
			for j := i; j < len(plan.Namespaces); j++ {
				results[j] = Result{Namespace: plan.Namespaces[j].Name, Outcome: OutcomeNotStarted, Error: ctx.Err().Error()}
				errs[j] = ctx.Err()
			}
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return results, fmt.Errorf("enroll namespace %q: %w; namespaces not yet enrolled are untouched: run the command again to finish", results[i].Namespace, err)
		}
	}
	return results, nil
}

func enrollOne(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, plan *Plan, np *NamespacePlan, opts ApplyOptions) (Result, error) {
	res := Result{Namespace: np.Name}
	fail := func(err error) (Result, error) {
		res.Outcome, res.Error = OutcomeFailed, err.Error()
		return res, err
	}
	if err := ctx.Err(); err != nil {
		res.Outcome, res.Error = OutcomeNotStarted, err.Error()
		return res, err
	}
	labels, annotations, rv := np.Labels, np.Annotations, np.ResourceVersion
	first := true
	patched := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			ns, err := kc.CoreV1().Namespaces().Get(ctx, np.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			labels, annotations, rv = ns.Labels, ns.Annotations, ns.ResourceVersion
		}
		first = false
		ch := enrollChanges(labels)
		j, hasJournal, err := ReadJournal(annotations)
		if err != nil {
			return err
		}
		if ch.Empty() && (hasJournal || np.WaypointCreate == "") {
			// Already enrolled: a re-run after an interruption converges here.
			return nil
		}
		if !hasJournal || labels[ambient.LabelDataplaneMode] != ambient.DataplaneAmbient {
			// No journal, or a stale one from an enrollment undone by hand:
			// record the state as it is now.
			j = newJournal(opts.Now(), labels, ch, np.WaypointCreate)
		} else if np.WaypointCreate != "" {
			j.Waypoint = np.WaypointCreate
		}
		patch, err := mergePatch(rv, ch.Add, ch.Remove, map[string]any{AnnotationJournal: j.encode()})
		if err != nil {
			return err
		}
		opts.Observer.emit(StepBeforePatch, np.Name, ch.String())
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := kc.CoreV1().Namespaces().Patch(ctx, np.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: ManagedByValue}); err != nil {
			return err
		}
		patched = true
		return nil
	})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return fail(fmt.Errorf("namespace was deleted while enrolling: %w", err))
		}
		return fail(err)
	}
	if patched {
		res.Outcome = OutcomeEnrolled
		opts.Observer.emit(StepPatched, np.Name, "")
	} else {
		res.Outcome = OutcomeAlreadyEnrolled
		opts.Observer.emit(StepUnchanged, np.Name, "")
	}
	if np.WaypointCreate != "" {
		if err := ensureWaypoint(ctx, kc, dc, plan, np, opts); err != nil {
			return fail(err)
		}
		res.Message = "waypoint " + np.WaypointCreate + " programmed"
	}
	return res, nil
}

// enrollChanges computes the label change from the namespace's current labels.
func enrollChanges(l map[string]string) LabelChanges {
	var ch LabelChanges
	if l[ambient.LabelDataplaneMode] != ambient.DataplaneAmbient {
		ch.Add = map[string]string{ambient.LabelDataplaneMode: ambient.DataplaneAmbient}
	}
	for _, k := range []string{ambient.LabelInjection, ambient.LabelRev} {
		if _, ok := l[k]; ok {
			ch.Remove = append(ch.Remove, k)
		}
	}
	return ch
}

// mergePatch builds a JSON merge patch of labels and annotations with a
// resourceVersion precondition: the API server answers 409 Conflict when the
// namespace changed since it was read.
func mergePatch(rv string, add map[string]string, remove []string, annotations map[string]any) ([]byte, error) {
	lbl := map[string]any{}
	for k, v := range add {
		lbl[k] = v
	}
	for _, k := range remove {
		lbl[k] = nil
	}
	meta := map[string]any{}
	if rv != "" {
		meta["resourceVersion"] = rv
	}
	if len(lbl) > 0 {
		meta["labels"] = lbl
	}
	if len(annotations) > 0 {
		meta["annotations"] = annotations
	}
	return json.Marshal(map[string]any{"metadata": meta})
}

// ensureWaypoint creates the waypoint Gateway (if absent), waits until it is
// Programmed, then sets istio.io/use-waypoint on the namespace (through the
// one gated path, labelUseWaypoint).
func ensureWaypoint(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, plan *Plan, np *NamespacePlan, opts ApplyOptions) error {
	name := np.WaypointCreate
	g := waypoint.GVRs{Gateway: plan.GatewayGVR}
	if _, err := waypoint.Ensure(ctx, dc, g, waypoint.ApplyConfig{Namespace: np.Name, Name: name}); err != nil {
		return err
	}
	opts.Observer.emit(StepWaypointCreated, np.Name, name)
	if _, err := waypoint.WaitProgrammed(ctx, dc.Resource(plan.GatewayGVR).Namespace(np.Name), np.Name, name, opts.WaypointTimeout); err != nil {
		return err
	}
	if err := labelUseWaypoint(ctx, kc, dc, plan.GatewayGVR, np.Name, name); err != nil {
		return err
	}
	opts.Observer.emit(StepWaypointReady, np.Name, name)
	return nil
}

// ResultsSummary counts outcomes, for one progress line.
func ResultsSummary(rs []Result) string {
	c := map[string]int{}
	for _, r := range rs {
		c[r.Outcome]++
	}
	var parts []string
	for _, k := range sortedKeys(c) {
		parts = append(parts, fmt.Sprintf("%d %s", c[k], k))
	}
	return strings.Join(parts, ", ")
}
