package migrate_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/migrate"
)

func journalAnn(t *testing.T, j migrate.Journal) map[string]string {
	t.Helper()
	j.Version = migrate.JournalVersion
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{migrate.AnnotationJournal: string(b)}
}

func heads(steps []migrate.UnenrollStep) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Action + " " + s.Kind + " " + s.Name
	}
	return out
}

// TestPlanNamespaceUnenroll: the order of an L7 restore, and why each
// object is deleted or kept.
func TestPlanNamespaceUnenroll(t *testing.T) {
	inj := "enabled"
	l7 := migrate.Journal{Previous: map[string]*string{ambient.LabelDataplaneMode: nil, ambient.LabelInjection: &inj, ambient.LabelUseWaypoint: nil},
		Waypoint: "waypoint", UseWaypoint: "waypoint", OriginalsConfigMap: migrate.OriginalsConfigMap,
		Moves: []migrate.JournalMove{{Original: "a", Copy: "a-waypoint"}, {Original: "b", Copy: "b-waypoint"}, {Original: "c", Copy: "c-waypoint"}}}
	enrolled := map[string]string{ambient.LabelDataplaneMode: ambient.DataplaneAmbient, ambient.LabelUseWaypoint: "waypoint"}
	facts := migrate.UnenrollFacts{GatewayAPI: true, Originals: l7.Moves,
		CopiedFrom: map[string]string{"a-waypoint": "a", "b-waypoint": "someone"}, Waypoints: map[string]bool{"waypoint": true}}

	steps, err := migrate.PlanNamespaceUnenroll(migrate.NamespaceInfo{Name: "shop", Labels: enrolled, Annotations: journalAnn(t, l7)}, facts)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"restore AuthorizationPolicy a", "restore AuthorizationPolicy b", "restore AuthorizationPolicy c", "label Namespace shop",
		"delete AuthorizationPolicy a-waypoint", "keep AuthorizationPolicy b-waypoint", "delete Gateway waypoint",
		"delete ConfigMap " + migrate.OriginalsConfigMap, "unjournal Namespace shop"}
	if got := heads(steps); !slices.Equal(got, want) {
		t.Fatalf("steps\n got %v\nwant %v", got, want)
	}
	if d := steps[3].Detail; !strings.HasPrefix(d, "istio-injection=enabled istio.io/dataplane-mode- istio.io/use-waypoint-") {
		t.Errorf("label step %q", d)
	}
	if d := steps[5].Detail; !strings.Contains(d, `not this tool's copy of b`) || !strings.Contains(d, `"someone"`) {
		t.Errorf("kept copy's reason %q", d)
	}

	// An interrupted unenroll deleted the ConfigMap (only ever after every
	// original is back): nothing to restore, nothing to delete.
	gone := facts
	gone.Originals, gone.OriginalsGone = nil, true
	interrupted := l7
	interrupted.Phase = migrate.PhaseUnenrolling
	steps, _ = migrate.PlanNamespaceUnenroll(migrate.NamespaceInfo{Name: "shop", Annotations: journalAnn(t, interrupted)}, gone)
	want = []string{"label Namespace shop", "delete AuthorizationPolicy a-waypoint", "keep AuthorizationPolicy b-waypoint", "delete Gateway waypoint", "unjournal Namespace shop"}
	if got := heads(steps); !slices.Equal(got, want) {
		t.Errorf("after an interrupted unenroll\n got %v\nwant %v", got, want)
	}

	// The waypoint lost our label: kept, saying so.
	f := facts
	f.Waypoints = map[string]bool{"waypoint": false}
	steps, _ = migrate.PlanNamespaceUnenroll(migrate.NamespaceInfo{Name: "shop", Labels: enrolled, Annotations: journalAnn(t, l7)}, f)
	if i := slices.Index(heads(steps), "keep Gateway waypoint"); i < 0 || !strings.Contains(steps[i].Detail, migrate.LabelManagedBy) {
		t.Errorf("waypoint without our label: %v", steps)
	}
	// Gone already: no step.
	f.Waypoints = map[string]bool{}
	steps, _ = migrate.PlanNamespaceUnenroll(migrate.NamespaceInfo{Name: "shop", Labels: enrolled, Annotations: journalAnn(t, l7)}, f)
	if slices.ContainsFunc(steps, func(s migrate.UnenrollStep) bool { return s.Kind == migrate.KindGateway }) {
		t.Errorf("a missing waypoint gets a step: %v", steps)
	}
	// A waypoint the namespace used before enroll is kept.
	shared := l7
	shared.Waypoint = ""
	steps, _ = migrate.PlanNamespaceUnenroll(migrate.NamespaceInfo{Name: "shop", Labels: enrolled, Annotations: journalAnn(t, shared)}, facts)
	if i := slices.Index(heads(steps), "keep Gateway waypoint"); i < 0 || !strings.Contains(steps[i].Detail, "existed before enroll") {
		t.Errorf("pre-existing waypoint: %v", steps)
	}

	// A previous use-waypoint value: wait for that waypoint right before the labels.
	legacy := "legacy"
	prev := l7
	prev.Previous = map[string]*string{ambient.LabelUseWaypoint: &legacy}
	f = facts
	f.Programmed = map[string]string{"legacy": "True"}
	steps, _ = migrate.PlanNamespaceUnenroll(migrate.NamespaceInfo{Name: "shop", Labels: enrolled, Annotations: journalAnn(t, prev)}, f)
	h := heads(steps)
	if i := slices.Index(h, "wait Gateway legacy"); i < 0 || h[i+1] != "label Namespace shop" || !strings.Contains(steps[i].Detail, "Programmed=True now") {
		t.Errorf("restored use-waypoint: %v", steps)
	}
	// "none" is not a waypoint: no wait.
	none := "none"
	prev.Previous = map[string]*string{ambient.LabelUseWaypoint: &none}
	steps, _ = migrate.PlanNamespaceUnenroll(migrate.NamespaceInfo{Name: "shop", Labels: enrolled, Annotations: journalAnn(t, prev)}, f)
	if slices.ContainsFunc(steps, func(s migrate.UnenrollStep) bool { return s.Action == migrate.UnenrollWait }) {
		t.Errorf("use-waypoint=none waits: %v", steps)
	}

	// Without a journal: the ambient label only, or nothing.
	steps, _ = migrate.PlanNamespaceUnenroll(migrate.NamespaceInfo{Name: "shop", Labels: enrolled}, migrate.UnenrollFacts{})
	if len(steps) != 1 || !strings.Contains(steps[0].Detail, "no journal found") || !strings.HasPrefix(steps[0].Detail, ambient.LabelDataplaneMode+"-") {
		t.Errorf("no journal: %v", steps)
	}
	if steps, _ := migrate.PlanNamespaceUnenroll(migrate.NamespaceInfo{Name: "shop"}, migrate.UnenrollFacts{}); len(steps) != 0 {
		t.Errorf("not enrolled: %v", steps)
	}
	if _, err := migrate.PlanNamespaceUnenroll(migrate.NamespaceInfo{Name: "shop", Annotations: map[string]string{migrate.AnnotationJournal: "{"}}, migrate.UnenrollFacts{}); err == nil {
		t.Error("a broken journal plans")
	}
}
