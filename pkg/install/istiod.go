package install

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// IstiodVersion returns the versions of the istiod Deployments (app=istiod)
// in every namespace, comma-separated, with the revision when it is not the
// default; "" when none is installed.
func IstiodVersion(ctx context.Context, kc kubernetes.Interface) (string, error) {
	deps, err := kc.AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: "app=istiod"})
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
		v := d.Labels["app.kubernetes.io/version"]
		if v == "" && len(d.Spec.Template.Spec.Containers) > 0 {
			img := d.Spec.Template.Spec.Containers[0].Image
			if i := strings.LastIndex(img, ":"); i >= 0 && !strings.Contains(img[i:], "/") {
				v = img[i+1:]
			}
		}
		if v == "" {
			continue
		}
		if rev := d.Labels["istio.io/rev"]; rev != "" && rev != "default" {
			v += " (revision " + rev + ")"
		}
		out = append(out, v)
	}
	return strings.Join(out, ", ")
}
