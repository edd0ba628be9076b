// Package charts embeds kubectl-ambient's own Helm charts. charts/ambient is
// the umbrella chart that lists the Istio components of the ambient profile
// (as dependencies, in install order), their pinned default version and our
// values per platform. `kubectl ambient install` reads it; GitOps users can
// install the same chart with plain helm.
package charts

import "embed"

// FS holds the chart directory tree, rooted at "ambient".
//
//go:embed all:ambient
var FS embed.FS

// Ambient is the path of the umbrella chart inside FS.
const Ambient = "ambient"
