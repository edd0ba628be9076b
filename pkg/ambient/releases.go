package ambient

// IstioNamespace is the default namespace of the Istio releases.
const IstioNamespace = "istio-system"

// Helm release names of the ambient components; the embedded chart
// (charts/ambient) is the product's source of truth and names the same
// releases in its kubectl-ambient/release.* annotations (a test holds the
// two together).
const (
	ReleaseBase    = "istio-base"
	ReleaseIstiod  = "istiod"
	ReleaseCNI     = "istio-cni"
	ReleaseZtunnel = "ztunnel"
)

// Releases returns the component releases in install order (uninstall is
// the reverse).
func Releases() []string {
	return []string{ReleaseBase, ReleaseIstiod, ReleaseCNI, ReleaseZtunnel}
}
