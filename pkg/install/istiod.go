package install

import (
	"context"
	"fmt"
	"strings"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// IstiodVersion returns the versions of the istiod Deployments (app=istiod)
// in every namespace, comma-separated, with the revision when it is not the
// default; "" when none is installed.
func IstiodVersion(ctx context.Context, kc kubernetes.Interface) (string, error) {
	deps, err := kc.AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: ambient.IstiodSelector})
	if err != nil {
		return "", fmt.Errorf("list istiod deployments: %w", err)
	}
	return istiodVersions(deps.Items), nil
}

// istiodVersions reads each Deployment's app.kubernetes.io/version label, or
// its first container's image tag on hand-made installs without labels.
func istiodVersions(deps []appsv1.Deployment) string {
	var out []string
	for _, d := range deps {
		v := d.Labels[ambient.LabelAppVersion]
		if v == "" && len(d.Spec.Template.Spec.Containers) > 0 {
			v = ambient.ImageTag(d.Spec.Template.Spec.Containers[0].Image)
		}
		if v == "" {
			continue
		}
		if rev := d.Labels[ambient.LabelRev]; rev != "" && rev != "default" {
			v += " (revision " + rev + ")"
		}
		out = append(out, v)
	}
	return strings.Join(out, ", ")
}
