package ambient

import (
	"errors"
	"fmt"
	"strings"
)

// Support is what one Istio minor release supports.
type Support struct {
	// MinKube and MaxKube are the Kubernetes minors supported, inclusive.
	MinKube, MaxKube int
	// MinGatewayAPI is the oldest Gateway API bundle version the release's
	// waypoints are documented with.
	MinGatewayAPI string
}

// SupportTable maps an Istio minor ("1.28") to the Kubernetes minors the
// Istio project lists as supported for it (istio.io "Supported Releases").
var SupportTable = map[string]Support{
	"1.24": {MinKube: 28, MaxKube: 31, MinGatewayAPI: "v1.2.0"},
	"1.25": {MinKube: 29, MaxKube: 32, MinGatewayAPI: "v1.2.0"},
	"1.26": {MinKube: 29, MaxKube: 33, MinGatewayAPI: "v1.2.0"},
	"1.27": {MinKube: 29, MaxKube: 33, MinGatewayAPI: "v1.3.0"},
	"1.28": {MinKube: 30, MaxKube: 34, MinGatewayAPI: "v1.3.0"},
	"1.29": {MinKube: 31, MaxKube: 35, MinGatewayAPI: "v1.4.0"},
	"1.30": {MinKube: 32, MaxKube: 36, MinGatewayAPI: "v1.4.0"},
}

// DefaultIstioVersion is the Istio minor precheck checks against when the
// user names none.
const DefaultIstioVersion = "1.28"

// ErrUnknownIstio is returned (wrapped) by SupportFor for an Istio minor
// that is not in SupportTable.
var ErrUnknownIstio = errors.New("not in the support table")

// SupportFor looks an Istio version up in SupportTable and returns its row
// and its minor ("1.28"). A version that does not parse is returned as
// ParseVersion's error; a minor that is not in the table wraps
// ErrUnknownIstio (the minor is still returned).
func SupportFor(istio string) (Support, string, error) {
	minor, err := MinorOf(istio)
	if err != nil {
		return Support{}, "", err
	}
	s, ok := SupportTable[minor]
	if !ok {
		return Support{}, minor, fmt.Errorf("istio %s is %w (known: %s)", minor, ErrUnknownIstio, KnownMinors())
	}
	return s, minor, nil
}

// KnownMinors lists SupportTable's Istio minors, oldest first, comma separated.
func KnownMinors() string {
	out := make([]string, 0, len(SupportTable))
	for k := range SupportTable {
		out = append(out, k)
	}
	SortVersions(out)
	return strings.Join(out, ", ")
}

// Skew classifies a data plane component's version against istiod's.
type Skew int

// Skew outcomes. Istio's rule: istio-cni and ztunnel at 1.x work with istiod
// 1.x or 1.x+1, so the data plane may trail istiod by one minor and must
// never lead it.
const (
	// SkewSupported: same minor (not a newer patch) or one minor behind.
	SkewSupported Skew = iota
	// SkewPatchAhead: same minor, newer patch than istiod. Istio's rule is
	// about minors and allows it; an install must not create it.
	SkewPatchAhead
	// SkewMinorAhead: same major, newer minor than istiod.
	SkewMinorAhead
	// SkewMajor: a different major version.
	SkewMajor
	// SkewBehind: more than one minor behind istiod.
	SkewBehind
)

// CheckSkew applies the skew rule to istiod's and a data plane component's
// versions.
func CheckSkew(istiod, dataplane Version) Skew {
	switch {
	case dataplane.Major() != istiod.Major():
		return SkewMajor
	case dataplane.Minor() > istiod.Minor():
		return SkewMinorAhead
	case istiod.Minor()-dataplane.Minor() > 1:
		return SkewBehind
	case dataplane.Minor() == istiod.Minor() && istiod.Less(dataplane):
		return SkewPatchAhead
	}
	return SkewSupported
}
