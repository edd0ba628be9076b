// Package migrate moves namespaces from sidecars (or no mesh) into Istio's
// ambient mode and back.
//
// The work is split so each part can be tested on its own:
//   - ReadSnapshot reads the cluster once (namespaces, pods, and the Istio and
//     Gateway API objects whose CRDs exist);
//   - BuildPlan is a pure function from that snapshot to a Plan;
//   - Apply writes, per namespace, the journal annotation and the label change
//     in one patch guarded by the namespace's resourceVersion;
//   - Verify watches pods until istio-cni reports them captured;
//   - RestartSidecars restarts sidecar workloads one at a time;
//   - Unenroll restores the journaled labels.
package migrate

import (
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// Labels and annotations of this package's own (the Istio ones are in
// package ambient).
const (
	// AnnotationJournal holds the Journal of an enrollment on the namespace.
	AnnotationJournal = "kubectl-ambient.io/enroll-journal"
	// AnnotationRestartedAt is the pod-template annotation `kubectl rollout restart` uses.
	AnnotationRestartedAt = "kubectl.kubernetes.io/restartedAt"
	// EnvEnableHBONE in the istio-proxy container lets a sidecar speak HBONE to ambient pods.
	EnvEnableHBONE = "ISTIO_META_ENABLE_HBONE"
	// LabelManagedBy marks objects this tool created.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is our value of LabelManagedBy.
	ManagedByValue = "kubectl-ambient"
)

// managedLabels are the namespace labels an enrollment may change; the
// journal records the previous value (or absence) of each.
var managedLabels = []string{ambient.LabelDataplaneMode, ambient.LabelInjection, ambient.LabelRev, ambient.LabelUseWaypoint}

// Mode is a namespace's data-plane mode as found in the cluster.
type Mode string

// Namespace modes.
const (
	ModeNone    Mode = "none"
	ModeSidecar Mode = "sidecar"
	ModeAmbient Mode = "ambient"
	ModeMixed   Mode = "mixed"
)

// DefaultSystemNamespaces are never enrolled.
var DefaultSystemNamespaces = []string{"kube-system", ambient.IstioNamespace}

// ResourceRef names an Istio or Gateway API object and why it matters.
type ResourceRef struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Journal is what an enrollment records on a namespace before changing it, so
// unenroll can restore the previous state exactly.
type Journal struct {
	Version int       `json:"v"`
	Time    time.Time `json:"time"`
	// Previous holds the previous value of every managed label; nil means absent.
	Previous map[string]*string `json:"previousLabels"`
	// Added and Removed are the label changes this enrollment made.
	Added   map[string]string `json:"added,omitempty"`
	Removed []string          `json:"removed,omitempty"`
	// Waypoint is the name of the waypoint Gateway this enrollment created, if any.
	Waypoint string `json:"waypoint,omitempty"`
	// Phase is the L7 step about to be taken (journaled before it is
	// taken) or done.
	Phase string `json:"phase,omitempty"`
	// UseWaypoint is the waypoint the namespace was labelled to use.
	UseWaypoint string `json:"useWaypoint,omitempty"`
	// Moves are the L7 AuthorizationPolicies moved to the waypoint, the
	// originals kept whole (or in OriginalsConfigMap when too large for an
	// annotation).
	Moves []JournalMove `json:"moves,omitempty"`
	// OriginalsConfigMap names the ConfigMap in the namespace holding the
	// originals when the journal would exceed the annotation budget.
	OriginalsConfigMap string `json:"originalsConfigMap,omitempty"`
}

// JournalMove is one policy moved to the waypoint.
type JournalMove struct {
	Original string         `json:"original"`
	Copy     string         `json:"copy"`
	Object   map[string]any `json:"object,omitempty"`
}
