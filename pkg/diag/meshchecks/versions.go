package meshchecks

import (
	"fmt"
	"strconv"
	"strings"
)

// Support is what one Istio minor release supports.
type Support struct {
	// Kubernetes minors, inclusive range.
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

// DefaultIstioVersion is the Istio minor precheck checks against when no
// --istio-version is given.
const DefaultIstioVersion = "1.28"

// semver is a parsed major.minor.patch; missing parts are zero.
type semver struct{ major, minor, patch int }

func (v semver) String() string { return fmt.Sprintf("%d.%d.%d", v.major, v.minor, v.patch) }

func (v semver) less(o semver) bool {
	if v.major != o.major {
		return v.major < o.major
	}
	if v.minor != o.minor {
		return v.minor < o.minor
	}
	return v.patch < o.patch
}

// parseVersion reads "v1.33.13", "1.28", "1.28.0-distroless" or
// "v1.31.4-gke.1000" (anything after the numbers is ignored).
func parseVersion(s string) (semver, error) {
	t := strings.TrimPrefix(strings.TrimSpace(s), "v")
	if i := strings.IndexAny(t, "-+_"); i >= 0 {
		t = t[:i]
	}
	parts := strings.Split(t, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return semver{}, fmt.Errorf("version %q is not major.minor[.patch]", s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return semver{}, fmt.Errorf("version %q is not major.minor[.patch]", s)
		}
		n[i] = v
	}
	return semver{n[0], n[1], n[2]}, nil
}

// istioMinor turns "1.28.1" or "1.28" into "1.28".
func istioMinor(s string) (string, error) {
	v, err := parseVersion(s)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d.%d", v.major, v.minor), nil
}

// supportFor looks an Istio version up in SupportTable.
func supportFor(istio string) (Support, string, error) {
	minor, err := istioMinor(istio)
	if err != nil {
		return Support{}, "", fmt.Errorf("istio version %q: %w; pass --istio-version like 1.28", istio, err)
	}
	s, ok := SupportTable[minor]
	if !ok {
		return Support{}, minor, fmt.Errorf("istio %s is not in the support table (known: %s); pass a known --istio-version", minor, knownMinors())
	}
	return s, minor, nil
}

func knownMinors() string {
	var out []string
	for k := range SupportTable {
		out = append(out, k)
	}
	sortVersions(out)
	return strings.Join(out, ", ")
}

func sortVersions(vs []string) {
	for i := 1; i < len(vs); i++ {
		for j := i; j > 0; j-- {
			a, _ := parseVersion(vs[j-1])
			b, _ := parseVersion(vs[j])
			if !b.less(a) {
				break
			}
			vs[j-1], vs[j] = vs[j], vs[j-1]
		}
	}
}

// imageTag returns the tag of an image reference ("" when there is none or
// it is pinned only by digest).
func imageTag(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	slash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon <= slash {
		return ""
	}
	return image[colon+1:]
}

// checkKubeVersion says whether a server version is in the supported range.
func checkKubeVersion(server, istio string) (string, error) {
	sup, minor, err := supportFor(istio)
	if err != nil {
		return "", err
	}
	v, err := parseVersion(server)
	if err != nil {
		return "", fmt.Errorf("cannot read the server version: %w", err)
	}
	if v.major != 1 || v.minor < sup.MinKube || v.minor > sup.MaxKube {
		return "", fmt.Errorf("kubernetes %s is outside the range istio %s supports (1.%d to 1.%d)", server, minor, sup.MinKube, sup.MaxKube)
	}
	return fmt.Sprintf("kubernetes %s is supported by istio %s (1.%d to 1.%d)", server, minor, sup.MinKube, sup.MaxKube), nil
}

// checkSkew applies the ambient upgrade rule: istio-cni and ztunnel at 1.x
// work with istiod 1.x or 1.x+1, so the data plane may trail istiod by one
// minor and must never lead it.
func checkSkew(istiod, component, componentVersion string) error {
	cp, err := parseVersion(istiod)
	if err != nil {
		return fmt.Errorf("istiod version: %w", err)
	}
	dp, err := parseVersion(componentVersion)
	if err != nil {
		return fmt.Errorf("%s version: %w", component, err)
	}
	switch {
	case dp.major != cp.major:
		return fmt.Errorf("%s %s and istiod %s are different major versions", component, componentVersion, istiod)
	case dp.minor > cp.minor:
		return fmt.Errorf("%s %s is newer than istiod %s; upgrade istiod first", component, componentVersion, istiod)
	case cp.minor-dp.minor > 1:
		return fmt.Errorf("%s %s is more than one minor behind istiod %s; upgrade %s", component, componentVersion, istiod, component)
	}
	return nil
}
