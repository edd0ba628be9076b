package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/waypoint"
)

// L7 phases, journaled on the namespace before each is taken.
const (
	PhaseWaypoint        = "waypoint"         // create the waypoint, wait until Programmed
	PhaseCopies          = "copies"           // create the waypoint-targeted copies
	PhaseUseWaypoint     = "use-waypoint"     // label istio.io/use-waypoint
	PhaseDataplane       = "dataplane"        // label dataplane-mode, remove injection
	PhaseDeleteOriginals = "delete-originals" // delete the selector-based originals
	PhaseDone            = "done"
	PhaseUnenrolling     = "unenrolling" // labels restored; copies and waypoint being removed
)

// Steps for the observer.
const (
	StepJournaled       Step = "journaled"        // Message: the phase about to be taken
	StepCopyCreated     Step = "copy-created"     // Message: the copy's name
	StepOriginalDeleted Step = "original-deleted" // Message: the original's name
)

// ErrWaypointNotReady marks a refusal to label use-waypoint to a waypoint
// that is missing or not Programmed (that would fail open).
var ErrWaypointNotReady = errors.New("waypoint missing or not Programmed")

// OriginalsConfigMap is the ConfigMap the originals go to when the journal
// would not fit the namespace's annotations.
const OriginalsConfigMap = "kubectl-ambient-enroll-originals"

// journalBudget keeps the journal well under the 256 KiB the API server
// allows for all of an object's annotations together.
const journalBudget = 128 << 10

// labelUseWaypoint is enroll's path that writes istio.io/use-waypoint to a
// waypoint: it reads the Gateway first and refuses unless it exists, is a
// waypoint and is Programmed for its current generation (checkProgrammed,
// which unenroll's restore of the label goes through too).
func labelUseWaypoint(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, gvr schema.GroupVersionResource, ns, name string) error {
	if err := checkProgrammed(ctx, dc, gvr, ns, name); err != nil {
		return err
	}
	patch, _ := mergePatch("", map[string]string{ambient.LabelUseWaypoint: name}, nil, nil)
	if _, err := kc.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: ManagedByValue}); err != nil {
		return fmt.Errorf("label namespace %q with %s=%s: %w", ns, ambient.LabelUseWaypoint, name, err)
	}
	return nil
}

// checkProgrammed is the gate in front of every write of
// istio.io/use-waypoint (enroll's and unenroll's restore): the Gateway must
// exist, be a waypoint, and be Programmed for its current generation.
func checkProgrammed(ctx context.Context, dc dynamic.Interface, gvr schema.GroupVersionResource, ns, name string) error {
	if gvr.Resource == "" || dc == nil {
		return fmt.Errorf("label namespace %q with %s=%s: %w: the Gateway API is not served", ns, ambient.LabelUseWaypoint, name, ErrWaypointNotReady)
	}
	gw, err := waypoint.Get(ctx, dc.Resource(gvr).Namespace(ns), ns, name)
	if err != nil {
		return fmt.Errorf("label namespace %q with %s=%s: %w: %w", ns, ambient.LabelUseWaypoint, name, ErrWaypointNotReady, err)
	}
	if s, r, m := waypoint.Programmed(gw); s != metav1.ConditionTrue {
		return fmt.Errorf("label namespace %q with %s=%s: %w (Programmed=%s %s: %s); traffic would skip L7 policy", ns, ambient.LabelUseWaypoint, name, ErrWaypointNotReady, s, r, m)
	}
	return nil
}

// writeJournal stores j on the namespace (guarded by rv when set), moving
// the originals into a ConfigMap when the journal would be too large.
func writeJournal(ctx context.Context, kc kubernetes.Interface, ns, rv string, j *Journal) error {
	enc := j.encode()
	if len(enc) > journalBudget && j.OriginalsConfigMap == "" {
		raw, err := json.Marshal(j.Moves)
		if err != nil {
			return err
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: OriginalsConfigMap, Namespace: ns, Labels: map[string]string{LabelManagedBy: ManagedByValue}},
			Data: map[string]string{"originals.json": string(raw)}}
		if err := putOriginals(ctx, kc, cm); err != nil {
			return fmt.Errorf("journal the original policies of namespace %q in ConfigMap %s: %w", ns, OriginalsConfigMap, err)
		}
		j.OriginalsConfigMap = OriginalsConfigMap
		for i := range j.Moves {
			j.Moves[i].Object = nil
		}
		enc = j.encode()
	}
	patch, err := mergePatch(rv, nil, nil, map[string]any{AnnotationJournal: enc})
	if err != nil {
		return err
	}
	_, err = kc.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: ManagedByValue})
	return err
}

