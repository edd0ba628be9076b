package ambient

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Version is a parsed Istio or Kubernetes version: "1.28", "v1.33.13",
// "1.28.0-distroless" or "v1.31.4-gke.1000". The zero Version is invalid.
type Version struct {
	sv *semver.Version
}

// ParseVersion reads a version of the form [v]major.minor[.patch][-pre][+meta].
// An image tag that is not a version ("latest", "master") is an error.
func ParseVersion(s string) (Version, error) {
	t := strings.TrimSpace(s)
	core := strings.TrimPrefix(t, "v")
	if i := strings.IndexAny(core, "-+"); i >= 0 {
		core = core[:i]
	}
	// Masterminds reads "1" as 1.0.0; a version we judge must name its minor.
	if !strings.Contains(core, ".") {
		return Version{}, fmt.Errorf("version %q is not major.minor[.patch]", s)
	}
	sv, err := semver.NewVersion(t)
	if err != nil {
		return Version{}, fmt.Errorf("version %q is not major.minor[.patch]: %w", s, err)
	}
	return Version{sv: sv}, nil
}

// IsValid says whether v came from a successful ParseVersion.
func (v Version) IsValid() bool { return v.sv != nil }

// Major is the major number (0 for the zero Version).
func (v Version) Major() uint64 {
	if v.sv == nil {
		return 0
	}
	return v.sv.Major()
}

// Minor is the minor number (0 for the zero Version).
func (v Version) Minor() uint64 {
	if v.sv == nil {
		return 0
	}
	return v.sv.Minor()
}

// Patch is the patch number (0 for the zero Version).
func (v Version) Patch() uint64 {
	if v.sv == nil {
		return 0
	}
	return v.sv.Patch()
}

// MinorString is "major.minor", the key of SupportTable ("1.28").
func (v Version) MinorString() string { return fmt.Sprintf("%d.%d", v.Major(), v.Minor()) }

// String is the version as it was written.
func (v Version) String() string {
	if v.sv == nil {
		return ""
	}
	return v.sv.Original()
}

// Compare orders versions by semantic versioning (a pre-release sorts before
// its release); the zero Version sorts first.
func (v Version) Compare(o Version) int {
	switch {
	case v.sv == nil && o.sv == nil:
		return 0
	case v.sv == nil:
		return -1
	case o.sv == nil:
		return 1
	}
	return v.sv.Compare(o.sv)
}

// Less says whether v is older than o.
func (v Version) Less(o Version) bool { return v.Compare(o) < 0 }

// MinorOf turns "1.28.1", "v1.28" or "1.28" into "1.28".
func MinorOf(s string) (string, error) {
	v, err := ParseVersion(s)
	if err != nil {
		return "", err
	}
	return v.MinorString(), nil
}

// compareVersionStrings orders versions oldest first, with strings that are
// not versions after every version, in string order.
func compareVersionStrings(a, b string) int {
	va, ea := ParseVersion(a)
	vb, eb := ParseVersion(b)
	switch {
	case ea != nil && eb != nil:
		return cmp.Compare(a, b)
	case ea != nil:
		return 1
	case eb != nil:
		return -1
	}
	return va.Compare(vb)
}

// SortVersions sorts versions oldest first; strings that are not versions
// go last.
func SortVersions(vs []string) {
	slices.SortStableFunc(vs, compareVersionStrings)
}

// SortVersionsNewestFirst sorts versions newest first; strings that are not
// versions go last.
func SortVersionsNewestFirst(vs []string) {
	slices.SortStableFunc(vs, func(a, b string) int {
		va, ea := ParseVersion(a)
		vb, eb := ParseVersion(b)
		switch {
		case ea != nil && eb != nil:
			return cmp.Compare(b, a)
		case ea != nil:
			return 1
		case eb != nil:
			return -1
		}
		return vb.Compare(va)
	})
}
