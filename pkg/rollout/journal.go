package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Phases a node passes through, recorded in the journal as each is reached.
const (
	phaseCordoned = "cordoned"
	phaseDrained  = "drained"
	phaseReplaced = "replaced"
	phaseDone     = "done"
	phaseFailed   = "failed"
)

// journalKey is the ConfigMap key holding the journal as JSON.
const journalKey = "journal"

// Journal is the rollout's record: which nodes it cordoned (so only those
// are uncordoned), how far each got, and the revision it rolls toward.
type Journal struct {
	DaemonSet string                `json:"daemonSet"`
	Revision  string                `json:"revision"`
	Version   string                `json:"version,omitempty"`
	Started   time.Time             `json:"started"`
	Updated   time.Time             `json:"updated"`
	Nodes     map[string]*NodeEntry `json:"nodes"`
}

// NodeEntry is one node's line in the journal.
type NodeEntry struct {
	Phase string `json:"phase"`
	// CordonedByUs: the node was schedulable before the rollout cordoned it.
	CordonedByUs bool   `json:"cordonedByUs,omitempty"`
	OldPod       string `json:"oldPod,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

// journal persists a Journal in a ConfigMap; safe for concurrent nodes.
type journal struct {
	kc     kubernetes.Interface
	ns     string
	dryRun bool

	mu sync.Mutex
	j  Journal
	rv string
}

func loadJournal(ctx context.Context, kc kubernetes.Interface, ns string) (*journal, error) {
	jr := &journal{kc: kc, ns: ns, j: Journal{Nodes: map[string]*NodeEntry{}}}
	cm, err := kc.CoreV1().ConfigMaps(ns).Get(ctx, JournalName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return jr, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read rollout journal configmap %s/%s: %w", ns, JournalName, err)
	}
	jr.rv = cm.ResourceVersion
	if s := cm.Data[journalKey]; s != "" {
		if err := json.Unmarshal([]byte(s), &jr.j); err != nil {
			return nil, fmt.Errorf("rollout journal configmap %s/%s is not valid: %w; delete it to start over", ns, JournalName, err)
		}
	}
	if jr.j.Nodes == nil {
		jr.j.Nodes = map[string]*NodeEntry{}
	}
	return jr, nil
}

// entry returns a copy of a node's entry (zero when absent).
func (jr *journal) entry(node string) NodeEntry {
	jr.mu.Lock()
	defer jr.mu.Unlock()
	if e := jr.j.Nodes[node]; e != nil {
		return *e
	}
	return NodeEntry{}
}

// set changes a node's entry and writes the journal.
func (jr *journal) set(ctx context.Context, node string, fn func(e *NodeEntry)) error {
	jr.mu.Lock()
	defer jr.mu.Unlock()
	e := jr.j.Nodes[node]
	if e == nil {
		e = &NodeEntry{}
		jr.j.Nodes[node] = e
	}
	fn(e)
	return jr.saveLocked(ctx)
}

// reset starts a journal for a new target revision, keeping which nodes
// an earlier run cordoned and did not finish (they are still ours to uncordon).
func (jr *journal) reset(ctx context.Context, ds, revision, version string, now time.Time) error {
	jr.mu.Lock()
	defer jr.mu.Unlock()
	if jr.j.Revision == revision && jr.j.DaemonSet == ds {
		return nil
	}
	kept := map[string]*NodeEntry{}
	for n, e := range jr.j.Nodes {
		if e.CordonedByUs && e.Phase != phaseDone {
			kept[n] = &NodeEntry{Phase: phaseCordoned, CordonedByUs: true}
		}
	}
	jr.j = Journal{DaemonSet: ds, Revision: revision, Version: version, Started: now, Nodes: kept}
	return jr.saveLocked(ctx)
}

func (jr *journal) saveLocked(ctx context.Context) error {
	if jr.dryRun {
		return nil
	}
	jr.j.Updated = time.Now().UTC()
	b, err := json.Marshal(jr.j)
	if err != nil {
		return err
	}
	// A journal write must land even while the run is being cancelled, or
	// a cordon would go unrecorded.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: JournalName, Namespace: jr.ns, ResourceVersion: jr.rv,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "kubectl-ambient"}},
		Data: map[string]string{journalKey: string(b)},
	}
	var out *corev1.ConfigMap
	if jr.rv == "" {
		out, err = jr.kc.CoreV1().ConfigMaps(jr.ns).Create(wctx, cm, metav1.CreateOptions{})
	} else {
		out, err = jr.kc.CoreV1().ConfigMaps(jr.ns).Update(wctx, cm, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("write rollout journal configmap %s/%s: %w", jr.ns, JournalName, err)
	}
	jr.rv = out.ResourceVersion
	return nil
}
