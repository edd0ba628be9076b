package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// Render renders a step's manifest the way `helm template` does, without a
// cluster: CRDs included, hooks included, in Helm's install order.
func Render(st Step) (string, error) {
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	act := action.NewInstall(cfg)
	act.DryRunStrategy = action.DryRunClient
	act.Replace = true
	act.IncludeCRDs = true
	act.ReleaseName = st.Release
	act.Namespace = st.Namespace
	r, err := act.Run(st.Chart, st.Values)
	if err == nil && r == nil {
		err = errors.New("helm returned no release")
	}
	if err != nil {
		return "", fmt.Errorf("render %s (chart %s %s): %w", st.Release, st.Chart.Metadata.Name, st.Version, err)
	}
	rel, err := v1Release(r)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(strings.TrimSpace(rel.Manifest))
	for _, h := range rel.Hooks {
		fmt.Fprintf(&b, "\n---\n# Source: %s\n%s", h.Path, strings.TrimSpace(h.Manifest))
	}
	return b.String(), nil
}

// RenderAll writes every step's manifest, in install order, as one YAML
// stream with a comment header per component.
func RenderAll(w io.Writer, steps []Step) error {
	for _, st := range steps {
		m, err := Render(st)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "# Component %s: Helm release %s in namespace %s, chart %s %s\n%s\n",
			st.Chart.Metadata.Name, st.Release, st.Namespace, st.Chart.Metadata.Name, st.Version, m); err != nil {
			return err
		}
	}
	return nil
}

// ErrForbidden is returned (wrapped) when the identity lacks a permission;
// it is kube.ErrForbidden.
var ErrForbidden = kube.ErrForbidden

// checkAccess asks the API server (SelfSubjectAccessReview) whether the
// current identity may do what the steps need, so a restricted user gets one
// clear message listing every missing permission instead of a half install.
func (in *Installer) checkAccess(ctx context.Context, steps []Step) error {
	mapper, err := in.Getter.ToRESTMapper()
	if err != nil {
		return fmt.Errorf("build REST mapper: %w", err)
	}
	// Helm stores releases as Secrets; the rest is what the charts create.
	// kube.Require asks each distinct permission once.
	var need []kube.Permission
	add := func(p kube.Permission) { need = append(need, p) }
	for _, st := range steps {
		add(kube.Permission{Verb: "list", Resource: "secrets", Namespace: st.Namespace})
		add(kube.Permission{Verb: "create", Resource: "secrets", Namespace: st.Namespace})
		m, err := Render(st)
		if err != nil {
			return fmt.Errorf("%w; nothing was applied", err)
		}
		for _, doc := range releaseutil.SplitManifests(m) {
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			}
			if yaml.Unmarshal([]byte(doc), &head) != nil || head.Kind == "" {
				continue
			}
			gv, err := schema.ParseGroupVersion(head.APIVersion)
			if err != nil {
				continue
			}
			mp, err := mapper.RESTMapping(gv.WithKind(head.Kind).GroupKind(), gv.Version)
			if err != nil {
				continue // a kind the cluster does not know yet (a CRD this run installs)
			}
			ns := ""
			if mp.Scope.Name() == "namespace" {
				ns = head.Metadata.Namespace
				if ns == "" {
					ns = st.Namespace
				}
			}
			add(kube.Permission{Verb: "create", Group: mp.Resource.Group, Resource: mp.Resource.Resource, Namespace: ns})
		}
	}
	err = kube.Require(ctx, in.Kube, need)
	var fe *kube.ForbiddenError
	if errors.As(err, &fe) {
		return fmt.Errorf("%w: the current identity cannot %s; installing Istio needs cluster-admin-like rights: ask a cluster admin",
			ErrForbidden, strings.Join(fe.Strings(), ", cannot "))
	}
	if err != nil {
		return in.clusterErr(err)
	}
	return nil
}