// journalNeedsConfigMap says whether a journal holding these moves would
// exceed the annotation budget, so writeJournal will put the originals in
// a ConfigMap (the journal's other fields are small: 4 KiB covers them).
func journalNeedsConfigMap(moves []PolicyMove) bool {
	jm := make([]JournalMove, len(moves))
	for i, m := range moves {
		jm[i] = JournalMove{Original: m.Original, Copy: m.Copy, Object: m.OriginalObject}
	}
	raw, err := json.Marshal(jm)
	return err != nil || len(raw)+4<<10 > journalBudget
}

// putOriginals creates the originals ConfigMap, or replaces the data of one
// an interrupted run left behind; a ConfigMap of that name this tool did
// not write is left alone and is an error.
func putOriginals(ctx context.Context, kc kubernetes.Interface, cm *corev1.ConfigMap) error {
	cms := kc.CoreV1().ConfigMaps(cm.Namespace)
	_, err := cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: ManagedByValue})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur, err := cms.Get(ctx, cm.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if cur.Labels[LabelManagedBy] != ManagedByValue {
		return fmt.Errorf("ConfigMap %s/%s exists and was not written by this tool; rename or delete it", cm.Namespace, cm.Name)
	}
	cur.Data = cm.Data
	_, err = cms.Update(ctx, cur, metav1.UpdateOptions{FieldManager: ManagedByValue})
	return err
}

// originals returns the journaled originals, from the ConfigMap when the
// journal put them there.
func (j *Journal) originals(ctx context.Context, kc kubernetes.Interface, ns string) ([]JournalMove, error) {
	if j.OriginalsConfigMap == "" {
		return j.Moves, nil
	}
	cm, err := kc.CoreV1().ConfigMaps(ns).Get(ctx, j.OriginalsConfigMap, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read the journaled originals from ConfigMap %s/%s: %w", ns, j.OriginalsConfigMap, err)
	}
	var mv []JournalMove
	if err := json.Unmarshal([]byte(cm.Data["originals.json"]), &mv); err != nil {
		return nil, fmt.Errorf("read ConfigMap %s/%s: %w", ns, j.OriginalsConfigMap, err)
	}
	return mv, nil
}

