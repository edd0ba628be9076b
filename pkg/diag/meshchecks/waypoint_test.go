package meshchecks

import (
	"strings"
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/checker"
)

// TestWaypointFailOpenChecks: a namespace label naming a missing waypoint
// and a targetRefs policy in a namespace without a waypoint both fail
// check, naming the object; the healthy install passes both.
func TestWaypointFailOpenChecks(t *testing.T) {
	f := healthyInstall()
	f.replace(namespace("legacy", map[string]string{ambient.LabelUseWaypoint: "gone"}))
	f.dyn = append(f.dyn, unstr(gvkAuthz, "legacy", "orphan", map[string]any{"spec": map[string]any{
		"targetRefs": []any{map[string]any{"kind": "Service", "group": "", "name": "api"}},
		"rules":      []any{map[string]any{"to": []any{map[string]any{"operation": map[string]any{"methods": []any{"GET"}}}}}},
	}}))
	c := f.cluster(t)
	res, _ := run(t, waypointChecks(c))
	if r := res["waypoint-labels"]; r.Status != checker.StatusError || !strings.Contains(r.Message, "Namespace legacy -> legacy/gone") {
		t.Errorf("waypoint-labels: %s %q", r.Status, r.Message)
	}
	if r := res["waypoint-policies"]; r.Status != checker.StatusError || !strings.Contains(r.Message, "legacy/orphan targets Service/api") {
		t.Errorf("waypoint-policies: %s %q", r.Status, r.Message)
	}
	res, _ = run(t, waypointChecks(healthyInstall().cluster(t)))
	for _, id := range []string{"waypoint-labels", "waypoint-policies"} {
		if res[id].Status != checker.StatusPass {
			t.Errorf("healthy install: %s %s %q", id, res[id].Status, res[id].Message)
		}
	}
}
