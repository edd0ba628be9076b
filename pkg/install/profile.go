// Package install installs, upgrades and removes Istio's ambient profile as
// one Helm release per component, through the Helm Go SDK. It is the only
// package of kubectl-ambient that imports helm.sh/...
//
// What to install comes from our umbrella chart (charts/ambient): its
// dependencies give the components in order, with the pinned default version
// and repository; its values and platform files give our ambient values.
package install

import (
	"fmt"
	"io/fs"
	"path"
	"strings"

	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-ambient/kubectl-ambient/charts"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube/platform"
)

// Component is one Istio chart installed as its own Helm release.
type Component struct {
	// Chart is the chart name (base, istiod, cni, ztunnel); users address
	// values to it (--set ztunnel.logLevel=debug).
	Chart string `json:"chart"`
	// Release is the Helm release name (istio-base, istiod, istio-cni, ztunnel).
	Release string `json:"release"`
	// Namespace is where the release and its namespaced objects live.
	Namespace string `json:"namespace"`
	// Version is the chart version to install.
	Version string `json:"version"`
	// Repository is the default chart repository from the umbrella chart.
	Repository string `json:"repository"`
}

// Component chart names, as Istio names its charts.
const (
	ChartBase    = "base"
	ChartIstiod  = "istiod"
	ChartCNI     = "cni"
	ChartZtunnel = "ztunnel"
)

// Profile is the umbrella chart read into what install needs.
type Profile struct {
	// Components in install order.
	Components []Component
	// DefaultVersion is the version range of the dependencies (~1.32.0),
	// resolved per chart against the source's versions.
	DefaultVersion string
	// Repository is the default chart repository.
	Repository string
	// values holds the umbrella's values.yaml, keyed by component chart.
	values map[string]any
	// platforms holds platforms/<name>.yaml.
	platforms map[string]map[string]any
}

// LoadProfile reads the embedded umbrella chart.
func LoadProfile() (*Profile, error) {
	sub, err := fs.Sub(charts.FS, charts.Ambient)
	if err != nil {
		return nil, fmt.Errorf("read embedded chart %s: %w", charts.Ambient, err)
	}
	return ParseProfile(sub)
}

// ParseProfile reads an umbrella chart from a file system rooted at the chart.
func ParseProfile(fsys fs.FS) (*Profile, error) {
	var files []*archive.BufferedFile
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files = append(files, &archive.BufferedFile{Name: p, Data: b})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read umbrella chart: %w", err)
	}
	ch, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("load umbrella chart: %w", err)
	}
	return profileFromChart(ch)
}

func profileFromChart(ch *chart.Chart) (*Profile, error) {
	md := ch.Metadata
	if len(md.Dependencies) == 0 {
		return nil, fmt.Errorf("umbrella chart %s lists no dependencies", md.Name)
	}
	ns := md.Annotations["kubectl-ambient/namespace"]
	if ns == "" {
		ns = ambient.IstioNamespace
	}
	p := &Profile{DefaultVersion: md.AppVersion, values: ch.Values, platforms: map[string]map[string]any{}}
	for _, d := range md.Dependencies {
		rel := md.Annotations["kubectl-ambient/release."+d.Name]
		if rel == "" {
			rel = d.Name
		}
		p.Components = append(p.Components, Component{Chart: d.Name, Release: rel, Namespace: ns, Version: d.Version, Repository: d.Repository})
		if p.Repository == "" {
			p.Repository = d.Repository
		}
	}
	// The dependencies' version (a range such as ~1.32.0) is what install
	// resolves; appVersion only documents it.
	if v := p.Components[0].Version; v != "" {
		p.DefaultVersion = v
	}
	for _, f := range ch.Files {
		dir, file := path.Split(f.Name)
		if dir != "platforms/" || !strings.HasSuffix(file, ".yaml") {
			continue
		}
		m := map[string]any{}
		if err := yaml.Unmarshal(f.Data, &m); err != nil {
			return nil, fmt.Errorf("umbrella chart file %s: %w", f.Name, err)
		}
		p.platforms[strings.TrimSuffix(file, ".yaml")] = m
	}
	return p, nil
}

// Component returns the component for a chart name.
func (p *Profile) Component(chartName string) (Component, bool) {
	for _, c := range p.Components {
		if c.Chart == chartName {
			return c, true
		}
	}
	return Component{}, false
}

// Names returns the component chart names in install order.
func (p *Profile) Names() []string {
	out := make([]string, len(p.Components))
	for i, c := range p.Components {
		out[i] = c.Chart
	}
	return out
}

// ForPlatform returns the components with the namespaces a platform asks
// for (OpenShift runs the node agents in kube-system).
func (p *Profile) ForPlatform(name string) ([]Component, error) {
	if name != "" && !platform.IsKnown(name) {
		return nil, fmt.Errorf("unknown platform %q; use one of auto, %s", name, strings.Join(platform.Known, ", "))
	}
	out := append([]Component(nil), p.Components...)
	pv := p.platforms[name]
	ka, _ := pv["kubectlAmbient"].(map[string]any)
	nss, _ := ka["namespaces"].(map[string]any)
	for i := range out {
		if ns, ok := nss[out[i].Chart].(string); ok && ns != "" {
			out[i].Namespace = ns
		}
	}
	return out, nil
}

// BaseValues returns our values for a component on a platform: the
// umbrella's values.yaml section merged with the platform file's section.
func (p *Profile) BaseValues(chartName, platformName string) map[string]any {
	out := map[string]any{}
	if v, ok := p.values[chartName].(map[string]any); ok {
		out = mergeMaps(out, v)
	}
	if v, ok := p.platforms[platformName][chartName].(map[string]any); ok {
		out = mergeMaps(out, v)
	}
	return out
}

// mergeMaps deep-merges src into a copy of dst; src wins.
func mergeMaps(dst, src map[string]any) map[string]any {
	out := make(map[string]any, len(dst)+len(src))
	for k, v := range dst {
		out[k] = v
	}
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := out[k].(map[string]any); ok {
				out[k] = mergeMaps(dm, sm)
				continue
			}
			out[k] = mergeMaps(map[string]any{}, sm)
			continue
		}
		out[k] = v
	}
	return out
}
