package waypointsim

import (
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/fixtures"
)

// CRDs are the CRD files a waypoint lab applies: the Gateway API's own
// GatewayClass and Gateway CRDs (from the module go.mod requires) and a
// minimal ServiceEntry CRD. Apply them with the lab's kubectl, then wait for
// CRDNames to be Established.
func CRDs() ([]string, error) {
	paths, err := fixtures.GatewayAPICRDs()
	if err != nil {
		return nil, err
	}
	return append(paths, fixtures.Path("crds", "istio-serviceentries.yaml")), nil
}

// CRDNames are the CRDs CRDs installs.
var CRDNames = []string{"gatewayclasses.gateway.networking.k8s.io", "gateways.gateway.networking.k8s.io", "serviceentries.networking.istio.io"}
