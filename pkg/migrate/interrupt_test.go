package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/cnisim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/migrate"
)

// enrollFlow is what `enroll namespace` does, with an observer: one read,
// plan, permission check, apply, verify.
func enrollFlow(ctx context.Context, lab *kubelab.Lab, names []string, workers int, obs migrate.Observer) error {
	c := lab.Clients
	snap, err := migrate.ReadSnapshot(ctx, c.Kube, c.Dynamic, c.Discovery)
	if err != nil {
		return err
	}
	plan, err := migrate.BuildPlan(snap, migrate.Selection{Names: names}, migrate.PlanOptions{})
	if err != nil {
		return err
	}
	if err := migrate.CheckAccess(ctx, c.Kube, migrate.EnrollAccess(plan, true, false)); err != nil {
		return err
	}
	obs(migrate.Event{Step: migrate.StepValidated})
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := migrate.Apply(ctx, c.Kube, c.Dynamic, plan, migrate.ApplyOptions{Workers: workers, Observer: obs}); err != nil {
		return err
	}
	_, err = migrate.Verify(ctx, c.Kube, names, migrate.VerifyOptions{Timeout: time.Minute, Observer: obs})
	return err
}

// nsState classifies a namespace against its labels before enrollment:
// "untouched", "enrolled" (labels changed and journal consistent), or a
// description of the half-done state that must never happen.
func nsState(t *testing.T, lab *kubelab.Lab, name string, before map[string]string) (state, journal string) {
	t.Helper()
	ns := getNS(t, lab, name)
	raw, has := ns.Annotations[migrate.AnnotationJournal]
	if !has && maps.Equal(ns.Labels, before) {
		return "untouched", ""
	}
	j, ok, err := migrate.ReadJournal(ns.Annotations)
	if err != nil || !ok {
		return fmt.Sprintf("HALF-DONE: labels %v without a journal (%v)", ns.Labels, err), ""
	}
	want := maps.Clone(before)
	delete(want, ambient.LabelInjection)
	delete(want, ambient.LabelRev)
	want[ambient.LabelDataplaneMode] = ambient.DataplaneAmbient
	if !maps.Equal(ns.Labels, want) {
		return fmt.Sprintf("HALF-DONE: journal present but labels %v, want %v", ns.Labels, want), raw
	}
	for _, k := range []string{ambient.LabelInjection, ambient.LabelRev, ambient.LabelDataplaneMode} {
		v, had := before[k]
		if p := j.Previous[k]; (p != nil) != had || (p != nil && *p != v) {
			return fmt.Sprintf("HALF-DONE: journal previous %s = %v, want %q", k, p, v), raw
		}
	}
	return "enrolled", raw
}

