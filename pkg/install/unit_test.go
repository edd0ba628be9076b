package install

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/golden"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"sigs.k8s.io/yaml"
)

func TestProfileFromEmbeddedChart(t *testing.T) {
	p := mustProfile(t)
	want := []struct{ chart, release string }{{"base", "istio-base"}, {"istiod", "istiod"}, {"cni", "istio-cni"}, {"ztunnel", "ztunnel"}}
	if len(p.Components) != len(want) {
		t.Fatalf("components = %+v, want %d", p.Components, len(want))
	}
	for i, w := range want {
		c := p.Components[i]
		if c.Chart != w.chart || c.Release != w.release || c.Namespace != "istio-system" || c.Version != p.DefaultVersion || c.Repository == "" {
			t.Errorf("component %d = %+v, want chart %s release %s in istio-system at %s", i, c, w.chart, w.release, p.DefaultVersion)
		}
	}
	if got := p.BaseValues("istiod", "generic")["profile"]; got != "ambient" {
		t.Errorf("istiod profile = %v, want ambient", got)
	}
	if got := p.BaseValues("cni", "generic")["profile"]; got != "ambient" {
		t.Errorf("cni profile = %v, want ambient", got)
	}
	k3s := p.BaseValues("cni", "k3s")
	if g, _ := k3s["global"].(map[string]any); g["platform"] != "k3s" || k3s["profile"] != "ambient" {
		t.Errorf("cni values on k3s = %v, want profile ambient and global.platform k3s", k3s)
	}
	os, err := p.ForPlatform("openshift")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range os {
		wantNS := "istio-system"
		if c.Chart == "cni" || c.Chart == "ztunnel" {
			wantNS = "kube-system"
		}
		if c.Namespace != wantNS {
			t.Errorf("openshift: %s in %s, want %s", c.Chart, c.Namespace, wantNS)
		}
	}
	if v := p.BaseValues("istiod", "openshift")["trustedZtunnelNamespace"]; v != "kube-system" {
		t.Errorf("openshift istiod trustedZtunnelNamespace = %v", v)
	}
	if _, err := p.ForPlatform("plan9"); err == nil {
		t.Error("unknown platform accepted")
	}
}

func TestValueFlags(t *testing.T) {
	p := mustProfile(t)
	f := filepath.Join(t.TempDir(), "v.yaml")
	if err := os.WriteFile(f, []byte("ztunnel:\n  logLevel: warn\n  resources: {requests: {cpu: 1m}}\nistiod:\n  replicaCount: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		flags   ValueFlags
		check   func(t *testing.T, v map[string]map[string]any)
		wantErr string
	}{
		{"set wins over file", ValueFlags{Files: []string{f}, Set: []string{"ztunnel.logLevel=debug"}}, func(t *testing.T, v map[string]map[string]any) {
			if v["ztunnel"]["logLevel"] != "debug" {
				t.Errorf("ztunnel.logLevel = %v", v["ztunnel"]["logLevel"])
			}
			if v["istiod"]["replicaCount"] != float64(2) && v["istiod"]["replicaCount"] != int64(2) {
				t.Errorf("istiod.replicaCount = %#v", v["istiod"]["replicaCount"])
			}
			if v["istiod"]["profile"] != "ambient" {
				t.Errorf("our value lost: istiod.profile = %v", v["istiod"]["profile"])
			}
		}, ""},
		{"set-string keeps strings", ValueFlags{SetString: []string{"istiod.replicaCount=3"}}, func(t *testing.T, v map[string]map[string]any) {
			if v["istiod"]["replicaCount"] != "3" {
				t.Errorf("istiod.replicaCount = %#v, want string 3", v["istiod"]["replicaCount"])
			}
		}, ""},
		{"revision on all but base", ValueFlags{Revision: "canary"}, func(t *testing.T, v map[string]map[string]any) {
			for _, c := range []string{"istiod", "cni", "ztunnel"} {
				if v[c]["revision"] != "canary" {
					t.Errorf("%s revision = %v", c, v[c]["revision"])
				}
			}
			if _, ok := v["base"]["revision"]; ok {
				t.Error("base got a revision")
			}
		}, ""},
		{"several keys in one --set", ValueFlags{Set: []string{"ztunnel.logLevel=debug,cni.logLevel=warn"}}, func(t *testing.T, v map[string]map[string]any) {
			if v["cni"]["logLevel"] != "warn" || v["ztunnel"]["logLevel"] != "debug" {
				t.Errorf("values = %v", v)
			}
		}, ""},
		{"key without component", ValueFlags{Set: []string{"logLevel=debug"}}, nil, `key "logLevel" must start with a component name`},
		{"unknown component", ValueFlags{Set: []string{"pilot.x=1"}}, nil, `key "pilot.x" must start with a component name`},
		{"missing file", ValueFlags{Files: []string{"/nonexistent/v.yaml"}}, nil, "read values file /nonexistent/v.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := tt.flags.Resolve(p, "generic")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(tt.wantErr, "component name") && !errors.Is(err, ErrBadSet) {
					t.Errorf("err = %v, want ErrBadSet", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, v)
		})
	}
}

