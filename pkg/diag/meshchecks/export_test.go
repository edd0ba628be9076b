package meshchecks

import (
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
)

// InstallAmbientInLab exposes installAmbient to the external command tests
// in this directory: a healthy install when broken is false, else one with a
// node without ztunnel, a namespace with both labels and a pending pod.
func InstallAmbientInLab(t *testing.T, lab *kubelab.Lab, broken bool) (istioNS, appNS string) {
	if !broken {
		return installAmbient(t, lab, labInstall{})
	}
	return installAmbient(t, lab, labInstall{skipZtunnelOn: lab.Nodes[2], bothLabels: true, pendingPod: true})
}

// CompareGolden exposes compareGolden (and its -update flag).
func CompareGolden(t *testing.T, name string, got []byte) { compareGolden(t, name, got) }

// SettleNamespaces exposes settleNamespaces.
func SettleNamespaces(t *testing.T, lab *kubelab.Lab) { settleNamespaces(t, lab) }

// GetLab exposes getLab.
func GetLab(t *testing.T) *kubelab.Lab { return getLab(t) }
