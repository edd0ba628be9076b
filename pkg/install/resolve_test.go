package install

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// sourceTree copies the 1.32.1 test charts and gives every Chart.yaml the
// placeholder version of a tree taken from Istio's source repository.
func sourceTree(t *testing.T) string {
	t.Helper()
	from, to := testCharts(t, "1.32.1"), t.TempDir()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if d.Name() == "Chart.yaml" {
			b = []byte(strings.ReplaceAll(string(b), "1.32.1", PlaceholderVersion))
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

func TestResolveVersion(t *testing.T) {
	ctx := context.Background()
	all, err := NewLocalSource(testCharts(t))
	if err != nil {
		t.Fatal(err)
	}
	one, err := NewLocalSource(testCharts(t, "1.31.0"))
	if err != nil {
		t.Fatal(err)
	}
	tree, err := NewLocalSource(sourceTree(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		src        Source
		requested  string
		pinned     bool
		want       string
		unreleased bool
		wantErr    string
	}{
		{"range takes the newest patch", all, "~1.32.0", false, "1.32.1", false, ""},
		{"range of an older minor", all, "~1.30.0", false, "1.30.0", false, ""},
		{"pinned version is used as given", all, "1.32.0", true, "1.32.0", false, ""},
		{"offline: the charts' only version", one, "~1.32.0", false, "1.31.0", false, ""},
		{"source tree placeholder", tree, "~1.32.0", false, "1.0.0", true, ""},
		{"no match", all, "~1.33.0", false, "", false, "no version of chart istiod"},
		{"not a range", all, "latest-ish", false, "", false, "neither a version nor a range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := resolveVersion(ctx, tt.src, "istiod", tt.requested, tt.pinned)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Version != tt.want || r.Unreleased != tt.unreleased {
				t.Errorf("resolved %+v, want %s (unreleased %v)", r, tt.want, tt.unreleased)
			}
		})
	}
}

// TestSourceTreeRendersAndSaysUnreleased: a tree with placeholder versions
// renders and is reported as an unreleased source tree.
func TestSourceTreeRendersAndSaysUnreleased(t *testing.T) {
	src, err := NewLocalSource(sourceTree(t))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := Resolve(context.Background(), Options{Profile: mustProfile(t), Source: src, Platform: "generic"})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range steps {
		if got := st.Resolution.String(); got != "unreleased source tree (chart version 1.0.0)" {
			t.Errorf("%s: %q", st.Chart.Metadata.Name, got)
		}
	}
	var b strings.Builder
	if err := RenderAll(&b, steps); err != nil || !strings.Contains(b.String(), "PILOT_ENABLE_AMBIENT") {
		t.Errorf("render of the source tree: %v", err)
	}
}

// TestPrecheckDefaultIsInstallDefault: precheck judges the cluster against
// the Istio minor install would choose (the charts/ambient range).
func TestPrecheckDefaultIsInstallDefault(t *testing.T) {
	c, err := semver.NewConstraint(mustProfile(t).DefaultVersion)
	if err != nil {
		t.Fatal(err)
	}
	v := semver.MustParse(ambient.DefaultIstioVersion + ".0")
	if !c.Check(v) {
		t.Errorf("ambient.DefaultIstioVersion %s is outside charts/ambient's range %s", ambient.DefaultIstioVersion, mustProfile(t).DefaultVersion)
	}
}

func TestCheckUpgradePath(t *testing.T) {
	tests := []struct{ from, to, want string }{
		{"1.30.0", "1.31.0", ""},
		{"1.31.0", "1.32.1", ""},
		{"1.32.1", "1.31.0", ""},
		{"1.30.0", "1.32.0", "upgrade to the newest 1.31 patch first"},
		{"", "1.32.0", ""},
		{"1.0.0", "1.32.0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.from+"->"+tt.to, func(t *testing.T) {
			err := checkUpgradePath(tt.from, tt.to)
			if tt.want == "" && err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && (!errors.Is(err, ErrUpgradePath) || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