// enrollL7 enrolls a namespace whose plan moves L7 policies, in Istio's
// documented order; every phase is journaled before it is taken and every
// phase is idempotent, so a re-run after any interruption converges. The
// originals are deleted later, by finishL7, once capture is verified.
func enrollL7(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, plan *Plan, np *NamespacePlan, opts ApplyOptions) (Result, error) {
	res := Result{Namespace: np.Name}
	fail := func(err error) (Result, error) {
		res.Outcome, res.Error = OutcomeFailed, err.Error()
		return res, err
	}
	nsObj, err := kc.CoreV1().Namespaces().Get(ctx, np.Name, metav1.GetOptions{})
	if err != nil {
		return fail(err)
	}
	j, has, err := ReadJournal(nsObj.Annotations)
	if err != nil {
		return fail(err)
	}
	if !has {
		ch := enrollChanges(nsObj.Labels)
		j = newJournal(opts.Now(), nsObj.Labels, ch, np.WaypointCreate)
		if j.Added == nil {
			j.Added = map[string]string{}
		}
		j.Added[ambient.LabelUseWaypoint] = np.Waypoint
	}
	j.UseWaypoint = np.Waypoint
	if np.WaypointCreate != "" && j.Waypoint == "" && !np.WaypointPresent {
		j.Waypoint = np.WaypointCreate
	}
	known := map[string]bool{}
	for _, m := range j.Moves {
		known[m.Original] = true
	}
	for _, m := range np.Moves {
		if !known[m.Original] {
			j.Moves = append(j.Moves, JournalMove{Original: m.Original, Copy: m.Copy, Object: m.OriginalObject})
		}
	}
	rv := nsObj.ResourceVersion
	step := func(phase string) error {
		j.Phase = phase
		if err := ctx.Err(); err != nil {
			return err
		}
		err := writeJournal(ctx, kc, np.Name, rv, j)
		rv = "" // only the first write is guarded: later ones change only our annotation
		if err != nil {
			return fmt.Errorf("journal phase %s: %w", phase, err)
		}
		opts.Observer.emit(StepJournaled, np.Name, phase)
		return ctx.Err()
	}

	// 1. The waypoint, deployed and Programmed, before anything uses it.
	if err := step(PhaseWaypoint); err != nil {
		return fail(err)
	}
	ri := dc.Resource(plan.GatewayGVR).Namespace(np.Name)
	if np.WaypointCreate != "" {
		if _, err := waypoint.Ensure(ctx, dc, waypoint.GVRs{Gateway: plan.GatewayGVR}, waypoint.ApplyConfig{Namespace: np.Name, Name: np.WaypointCreate}); err != nil {
			return fail(err)
		}
		opts.Observer.emit(StepWaypointCreated, np.Name, np.WaypointCreate)
	}
	if _, err := waypoint.WaitProgrammed(ctx, ri, np.Name, np.Waypoint, opts.WaypointTimeout); err != nil {
		return fail(err)
	}

	// 2. Waypoint-targeted copies, same rules.
	if err := step(PhaseCopies); err != nil {
		return fail(err)
	}
	pri := dc.Resource(plan.PolicyGVR).Namespace(np.Name)
	for _, m := range np.Moves {
		u := &unstructured.Unstructured{Object: m.CopyObject}
		if _, err := pri.Create(ctx, u, metav1.CreateOptions{FieldManager: ManagedByValue}); err != nil {
			if !apierrors.IsAlreadyExists(err) {
				return fail(fmt.Errorf("create AuthorizationPolicy %s/%s (copy of %s): %w", np.Name, m.Copy, m.Original, err))
			}
			cur, gerr := pri.Get(ctx, m.Copy, metav1.GetOptions{})
			if gerr != nil || cur.GetAnnotations()[AnnotationCopiedFrom] != m.Original {
				return fail(fmt.Errorf("AuthorizationPolicy %s/%s exists and is not this tool's copy of %s; rename it and run again", np.Name, m.Copy, m.Original))
			}
		}
		opts.Observer.emit(StepCopyCreated, np.Name, m.Copy)
	}

	// 3. use-waypoint, only to a Programmed waypoint.
	if err := step(PhaseUseWaypoint); err != nil {
		return fail(err)
	}
	if err := labelUseWaypoint(ctx, kc, dc, plan.GatewayGVR, np.Name, np.Waypoint); err != nil {
		return fail(err)
	}
	opts.Observer.emit(StepWaypointReady, np.Name, np.Waypoint)

	// 4. dataplane-mode on, injection off.
	if err := step(PhaseDataplane); err != nil {
		return fail(err)
	}
	cur, err := kc.CoreV1().Namespaces().Get(ctx, np.Name, metav1.GetOptions{})
	if err != nil {
		return fail(err)
	}
	ch := enrollChanges(cur.Labels)
	if !ch.Empty() {
		patch, _ := mergePatch(cur.ResourceVersion, ch.Add, ch.Remove, nil)
		opts.Observer.emit(StepBeforePatch, np.Name, ch.String())
		if _, err := kc.CoreV1().Namespaces().Patch(ctx, np.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: ManagedByValue}); err != nil {
			return fail(fmt.Errorf("label namespace %q %s: %w", np.Name, ch.String(), err))
		}
		opts.Observer.emit(StepPatched, np.Name, "")
	}
	res.Outcome = OutcomeEnrolled
	res.Message = fmt.Sprintf("waypoint %s programmed; %d policy copies; originals deleted after verification", np.Waypoint, len(np.Moves))
	return res, nil
}

