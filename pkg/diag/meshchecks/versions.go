package meshchecks

import (
	"errors"
	"fmt"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// ErrIstioVersion is returned (wrapped) when the Istio version the checks
// are asked about is not a version or not in ambient.SupportTable.
var ErrIstioVersion = errors.New("istio version")

// supportFor looks an Istio version up in ambient.SupportTable.
func supportFor(istio string) (ambient.Support, string, error) {
	s, minor, err := ambient.SupportFor(istio)
	if err != nil {
		return s, minor, fmt.Errorf("%w %q: %w", ErrIstioVersion, istio, err)
	}
	return s, minor, nil
}

// checkKubeVersion says whether a server version is in the supported range.
func checkKubeVersion(server, istio string) (string, error) {
	sup, minor, err := supportFor(istio)
	if err != nil {
		return "", err
	}
	v, err := ambient.ParseVersion(server)
	if err != nil {
		return "", fmt.Errorf("cannot read the server version: %w", err)
	}
	if v.Major() != 1 || v.Minor() < uint64(sup.MinKube) || v.Minor() > uint64(sup.MaxKube) {
		return "", fmt.Errorf("kubernetes %s is outside the range istio %s supports (1.%d to 1.%d)", server, minor, sup.MinKube, sup.MaxKube)
	}
	return fmt.Sprintf("kubernetes %s is supported by istio %s (1.%d to 1.%d)", server, minor, sup.MinKube, sup.MaxKube), nil
}

// errNotAVersion marks a component version (an image tag such as latest)
// that skew cannot be judged from.
var errNotAVersion = errors.New("not a version")

// checkSkew applies ambient.CheckSkew: the data plane may trail istiod by
// one minor and must never lead it. A version that does not parse wraps
// errNotAVersion.
func checkSkew(istiod, component, componentVersion string) error {
	cp, err := ambient.ParseVersion(istiod)
	if err != nil {
		return fmt.Errorf("istiod version: %w: %w", errNotAVersion, err)
	}
	dp, err := ambient.ParseVersion(componentVersion)
	if err != nil {
		return fmt.Errorf("%s version: %w: %w", component, errNotAVersion, err)
	}
	switch ambient.CheckSkew(cp, dp) {
	case ambient.SkewMajor:
		return fmt.Errorf("%s %s and istiod %s are different major versions", component, componentVersion, istiod)
	case ambient.SkewMinorAhead:
		return fmt.Errorf("%s %s is newer than istiod %s; upgrade istiod first", component, componentVersion, istiod)
	case ambient.SkewBehind:
		return fmt.Errorf("%s %s is more than one minor behind istiod %s; upgrade %s", component, componentVersion, istiod, component)
	}
	return nil
}
