package migrate

import (
	"fmt"
	"strings"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// Unenroll step actions, in the order PlanNamespaceUnenroll lists them.
const (
	UnenrollRestore   = "restore"   // re-create a journaled original AuthorizationPolicy
	UnenrollWait      = "wait"      // wait until the waypoint a restored use-waypoint names is Programmed
	UnenrollLabel     = "label"     // restore the journaled namespace labels
	UnenrollDelete    = "delete"    // delete a copy, our waypoint, or the originals ConfigMap
	UnenrollKeep      = "keep"      // leave an object in place, saying why
	UnenrollUnjournal = "unjournal" // remove the journal annotation
)

// UnenrollStep is one thing unenroll does to a namespace. The dry run
// lists them; the real run takes exactly these, in this order, and reports
// the ones it took.
type UnenrollStep struct {
	Action string `json:"action"`
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Detail string `json:"detail,omitempty"`
	// labels is the merge-patch label map of a label step.
	labels map[string]any
}

// String reads "delete AuthorizationPolicy api-read-waypoint (...)".
func (s UnenrollStep) String() string {
	out := s.Action + " " + s.Kind + " " + s.Name
	if s.Detail != "" {
		out += " (" + s.Detail + ")"
	}
	return out
}

// UnenrollFacts is what unenroll reads of the cluster beyond the namespace
// itself, for PlanNamespaceUnenroll.
type UnenrollFacts struct {
	// Originals are the journaled originals (from the journal, or from
	// its ConfigMap).
	Originals []JournalMove
	// CopiedFrom maps each journaled copy that exists to its
	// AnnotationCopiedFrom value ("" when it has none).
	CopiedFrom map[string]string
	// GatewayAPI says whether the Gateway API is served.
	GatewayAPI bool
	// Waypoints holds, for each waypoint the journal names that exists,
	// whether it carries our managed-by label.
	Waypoints map[string]bool
	// OriginalsGone says the originals ConfigMap is gone after an
	// interrupted unenroll (which deletes it only once every original is
	// back): nothing to restore from it, nothing to delete.
	OriginalsGone bool
	// Programmed holds, for the waypoint a restored use-waypoint label
	// names, its Programmed condition as read ("" when missing).
	Programmed map[string]string
}

// PlanNamespaceUnenroll lists, in order, what unenrolling a namespace does,
// from its labels and journal and the facts read beside them. It is pure:
// the dry run prints it, the real run executes it.
//
// With an L7 journal the order is: originals back first (so L7 policy is
// enforced by sidecars again as soon as injection returns), a wait for any
// waypoint the restored use-waypoint label names, the labels (journal kept,
// phase unenrolling), the copies, the waypoint enroll created, the
// originals ConfigMap, and last the journal. Without moves the labels and
// the journal go in one patch, then the waypoint.
func PlanNamespaceUnenroll(n NamespaceInfo, f UnenrollFacts) ([]UnenrollStep, error) {
	j, has, err := ReadJournal(n.Annotations)
	if err != nil {
		return nil, err
	}
	if !has {
		if n.Labels[ambient.LabelDataplaneMode] != ambient.DataplaneAmbient {
			return nil, nil
		}
		lbl := map[string]any{ambient.LabelDataplaneMode: nil}
		return []UnenrollStep{{Action: UnenrollLabel, Kind: "Namespace", Name: n.Name, labels: lbl,
			Detail: describeLabelPatch(lbl) + "; no journal found: sidecar injection labels are not restored"}}, nil
	}
	var steps []UnenrollStep
	l7 := len(j.Moves) > 0
	if l7 {
		for _, m := range f.Originals {
			steps = append(steps, UnenrollStep{Action: UnenrollRestore, Kind: KindAuthorizationPolicy, Name: m.Original,
				Detail: "the selector-based original, re-created from the journal"})
		}
	}
	lbl := j.restoreLabels(n.Labels)
	if wp, ok := lbl[ambient.LabelUseWaypoint].(string); ok && wp != "" && wp != "none" {
		d := "restoring " + ambient.LabelUseWaypoint + "=" + wp + " waits until it is Programmed for its current generation"
		switch st := f.Programmed[wp]; st {
		case "":
			d += "; it does not exist now"
		default:
			d += "; Programmed=" + st + " now"
		}
		steps = append(steps, UnenrollStep{Action: UnenrollWait, Kind: KindGateway, Name: wp, Detail: d})
	}
	ld := describeLabelPatch(lbl) + " (the labels journaled " + j.Time.Format("2006-01-02T15:04:05Z") + ")"
	if !l7 {
		ld += "; the journal is removed in the same patch"
	}
	steps = append(steps, UnenrollStep{Action: UnenrollLabel, Kind: "Namespace", Name: n.Name, labels: lbl, Detail: ld})
	if l7 {
		for _, m := range j.Moves {
			from, ok := f.CopiedFrom[m.Copy]
			switch {
			case !ok:
			case from == m.Original:
				steps = append(steps, UnenrollStep{Action: UnenrollDelete, Kind: KindAuthorizationPolicy, Name: m.Copy,
					Detail: "the waypoint-targeted copy of " + m.Original})
			default:
				steps = append(steps, UnenrollStep{Action: UnenrollKeep, Kind: KindAuthorizationPolicy, Name: m.Copy,
					Detail: fmt.Sprintf("not this tool's copy of %s (%s=%q)", m.Original, AnnotationCopiedFrom, from)})
			}
		}
	}
	steps = append(steps, waypointSteps(j, f)...)
	if l7 {
		if j.OriginalsConfigMap != "" && !f.OriginalsGone {
			steps = append(steps, UnenrollStep{Action: UnenrollDelete, Kind: "ConfigMap", Name: j.OriginalsConfigMap,
				Detail: "held the journaled originals"})
		}
		steps = append(steps, UnenrollStep{Action: UnenrollUnjournal, Kind: "Namespace", Name: n.Name,
			Detail: "remove annotation " + AnnotationJournal})
	}
	return steps, nil
}

// waypointSteps: delete the waypoint enroll created when it still carries
// our label; keep it (saying why) otherwise, and keep one the namespace
// used before enroll.
func waypointSteps(j *Journal, f UnenrollFacts) []UnenrollStep {
	if j.Waypoint == "" {
		if j.UseWaypoint != "" {
			return []UnenrollStep{{Action: UnenrollKeep, Kind: KindGateway, Name: j.UseWaypoint, Detail: "it existed before enroll"}}
		}
		return nil
	}
	if !f.GatewayAPI {
		return []UnenrollStep{{Action: UnenrollKeep, Kind: KindGateway, Name: j.Waypoint, Detail: "the Gateway API is not served, so it cannot be read"}}
	}
	ours, exists := f.Waypoints[j.Waypoint]
	switch {
	case !exists:
		return nil
	case ours:
		return []UnenrollStep{{Action: UnenrollDelete, Kind: KindGateway, Name: j.Waypoint, Detail: "the waypoint enroll created"}}
	default:
		return []UnenrollStep{{Action: UnenrollKeep, Kind: KindGateway, Name: j.Waypoint,
			Detail: "it no longer carries " + LabelManagedBy + "=" + ManagedByValue + ", so someone else owns it now"}}
	}
}

// describeSteps renders steps as one line: "1. ...; 2. ...".
func describeSteps(steps []UnenrollStep) string {
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = fmt.Sprintf("%d. %s", i+1, s)
	}
	return strings.Join(parts, "; ")
}
