package collector

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

// NodeObservation starts an observation of one node from its Node object and
// the ztunnel pod on it (nil when none runs), the way the watcher builds it,
// so a caller that looks at a single node (the node-by-node rollout) judges
// it with the same rules as `status`. Probe, metrics, rates and certificates
// are the caller's to add before ztunnel.Evaluate.
func NodeObservation(n *corev1.Node, zt *corev1.Pod) ztunnel.Observation {
	o := nodeObservation(n)
	if zt != nil {
		o.Ztunnel = podInfo(zt)
	}
	return o
}
