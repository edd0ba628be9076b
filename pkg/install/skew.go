package install

import (
	"errors"
	"fmt"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// ErrSkew is returned (wrapped) when an operation would leave cni or ztunnel
// at a version istiod does not support.
var ErrSkew = errors.New("unsupported version skew")

// CheckSkew applies Istio's data plane rule (ambient.CheckSkew): cni and
// ztunnel at 1.x work with istiod 1.x or 1.x+1. So a data plane component
// may be at istiod's minor or one minor behind, never newer (not even by a
// patch: an operation must not create that). dataplane maps component to
// version; empty versions (not installed) are skipped.
func CheckSkew(istiod string, dataplane map[string]string) error {
	if istiod == "" {
		return nil
	}
	cp, err := ambient.ParseVersion(istiod)
	if err != nil {
		return fmt.Errorf("istiod version %q is not a semantic version: %w", istiod, err)
	}
	for _, name := range []string{ChartCNI, ChartZtunnel} {
		v := dataplane[name]
		if v == "" {
			continue
		}
		dp, err := ambient.ParseVersion(v)
		if err != nil {
			return fmt.Errorf("%s version %q is not a semantic version: %w", name, v, err)
		}
		switch ambient.CheckSkew(cp, dp) {
		case ambient.SkewMajor, ambient.SkewMinorAhead:
			if cp.Less(dp) {
				return fmt.Errorf("%w: %s %s would be newer than istiod %s, and cni and ztunnel must never be newer than the control plane; move istiod to %s or later first (kubectl ambient upgrade upgrades it before %s)",
					ErrSkew, name, v, istiod, v, name)
			}
			return fmt.Errorf("%w: %s %s and istiod %s are different major versions; upgrade one minor at a time", ErrSkew, name, v, istiod)
		case ambient.SkewPatchAhead:
			return fmt.Errorf("%w: %s %s would be newer than istiod %s; upgrade istiod first", ErrSkew, name, v, istiod)
		case ambient.SkewBehind:
			return fmt.Errorf("%w: %s %s would be %d minor versions behind istiod %s, but cni and ztunnel support only istiod at their own minor version or one newer; upgrade %s together with istiod, or move istiod one minor version at a time",
				ErrSkew, name, v, cp.Minor()-dp.Minor(), istiod, name)
		}
	}
	return nil
}

// ErrUpgradePath is returned (wrapped) for an istiod upgrade that skips a
// minor release; it is ambient.ErrUpgradePath.
var ErrUpgradePath = ambient.ErrUpgradePath

// checkUpgradePath refuses moving istiod from the deployed version to the
// planned one across more than one minor (ambient.CheckUpgradePath), and
// says which intermediate version to install first.
func checkUpgradePath(deployed, planned string) error {
	if deployed == "" || deployed == PlaceholderVersion || planned == PlaceholderVersion {
		return nil
	}
	from, err1 := ambient.ParseVersion(deployed)
	to, err2 := ambient.ParseVersion(planned)
	if err1 != nil || err2 != nil {
		return nil // not versions: nothing to judge (skew reports them)
	}
	if err := ambient.CheckUpgradePath(from, to); err != nil {
		next := fmt.Sprintf("%d.%d", from.Major(), from.Minor()+1)
		if to.Less(from) {
			next = fmt.Sprintf("%d.%d", from.Major(), from.Minor()-1)
		}
		return fmt.Errorf("istiod %s is installed: %w; upgrade to the newest %s patch first and read that release's upgrade notes, then to %s", deployed, err, next, planned)
	}
	return nil
}

// mustComponent returns the component with the given chart from comps (the
// profile always holds the four).
func mustComponent(comps []Component, chart string) Component {
	for _, c := range comps {
		if c.Chart == chart {
			return c
		}
	}
	return Component{Chart: chart}
}
