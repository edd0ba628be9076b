package install

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"helm.sh/helm/v4/pkg/strvals"
	"sigs.k8s.io/yaml"
)

// ValueFlags are the user's value overrides, each addressed to a component by
// its chart name: `--set ztunnel.logLevel=debug`, and -f files shaped like the
// umbrella chart's values.yaml (top-level keys are component names).
type ValueFlags struct {
	Files     []string
	Set       []string
	SetString []string
	// Revision sets `revision` on every component (istiod, cni, ztunnel).
	Revision string
}

// Resolve merges, per component: our values for the platform, the -f files,
// --set, then --set-string. A key that names no component is an error.
func (v ValueFlags) Resolve(p *Profile, platformName string) (map[string]map[string]any, error) {
	names := p.Names()
	user := map[string]any{}
	for _, f := range v.Files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read values file %s: %w", f, err)
		}
		m := map[string]any{}
		if err := yaml.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("values file %s: %w; it must be YAML keyed by component (%s)", f, err, strings.Join(names, ", "))
		}
		for k := range m {
			if !slices.Contains(names, k) {
				return nil, fmt.Errorf("values file %s: top-level key %q is not a component; use one of %s", f, k, strings.Join(names, ", "))
			}
		}
		user = mergeMaps(user, m)
	}
	for _, s := range v.Set {
		if err := checkComponentKey(s, names); err != nil {
			return nil, err
		}
		if err := strvals.ParseInto(s, user); err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrBadSet, s, err)
		}
	}
	for _, s := range v.SetString {
		if err := checkComponentKey(s, names); err != nil {
			return nil, err
		}
		if err := strvals.ParseIntoString(s, user); err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrBadSet, s, err)
		}
	}
	out := map[string]map[string]any{}
	for _, n := range names {
		vals := p.BaseValues(n, platformName)
		if v.Revision != "" && n != ChartBase {
			vals["revision"] = v.Revision
		}
		if m, ok := user[n].(map[string]any); ok {
			vals = mergeMaps(vals, m)
		}
		out[n] = vals
	}
	return out, nil
}

// checkComponentKey makes sure every key of a --set expression starts with a
// component name, so `--set logLevel=debug` is refused instead of ignored.
func checkComponentKey(expr string, names []string) error {
	for _, kv := range splitTopLevel(expr) {
		key, _, _ := strings.Cut(kv, "=")
		comp, _, ok := strings.Cut(key, ".")
		if !ok || !slices.Contains(names, comp) {
			return fmt.Errorf("%w %s: key %q must start with a component name (%s), e.g. ztunnel.logLevel=debug", ErrBadSet, expr, key, strings.Join(names, ", "))
		}
	}
	return nil
}

// splitTopLevel splits a --set expression on commas outside {} and [] and
// not escaped, as Helm does.
func splitTopLevel(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}