// TestEnrollInterruptedAtEachStep cancels the run at each step and checks
// that every namespace is untouched or fully enrolled with its journal,
// that a re-run converges without rewriting journals, and that unenroll
// restores the labels.
func TestEnrollInterruptedAtEachStep(t *testing.T) {
	lab := kubelab.Get(t)
	// A ztunnel slow to accept pods keeps verification running (pods
	// pending) long enough for the cancel at StepVerifyStarted to land.
	startCNIWith(t, lab, cnisim.Options{Delay: time.Second, Workers: 32})
	steps := []struct {
		step              migrate.Step
		wantAllUntouched  bool
		wantSomeUntouched bool
		wantAllEnrolled   bool
	}{
		{migrate.StepValidated, true, false, false},
		{migrate.StepBeforePatch, false, true, false},
		{migrate.StepPatched, false, false, false},
		{migrate.StepVerifyStarted, false, false, true},
	}
	for _, tt := range steps {
		t.Run(string(tt.step), func(t *testing.T) {
			labelSets := []map[string]string{
				{"istio-injection": "enabled", "team": "a"},
				{"istio.io/rev": "canary"},
				{"team": "c"},
				{"istio-injection": "enabled", "istio.io/rev": "stable"},
				nil, nil,
			}
			var names []string
			before := map[string]map[string]string{}
			for i, ls := range labelSets {
				n := lab.Namespace(t, ls)
				names = append(names, n)
				before[n] = getNS(t, lab, n).Labels
				lab.RunPod(t, n, fmt.Sprintf("p%d", i), "", nil)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var once sync.Once
			err := enrollFlow(ctx, lab, names, 2, func(e migrate.Event) {
				if e.Step == tt.step {
					once.Do(cancel)
				}
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted run: err = %v, want context.Canceled", err)
			}
			journals := map[string]string{}
			counts := map[string]int{}
			for _, n := range names {
				st, j := nsState(t, lab, n, before[n])
				counts[st]++
				journals[n] = j
				if st != "untouched" && st != "enrolled" {
					t.Errorf("namespace %s: %s", n, st)
				}
			}
			t.Logf("after cancel at %s: %v", tt.step, counts)
			switch {
			case tt.wantAllUntouched && counts["untouched"] != len(names):
				t.Errorf("cancel at %s: want every namespace untouched, got %v", tt.step, counts)
			case tt.wantSomeUntouched && counts["untouched"] == 0:
				t.Errorf("cancel at %s: want at least one namespace untouched, got %v", tt.step, counts)
			case tt.wantAllEnrolled && counts["enrolled"] != len(names):
				t.Errorf("cancel at %s: want every namespace enrolled, got %v", tt.step, counts)
			case tt.step == migrate.StepPatched && counts["enrolled"] == 0:
				t.Errorf("cancel at %s: want at least one namespace enrolled, got %v", tt.step, counts)
			}

			// A re-run converges and keeps the journals already written.
			if err := enrollFlow(context.Background(), lab, names, 2, func(migrate.Event) {}); err != nil {
				t.Fatalf("re-run: %v", err)
			}
			for _, n := range names {
				st, j := nsState(t, lab, n, before[n])
				if st != "enrolled" {
					t.Errorf("after re-run %s: %s", n, st)
				}
				if journals[n] != "" && journals[n] != j {
					t.Errorf("re-run rewrote the journal of %s:\n%s\n%s", n, journals[n], j)
				}
			}
			// Unenroll restores; twice is harmless.
			for range 2 {
				if _, err := migrate.Unenroll(context.Background(), lab.Clients.Kube, lab.Clients.Dynamic, names, migrate.UnenrollOptions{}); err != nil {
					t.Fatal(err)
				}
				for _, n := range names {
					if st, _ := nsState(t, lab, n, before[n]); st != "untouched" {
						t.Errorf("after unenroll %s: %s", n, st)
					}
				}
			}
		})
	}
}

// TestEnrollRetriesOnConflict changes a namespace between the read and the
// patch: the resourceVersion precondition makes the first patch fail, the
// retry re-reads, keeps the concurrent edit and journals the fresh state.
func TestEnrollRetriesOnConflict(t *testing.T) {
	lab := kubelab.Get(t)
	ctx := context.Background()
	c := lab.Clients
	name := lab.Namespace(t, map[string]string{"istio-injection": "enabled"})
	snap, err := migrate.ReadSnapshot(ctx, c.Kube, c.Dynamic, c.Discovery)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := migrate.BuildPlan(snap, migrate.Selection{Names: []string{name}}, migrate.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A concurrent edit: someone adds a revision label and a team label.
	ns := getNS(t, lab, name)
	ns.Labels["istio.io/rev"] = "canary"
	ns.Labels["team"] = "late"
	if _, err := c.Kube.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var patches int
	var mu sync.Mutex
	res, err := migrate.Apply(ctx, c.Kube, c.Dynamic, plan, migrate.ApplyOptions{Observer: func(e migrate.Event) {
		if e.Step == migrate.StepBeforePatch {
			mu.Lock()
			patches++
			mu.Unlock()
		}
	}})
	if err != nil || res[0].Outcome != migrate.OutcomeEnrolled {
		t.Fatalf("apply: %v %+v", err, res)
	}
	if patches != 2 {
		t.Errorf("patch attempts = %d, want 2 (one conflict, one retry)", patches)
	}
	got := getNS(t, lab, name)
	want := map[string]string{"kubernetes.io/metadata.name": name, "team": "late", ambient.LabelDataplaneMode: ambient.DataplaneAmbient}
	if !maps.Equal(got.Labels, want) {
		t.Errorf("labels = %v, want %v", got.Labels, want)
	}
	j, _, _ := migrate.ReadJournal(got.Annotations)
	if j == nil || j.Previous[ambient.LabelRev] == nil || *j.Previous[ambient.LabelRev] != "canary" {
		t.Errorf("journal did not record the concurrent revision label: %+v", j)
	}
	if _, err := migrate.Unenroll(ctx, c.Kube, c.Dynamic, []string{name}, migrate.UnenrollOptions{}); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"kubernetes.io/metadata.name": name, "team": "late", "istio-injection": "enabled", "istio.io/rev": "canary"}
	if got := getNS(t, lab, name).Labels; !maps.Equal(got, want) {
		t.Errorf("after unenroll labels = %v, want %v", got, want)
	}
}

// TestEnrollWaypoint creates a waypoint Gateway and sets istio.io/use-waypoint
// once it is Programmed. The lab has no istiod, so the test itself plays the
// waypoint controller: it marks the Gateway Programmed through the status
// subresource after a delay, and checks the label is not set before that.
func TestEnrollWaypoint(t *testing.T) {
	lab := kubelab.Get(t)
	installCRDs(t, lab)
	ctx := context.Background()
	c := lab.Clients
	name := lab.Namespace(t, map[string]string{"istio-injection": "enabled"})
	snap, err := migrate.ReadSnapshot(ctx, c.Kube, c.Dynamic, c.Discovery)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := migrate.BuildPlan(snap, migrate.Selection{Names: []string{name}}, migrate.PlanOptions{Waypoint: true})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Namespaces[0].WaypointCreate != "waypoint" {
		t.Fatalf("plan does not create a waypoint: %+v", plan.Namespaces[0])
	}
	gws := c.Dynamic.Resource(plan.GatewayGVR).Namespace(name)
	programmed := make(chan error, 1)
	var labelledEarly atomic.Bool
	go func() {
		var err error
		defer func() { programmed <- err }()
		err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := gws.Get(ctx, "waypoint", metav1.GetOptions{})
			return err == nil, nil
		})
		if err != nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
		if ns, gerr := c.Kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{}); gerr == nil && ns.Labels[ambient.LabelUseWaypoint] != "" {
			labelledEarly.Store(true)
		}
		gw, err := gws.Get(ctx, "waypoint", metav1.GetOptions{})
		if err != nil {
			return
		}
		_ = unstructured.SetNestedSlice(gw.Object, []any{map[string]any{"type": "Programmed", "status": "True", "reason": "Programmed",
			"message": "set by the test", "lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}}, "status", "conditions")
		_, err = gws.UpdateStatus(ctx, gw, metav1.UpdateOptions{})
	}()
	res, err := migrate.Apply(ctx, c.Kube, c.Dynamic, plan, migrate.ApplyOptions{WaypointTimeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if err := <-programmed; err != nil {
		t.Fatalf("test controller: %v", err)
	}
	if labelledEarly.Load() {
		t.Errorf("istio.io/use-waypoint was set before the Gateway was Programmed")
	}
	ns := getNS(t, lab, name)
	if ns.Labels[ambient.LabelUseWaypoint] != "waypoint" || res[0].Message == "" {
		t.Errorf("labels %v, result %+v", ns.Labels, res[0])
	}
	gw, err := gws.Get(ctx, "waypoint", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cls, _, _ := unstructured.NestedString(gw.Object, "spec", "gatewayClassName"); cls != ambient.WaypointClass {
		t.Errorf("gateway class %q", cls)
	}
	if _, err := migrate.Unenroll(ctx, c.Kube, c.Dynamic, []string{name}, migrate.UnenrollOptions{GatewayGVR: plan.GatewayGVR}); err != nil {
		t.Fatal(err)
	}
	ns = getNS(t, lab, name)
	if _, ok := ns.Labels[ambient.LabelUseWaypoint]; ok || ns.Labels[ambient.LabelInjection] != "enabled" {
		t.Errorf("labels after unenroll %v", ns.Labels)
	}
	if _, err := gws.Get(ctx, "waypoint", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("waypoint not deleted by unenroll: %v", err)
	}
}

// TestUnenrollWithoutJournal: a namespace enrolled by hand has no journal;
// unenroll removes only the ambient label, keeps everything else, and says so.
func TestUnenrollWithoutJournal(t *testing.T) {
	lab := kubelab.Get(t)
	name := lab.Namespace(t, map[string]string{ambient.LabelDataplaneMode: ambient.DataplaneAmbient, "team": "x"})
	res, err := migrate.Unenroll(context.Background(), lab.Clients.Kube, nil, []string{name}, migrate.UnenrollOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Outcome != migrate.OutcomeUnenrolled || !strings.Contains(res[0].Message, "no journal found") {
		t.Errorf("result = %+v", res[0])
	}
	want := map[string]string{"kubernetes.io/metadata.name": name, "team": "x"}
	if got := getNS(t, lab, name).Labels; !maps.Equal(got, want) {
		t.Errorf("labels = %v, want %v", got, want)
	}
	res, err = migrate.Unenroll(context.Background(), lab.Clients.Kube, nil, []string{name}, migrate.UnenrollOptions{})
	if err != nil || res[0].Outcome != migrate.OutcomeNotEnrolled {
		t.Errorf("second unenroll: %v %+v", err, res)
	}
	if _, err := migrate.Unenroll(context.Background(), lab.Clients.Kube, nil, []string{"no-such-namespace"}, migrate.UnenrollOptions{}); err == nil || !strings.Contains(err.Error(), `unenroll namespace "no-such-namespace": namespace not found`) {
		t.Errorf("missing namespace: %v", err)
	}
}
