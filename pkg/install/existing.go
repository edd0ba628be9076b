package install

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ErrOtherInstall is returned (wrapped) when Istio is already installed by
// something other than our releases: Istio's all-in-one ambient chart or
// istioctl. Installing again would run two control planes over one set of
// objects.
var ErrOtherInstall = errors.New("istio is already installed by another tool")

// AmbientChartRelease is the release name Istio's docs give its all-in-one
// ambient chart.
const AmbientChartRelease = "istio-ambient"

// helmReleaseAnnotation is the annotation Helm writes on every object it
// owns, naming the release.
const helmReleaseAnnotation = "meta.helm.sh/release-name"

// checkOtherInstall looks for an install we did not make, before a component
// of ours is installed fresh: a release of Istio's ambient chart in one of
// our namespaces, or istiod, istio-cni-node or ztunnel objects that no
// release of ours owns (an istioctl install). With adopt it only notes what
// it found: Helm's take-ownership takes the objects over.
func (in *Installer) checkOtherInstall(ctx context.Context, o Options, steps []Step) error {
	var found []string
	seen := map[string]bool{}
	for _, st := range steps {
		if seen[st.Namespace] {
			continue
		}
		seen[st.Namespace] = true
		rel, err := in.lastRelease(Component{Release: AmbientChartRelease, Namespace: st.Namespace})
		if err != nil {
			return err
		}
		if rel != nil && rel.Info.Status != "uninstalled" {
			found = append(found, fmt.Sprintf("Helm release %s (chart %s %s, Istio's all-in-one ambient chart) in %s; uninstall it first: helm uninstall %s -n %s",
				AmbientChartRelease, rel.Chart.Metadata.Name, rel.Chart.Metadata.Version, st.Namespace, AmbientChartRelease, st.Namespace))
		}
	}
	for _, st := range steps {
		last, err := in.lastRelease(st.Component)
		if err != nil {
			return err
		}
		if last != nil && last.Info.Status != "uninstalled" {
			continue // ours
		}
		for _, w := range componentWorkloads(st) {
			ann, err := in.workloadAnnotations(ctx, w)
			if err != nil {
				return err
			}
			if ann == nil {
				continue
			}
			owner := ann[helmReleaseAnnotation]
			if owner == st.Release {
				continue
			}
			if owner == "" {
				owner = "no Helm release (an istioctl install?)"
			} else {
				owner = "Helm release " + owner
			}
			found = append(found, fmt.Sprintf("%s, owned by %s", w, owner))
		}
	}
	if len(found) == 0 {
		return nil
	}
	if o.Adopt {
		for _, f := range found {
			in.Progress.Note("adopting: %s", f)
		}
		return nil
	}
	return fmt.Errorf("%w: found %s; take these objects over with Helm's take-ownership, or uninstall what installed them first",
		ErrOtherInstall, strings.Join(found, "; "))
}

// componentWorkloads names the workload each component's chart creates.
func componentWorkloads(st Step) []Workload {
	switch st.Chart.Metadata.Name {
	case ChartIstiod:
		name := "istiod"
		if r, _ := st.Values["revision"].(string); r != "" {
			name += "-" + r
		}
		return []Workload{{Kind: "Deployment", Namespace: st.Namespace, Name: name}}
	case ChartCNI:
		return []Workload{{Kind: "DaemonSet", Namespace: st.Namespace, Name: "istio-cni-node"}}
	case ChartZtunnel:
		return []Workload{{Kind: "DaemonSet", Namespace: st.Namespace, Name: "ztunnel"}}
	}
	return nil
}

// workloadAnnotations returns a workload's annotations (non-nil when it
// exists), nil when it does not.
func (in *Installer) workloadAnnotations(ctx context.Context, w Workload) (map[string]string, error) {
	var meta *metav1.ObjectMeta
	switch w.Kind {
	case "Deployment":
		d, err := in.Kube.AppsV1().Deployments(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, in.clusterErr(fmt.Errorf("read %s: %w", w, err))
		}
		meta = &d.ObjectMeta
	case "DaemonSet":
		d, err := in.Kube.AppsV1().DaemonSets(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, in.clusterErr(fmt.Errorf("read %s: %w", w, err))
		}
		meta = &d.ObjectMeta
	default:
		return nil, nil
	}
	if meta.Annotations == nil {
		return map[string]string{}, nil
	}
	return meta.Annotations, nil
}