// finishL7 deletes the selector-based originals (ztunnel would enforce them
// as DENY) once capture is verified, journaling the phase first.
func finishL7(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, plan *Plan, obs Observer) error {
	var errs []error
	for _, np := range plan.Namespaces {
		if len(np.Moves) == 0 || np.Action != ActionEnroll {
			continue
		}
		nsObj, err := kc.CoreV1().Namespaces().Get(ctx, np.Name, metav1.GetOptions{})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		j, has, err := ReadJournal(nsObj.Annotations)
		if err != nil || !has {
			errs = append(errs, fmt.Errorf("namespace %q: no journal before deleting originals: %w", np.Name, err))
			continue
		}
		j.Phase = PhaseDeleteOriginals
		if err := writeJournal(ctx, kc, np.Name, "", j); err != nil {
			errs = append(errs, err)
			continue
		}
		obs.emit(StepJournaled, np.Name, PhaseDeleteOriginals)
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			continue
		}
		pri := dc.Resource(plan.PolicyGVR).Namespace(np.Name)
		for _, m := range j.Moves {
			if err := pri.Delete(ctx, m.Original, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete AuthorizationPolicy %s/%s: %w; run enroll again", np.Name, m.Original, err))
				continue
			}
			obs.emit(StepOriginalDeleted, np.Name, m.Original)
		}
		j.Phase = PhaseDone
		if err := writeJournal(ctx, kc, np.Name, "", j); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// readUnenrollFacts reads what PlanNamespaceUnenroll needs beyond the
// namespace: the journaled originals, which copies exist and whose they
// are, the waypoint enroll created, and the waypoint a restored
// use-waypoint label names.
func readUnenrollFacts(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, ns *corev1.Namespace, j *Journal, opts UnenrollOptions) (UnenrollFacts, error) {
	f := UnenrollFacts{GatewayAPI: opts.GatewayGVR.Resource != "" && dc != nil,
		CopiedFrom: map[string]string{}, Waypoints: map[string]bool{}, Programmed: map[string]string{}}
	if j == nil {
		return f, nil
	}
	if len(j.Moves) > 0 {
		if opts.PolicyGVR.Resource == "" || dc == nil {
			return f, errors.New("the journal holds moved AuthorizationPolicies but the API server does not serve them; install Istio's CRDs first")
		}
		mv, err := j.originals(ctx, kc, ns.Name)
		switch {
		case err != nil && j.Phase == PhaseUnenrolling && j.OriginalsConfigMap != "" && apierrors.IsNotFound(err):
			// An interrupted unenroll deleted the ConfigMap, which it does
			// only after every original is back.
			f.OriginalsGone = true
		case err != nil:
			return f, err
		}
		f.Originals = mv
		pri := dc.Resource(opts.PolicyGVR).Namespace(ns.Name)
		for _, m := range j.Moves {
			cur, err := pri.Get(ctx, m.Copy, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return f, fmt.Errorf("read AuthorizationPolicy %s/%s: %w", ns.Name, m.Copy, err)
			default:
				f.CopiedFrom[m.Copy] = cur.GetAnnotations()[AnnotationCopiedFrom]
			}
		}
	}
	if !f.GatewayAPI {
		return f, nil
	}
	gri := dc.Resource(opts.GatewayGVR).Namespace(ns.Name)
	if j.Waypoint != "" {
		gw, err := gri.Get(ctx, j.Waypoint, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return f, fmt.Errorf("read waypoint %s/%s: %w", ns.Name, j.Waypoint, err)
		default:
			f.Waypoints[j.Waypoint] = gw.GetLabels()[LabelManagedBy] == ManagedByValue
		}
	}
	if wp := restoredWaypoint(j, ns.Labels); wp != "" {
		gw, err := gri.Get(ctx, wp, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return f, fmt.Errorf("read waypoint %s/%s: %w", ns.Name, wp, err)
		default:
			st, r, _ := waypoint.Programmed(gw)
			f.Programmed[wp] = string(st)
			if st != metav1.ConditionTrue && r != "" {
				f.Programmed[wp] += " (" + r + ")"
			}
		}
	}
	return f, nil
}

// restoredWaypoint is the waypoint the journal's restore sets
// istio.io/use-waypoint to ("" when it removes it, leaves it, or sets none).
func restoredWaypoint(j *Journal, current map[string]string) string {
	wp, _ := j.restoreLabels(current)[ambient.LabelUseWaypoint].(string)
	if wp == "none" {
		return ""
	}
	return wp
}

// patchUnenrollLabels sends a label step's patch, guarded by the
// namespace's resourceVersion; a real (not dry-run) patch that sets
// istio.io/use-waypoint back to a waypoint first passes checkProgrammed. With moves the journal stays (phase
// unenrolling) until the last step; without, it goes in the same patch.
func patchUnenrollLabels(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, gvr schema.GroupVersionResource, ns *corev1.Namespace, j *Journal, s UnenrollStep, dry bool) error {
	if j != nil && !dry {
		// Restoring use-waypoint to a waypoint takes enroll's gate.
		if wp := restoredWaypoint(j, ns.Labels); wp != "" {
			if err := checkProgrammed(ctx, dc, gvr, ns.Name, wp); err != nil {
				return err
			}
		}
	}
	meta := map[string]any{"resourceVersion": ns.ResourceVersion}
	if len(s.labels) > 0 {
		meta["labels"] = s.labels
	}
	switch {
	case j == nil:
	case len(j.Moves) > 0:
		jj := *j
		jj.Phase = PhaseUnenrolling
		meta["annotations"] = map[string]any{AnnotationJournal: jj.encode()}
	default:
		meta["annotations"] = map[string]any{AnnotationJournal: nil}
	}
	patch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return err
	}
	po := metav1.PatchOptions{FieldManager: ManagedByValue}
	if dry {
		po.DryRun = []string{metav1.DryRunAll}
	}
	if _, err := kc.CoreV1().Namespaces().Patch(ctx, ns.Name, types.MergePatchType, patch, po); err != nil {
		return fmt.Errorf("label namespace %q %s: %w", ns.Name, describeLabelPatch(s.labels), err)
	}
	return nil
}

