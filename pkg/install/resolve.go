package install

import (
	"context"
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// PlaceholderVersion is the chart version every Chart.yaml carries in a tree
// taken from Istio's source repository; Istio's release tooling writes the
// real one. It says nothing about the Istio inside, so skew is not judged.
const PlaceholderVersion = "1.0.0"

// Resolution says how a component's chart version was chosen.
type Resolution struct {
	// Requested is what was asked for: --version, or the range charts/ambient
	// declares (for example ~1.32.0).
	Requested string `json:"requested"`
	// Version is the chart version that will be installed.
	Version string `json:"version"`
	// From says where the choice came from ("newest matching in <source>",
	// "pinned by --version", "the only version in <dir>").
	From string `json:"from"`
	// Unreleased is set for a source tree's placeholder version 1.0.0.
	Unreleased bool `json:"unreleased,omitempty"`
}

func (r Resolution) String() string {
	if r.Unreleased {
		return fmt.Sprintf("unreleased source tree (chart version %s)", r.Version)
	}
	if r.Requested == r.Version {
		return fmt.Sprintf("%s (%s)", r.Version, r.From)
	}
	return fmt.Sprintf("%s, resolved from %s (%s)", r.Version, r.Requested, r.From)
}

// resolveVersion picks the chart version of one component the way Helm
// resolves a dependency's version range against a repository index: the
// newest version that satisfies the range. An exact version is used as it
// is. A local source holding a single version of the chart gives that
// version (offline, the version comes from the charts), the placeholder
// 1.0.0 of a source tree included.
func resolveVersion(ctx context.Context, src Source, chart, requested string, pinned bool) (Resolution, error) {
	r := Resolution{Requested: requested, Version: requested}
	if pinned {
		r.From = "pinned by --version"
		r.Unreleased = requested == PlaceholderVersion
		return r, nil
	}
	if src.Local() {
		have, err := src.Versions(ctx, chart)
		if err == nil && len(have) == 1 {
			r.Version, r.From = have[0], "the only version in "+src.String()
			r.Unreleased = have[0] == PlaceholderVersion
			return r, nil
		}
	}
	if _, err := semver.StrictNewVersion(requested); err == nil {
		r.From = "pinned by charts/ambient"
		return r, nil
	}
	c, err := semver.NewConstraint(requested)
	if err != nil {
		return r, fmt.Errorf("charts/ambient: version %q of %s is neither a version nor a range: %w", requested, chart, err)
	}
	have, err := src.Versions(ctx, chart)
	if err != nil {
		return r, err
	}
	for _, v := range have { // newest first
		sv, err := semver.NewVersion(v)
		if err != nil || sv.Prerelease() != "" {
			continue
		}
		if c.Check(sv) {
			r.Version, r.From = v, "newest matching in "+src.String()
			return r, nil
		}
	}
	avail := "none"
	if len(have) > 0 {
		avail = strings.Join(have, ", ")
	}
	return r, fmt.Errorf("%w: no version of chart %s in %s matches %s (versions available: %s)", ErrVersionNotFound, chart, src, requested, avail)
}
