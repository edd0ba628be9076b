package install

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	rcommon "helm.sh/helm/v4/pkg/release/common"
	release "helm.sh/helm/v4/pkg/release/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chart "helm.sh/helm/v4/pkg/chart/v2"
)

// TestNeverInstallTwice: an istioctl install (istiod without a release of
// ours) and a release of Istio's all-in-one ambient chart are found and
// refused; --adopt takes the istioctl objects over.
func TestNeverInstallTwice(t *testing.T) {
	lab := getLab(t)
	ctx := context.Background()
	kc := lab.Clients.Kube
	src, err := NewLocalSource(testCharts(t, "1.32.1"))
	if err != nil {
		t.Fatal(err)
	}
	in := newInstaller(t, lab.Flags(), &syncBuffer{})
	t.Cleanup(func() {
		if _, err := in.Uninstall(context.Background(), UninstallOptions{Profile: mustProfile(t), Platform: "generic", Force: true}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	t.Run("a release of the ambient chart is refused", func(t *testing.T) {
		cfg, err := in.config("istio-system")
		if err != nil {
			t.Fatal(err)
		}
		rel := &release.Release{Name: AmbientChartRelease, Namespace: "istio-system", Version: 1,
			Chart: &chart.Chart{Metadata: &chart.Metadata{Name: "ambient", Version: "1.32.1", APIVersion: "v2"}},
			Info:  &release.Info{Status: rcommon.StatusDeployed, LastDeployed: time.Now()}}
		if err := cfg.Releases.Create(rel); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if _, err := cfg.Releases.Delete(AmbientChartRelease, 1); err != nil {
				t.Error(err)
			}
		}()
		_, err = run(ctx, t, in, installOpts(t, src, ""))
		if !errors.Is(err, ErrOtherInstall) || !strings.Contains(err.Error(), "Helm release istio-ambient (chart ambient 1.32.1") ||
			!strings.Contains(err.Error(), "helm uninstall istio-ambient -n istio-system") {
			t.Fatalf("err = %v", err)
		}
		if r := releases(t, in); len(r) != 0 {
			t.Errorf("releases created after the refusal: %v", keys(r))
		}
	})

	t.Run("istiod of an istioctl install is refused, then adopted", func(t *testing.T) {
		one := int32(1)
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: "istio-system", Labels: map[string]string{"operator.istio.io/component": "Pilot"}},
			Spec: appsv1.DeploymentSpec{
				Replicas: &one,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "istiod", "istio.io/rev": "default"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "istiod", "istio.io/rev": "default"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "discovery", Image: "docker.io/istio/pilot:1.31.0"}}},
				},
			},
		}
		if _, err := kc.AppsV1().Deployments("istio-system").Create(ctx, dep, metav1.CreateOptions{FieldManager: "istioctl"}); err != nil {
			t.Fatal(err)
		}
		_, err := run(ctx, t, in, installOpts(t, src, ""))
		if !errors.Is(err, ErrOtherInstall) || !strings.Contains(err.Error(), "Deployment istio-system/istiod, owned by no Helm release") {
			t.Fatalf("err = %v", err)
		}
		o := installOpts(t, src, "")
		o.Adopt = true
		mustRun(ctx, t, in, o)
		got, err := kc.AppsV1().Deployments("istio-system").Get(ctx, "istiod", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Annotations[helmReleaseAnnotation] != "istiod" || !strings.HasSuffix(got.Spec.Template.Spec.Containers[0].Image, "/pilot:1.32.1-distroless") {
			t.Errorf("adopted istiod: annotations %v image %s", got.Annotations, got.Spec.Template.Spec.Containers[0].Image)
		}
	})
}