// runUnenrollSteps takes the planned steps in order and records each one
// taken in res.Steps, so the result shows exactly what the dry run listed,
// or where it stopped.
func runUnenrollSteps(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, ns *corev1.Namespace, j *Journal, f UnenrollFacts, steps []UnenrollStep, opts UnenrollOptions, res *Result) error {
	var done []string
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := runUnenrollStep(ctx, kc, dc, ns, j, f, s, opts); err != nil {
			return err
		}
		res.Steps = append(res.Steps, s)
		switch s.Action {
		case UnenrollLabel:
			if j == nil {
				done = append(done, "no journal found: removed "+ambient.LabelDataplaneMode+" only; sidecar injection labels were not restored")
			} else {
				done = append(done, "labels restored from the journal of "+j.Time.Format("2006-01-02T15:04:05Z"))
			}
		case UnenrollRestore, UnenrollDelete, UnenrollKeep:
			done = append(done, s.Action+"d "+s.Kind+" "+s.Name)
		}
	}
	res.Outcome = OutcomeUnenrolled
	res.Message = strings.ReplaceAll(strings.Join(done, "; "), "keepd", "kept")
	return nil
}

func runUnenrollStep(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, ns *corev1.Namespace, j *Journal, f UnenrollFacts, s UnenrollStep, opts UnenrollOptions) error {
	notFoundOK := func(err error) error {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	switch s.Action {
	case UnenrollRestore:
		i := slices.IndexFunc(f.Originals, func(m JournalMove) bool { return m.Original == s.Name })
		if i < 0 || f.Originals[i].Object == nil {
			return fmt.Errorf("journal of namespace %q has no copy of AuthorizationPolicy %s; restore it by hand", ns.Name, s.Name)
		}
		u := &unstructured.Unstructured{Object: maps.Clone(f.Originals[i].Object)}
		u.SetResourceVersion("")
		_, err := dc.Resource(opts.PolicyGVR).Namespace(ns.Name).Create(ctx, u, metav1.CreateOptions{FieldManager: ManagedByValue})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("restore AuthorizationPolicy %s/%s: %w", ns.Name, s.Name, err)
		}
	case UnenrollWait:
		if !f.GatewayAPI {
			return fmt.Errorf("restore label %s=%s on namespace %q: %w: the Gateway API is not served", ambient.LabelUseWaypoint, s.Name, ns.Name, ErrWaypointNotReady)
		}
		if _, err := waypoint.WaitProgrammed(ctx, dc.Resource(opts.GatewayGVR).Namespace(ns.Name), ns.Name, s.Name, opts.WaypointTimeout); err != nil {
			return fmt.Errorf("restore label %s=%s on namespace %q: %w: %w; the labels are unchanged, run unenroll again once it is Programmed", ambient.LabelUseWaypoint, s.Name, ns.Name, ErrWaypointNotReady, err)
		}
	case UnenrollLabel:
		return patchUnenrollLabels(ctx, kc, dc, opts.GatewayGVR, ns, j, s, false)
	case UnenrollDelete:
		var err error
		switch s.Kind {
		case KindAuthorizationPolicy:
			err = dc.Resource(opts.PolicyGVR).Namespace(ns.Name).Delete(ctx, s.Name, metav1.DeleteOptions{})
		case KindGateway:
			err = dc.Resource(opts.GatewayGVR).Namespace(ns.Name).Delete(ctx, s.Name, metav1.DeleteOptions{})
		case "ConfigMap":
			err = kc.CoreV1().ConfigMaps(ns.Name).Delete(ctx, s.Name, metav1.DeleteOptions{})
		}
		if err := notFoundOK(err); err != nil {
			fix := "run unenroll again"
			if j == nil || len(j.Moves) == 0 {
				// The journal went with the labels: a re-run has nothing to go on.
				fix = fmt.Sprintf("the labels are restored; delete it by hand: kubectl delete %s -n %s %s", strings.ToLower(s.Kind), ns.Name, s.Name)
			}
			return fmt.Errorf("delete %s %s/%s: %w; %s", s.Kind, ns.Name, s.Name, err, fix)
		}
	case UnenrollUnjournal:
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{AnnotationJournal: nil}}})
		if _, err := kc.CoreV1().Namespaces().Patch(ctx, ns.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: ManagedByValue}); err != nil {
			return fmt.Errorf("remove annotation %s from namespace %q: %w", AnnotationJournal, ns.Name, err)
		}
	}
	return nil
}
