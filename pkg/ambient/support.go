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
// Istio project lists as supported for it.
//
// Sources: https://istio.io/latest/docs/releases/supported-releases/ (the
// "Support status of Istio releases" table: Kubernetes versions per minor)
// and each release's upgrade notes for the Gateway API version, e.g.
// https://istio.io/latest/news/releases/1.30.x/announcing-1.30/upgrade-notes/
// ("Gateway API CRDs must be upgraded to v1.5.x": 1.30 depends on v1.5.1 and
// reads TLSRoute and ReferenceGrant from the standard channel's v1).
//
// Not confirmed against istio.io when written (December 2026; the pages
// could not be fetched here): the Kubernetes range of 1.30 and 1.32 and the
// Gateway API version of 1.31 and 1.32. 1.31's range (1.32-1.36) is from
// its release (2026-08-20) as recorded in the design notes. 1.31 and 1.32
// carry 1.30's Gateway API floor (a later release does not lower it), and
// 1.32 carries 1.31's Kubernetes range. Check these rows against the
// supported-releases page before relying on them.
var SupportTable = map[string]Support{
	"1.24": {MinKube: 28, MaxKube: 31, MinGatewayAPI: "v1.2.0"},
	"1.25": {MinKube: 29, MaxKube: 32, MinGatewayAPI: "v1.2.0"},
	"1.26": {MinKube: 29, MaxKube: 33, MinGatewayAPI: "v1.2.0"},
	"1.27": {MinKube: 29, MaxKube: 33, MinGatewayAPI: "v1.3.0"},
	"1.28": {MinKube: 30, MaxKube: 34, MinGatewayAPI: "v1.3.0"},
	"1.29": {MinKube: 31, MaxKube: 35, MinGatewayAPI: "v1.4.0"},
	"1.30": {MinKube: 32, MaxKube: 36, MinGatewayAPI: "v1.5.1"}, // Kubernetes range not confirmed
	"1.31": {MinKube: 32, MaxKube: 36, MinGatewayAPI: "v1.5.1"}, // Gateway API not confirmed
	"1.32": {MinKube: 32, MaxKube: 36, MinGatewayAPI: "v1.5.1"}, // not confirmed: 1.31's row
}

// DefaultIstioVersion is the Istio minor precheck checks against when the
// user names none.
// It is the minor of the range charts/ambient declares (~1.32.0), so
// precheck judges the cluster against what install would choose; a test in
// pkg/install holds the two together.
const DefaultIstioVersion = "1.32"

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

// ErrUpgradePath is returned (wrapped) by CheckUpgradePath for an upgrade
// that skips a minor release.
var ErrUpgradePath = errors.New("unsupported upgrade path")

// CheckUpgradePath applies the upgrade rule: the control plane moves one
// minor release at a time (1.30 -> 1.31 -> 1.32). Each release's upgrade
// notes are written for the step from the minor before it ("When upgrading
// from Istio 1.29.x to Istio 1.30.x", istio.io/latest/news/releases/1.30.x/
// announcing-1.30/upgrade-notes/), so a two-minor jump is a path nobody
// documented. We refuse it rather than run it as two steps: the user should
// read the notes of each step (1.30's asks for new Gateway API CRDs first).
// A downgrade by one minor (a rollback) is allowed.
func CheckUpgradePath(from, to Version) error {
	if from.Major() != to.Major() {
		return fmt.Errorf("%w: istio %s to %s changes the major version", ErrUpgradePath, from, to)
	}
	d := int(to.Minor()) - int(from.Minor())
	if d > 1 || d < -1 {
		return fmt.Errorf("%w: istio %s to %s crosses %d minor releases, and Istio supports one at a time", ErrUpgradePath, from, to, abs(d))
	}
	return nil
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