func TestLocalSourceFindsChartsByName(t *testing.T) {
	src, err := NewLocalSource(testCharts(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"base", "istiod", "cni", "ztunnel"} {
		vs, err := src.Versions(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(vs, ",") != "1.32.1,1.32.0,1.31.0,1.30.0,1.29.0,1.28.0,1.27.0" {
			t.Errorf("%s versions = %v", name, vs)
		}
	}
	ch, err := src.Load(ctx, "istiod", "1.27.0")
	if err != nil {
		t.Fatal(err)
	}
	if ch.Metadata.Name != "istiod" || ch.Metadata.Version != "1.27.0" {
		t.Errorf("loaded %s %s", ch.Metadata.Name, ch.Metadata.Version)
	}
	_, err = src.Load(ctx, "ztunnel", "1.33.0")
	if !errors.Is(err, ErrChartNotFound) || !strings.Contains(err.Error(), "version 1.33.0") || !strings.Contains(err.Error(), "1.32.1, 1.32.0, 1.31.0, 1.30.0, 1.29.0, 1.28.0, 1.27.0") {
		t.Errorf("missing version error = %v", err)
	}
	// The first path wins for a duplicate name and version.
	both, err := NewLocalSource(filepath.Join("testdata", "never-ready"), testCharts(t, "1.28.0"))
	if err != nil {
		t.Fatal(err)
	}
	z, err := both.Load(ctx, "ztunnel", "1.28.0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(z.Metadata.Description, "never ready") {
		t.Errorf("duplicate chart: got %q, want the one from the first path", z.Metadata.Description)
	}
}

func TestRepoSourceCachesCharts(t *testing.T) {
	srv := serveCharts(t, testCharts(t))
	cache := t.TempDir()
	ctx := context.Background()
	load := func() {
		src := &RepoSource{URL: srv.URL, CacheDir: cache}
		ch, err := src.Load(ctx, "ztunnel", "1.29.0")
		if err != nil {
			t.Fatal(err)
		}
		if ch.Metadata.Version != "1.29.0" {
			t.Fatalf("version %s", ch.Metadata.Version)
		}
	}
	load()
	load()
	var tgz, idx int
	for _, r := range srv.Requests() {
		switch {
		case strings.HasSuffix(r, ".tgz"):
			tgz++
		case strings.HasSuffix(r, "index.yaml"):
			idx++
		}
	}
	if idx != 2 || tgz != 1 {
		t.Errorf("requests %v: want the index twice (once per run) and the chart once (cached)", srv.Requests())
	}
	src := &RepoSource{URL: srv.URL, CacheDir: cache}
	_, err := src.Load(ctx, "istiod", "2.0.0")
	if !errors.Is(err, ErrChartNotFound) || !strings.Contains(err.Error(), "versions available: 1.32.1, 1.32.0, 1.31.0, 1.30.0, 1.29.0, 1.28.0, 1.27.0") {
		t.Errorf("missing version error = %v", err)
	}
	bad := &RepoSource{URL: "http://127.0.0.1:1/charts"}
	if _, err := bad.Versions(ctx, "base"); err == nil || !strings.Contains(err.Error(), "download the index of chart repository") {
		t.Errorf("unreachable repository error = %v", err)
	}
}

func TestNewSource(t *testing.T) {
	if _, err := NewSource("ftp://x", nil, ""); err == nil {
		t.Error("ftp URL accepted")
	}
	s, err := NewSource("oci://127.0.0.1:5000/istio", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*OCISource); !ok || s.String() != "oci://127.0.0.1:5000/istio" {
		t.Errorf("oci source = %T %s", s, s)
	}
	if _, err := NewSource("", []string{"/nonexistent"}, ""); err == nil {
		t.Error("missing --charts path accepted")
	}
}

// TestDryRunGolden renders the whole profile from the test charts; the
// golden file is what `install --dry-run -o yaml --charts testdata/charts`
// prints. Run with -update to rewrite it.
func TestDryRunGolden(t *testing.T) {
	src, err := NewLocalSource(testCharts(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, platform string }{{"generic", "generic"}, {"openshift", "openshift"}} {
		t.Run(tc.name, func(t *testing.T) {
			steps, err := Resolve(context.Background(), Options{Profile: mustProfile(t), Source: src, Platform: tc.platform,
				Values: ValueFlags{Set: []string{"ztunnel.logLevel=debug"}}})
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			if err := RenderAll(&b, steps); err != nil {
				t.Fatal(err)
			}
			got := b.String()
			// Install order: every base object before istiod's, and so on.
			last := -1
			for _, marker := range []string{"# Component base", "# Component istiod", "# Component cni", "# Component ztunnel"} {
				i := strings.Index(got, marker)
				if i <= last {
					t.Fatalf("%q out of order in the rendered stream", marker)
				}
				last = i
			}
			// Every document must parse as YAML.
			for _, doc := range strings.Split(got, "\n---\n") {
				var m map[string]any
				if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
					t.Fatalf("rendered document does not parse: %v\n%s", err, doc)
				}
			}
			golden.AssertString(t, filepath.Join("testdata", "dry-run-"+tc.name+".golden"), got)
		})
	}
}

// TestUmbrellaChartRendersWithPlainHelm checks the GitOps path: our
// umbrella chart, with its four dependencies vendored (here the test charts),
// renders as one Helm chart with our ambient values applied to each.
func TestUmbrellaChartRendersWithPlainHelm(t *testing.T) {
	umbrella, err := loader.LoadDir(filepath.Join(repoRoot(t), "charts", "ambient"))
	if err != nil {
		t.Fatal(err)
	}
	// Every supported version's charts, so the range ~1.32.0 resolves to
	// the newest 1.32 patch as Helm would against a repository index.
	src, err := NewLocalSource(testCharts(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range umbrella.Metadata.Dependencies {
		r, err := resolveVersion(context.Background(), src, d.Name, d.Version, false)
		if err != nil || r.Version != "1.32.1" {
			t.Fatalf("dependency %s %s resolved to %q (%v), want the newest 1.32 patch 1.32.1", d.Name, d.Version, r.Version, err)
		}
		ch, err := src.Load(context.Background(), d.Name, r.Version)
		if err != nil {
			t.Fatalf("dependency %s %s: %v", d.Name, d.Version, err)
		}
		umbrella.AddDependency(ch)
	}
	act := action.NewInstall(action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler)))
	act.DryRunStrategy, act.IncludeCRDs = action.DryRunClient, true
	act.ReleaseName, act.Namespace = "ambient", "istio-system"
	r, err := act.Run(umbrella, nil)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := v1Release(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: PILOT_ENABLE_AMBIENT\n              value: \"true\"", "AMBIENT_ENABLED: \"true\"", "kind: DaemonSet", "name: ztunnel", "authorizationpolicies.security.istio.io"} {
		if !strings.Contains(rel.Manifest, want) {
			t.Errorf("umbrella render lacks %q", want)
		}
	}
}
