// Package injector is a TEST-ONLY stand-in for Istio's sidecar injector: a
// real mutating admission webhook, served on 127.0.0.1 and registered with
// the lab's API server, that gives new pods of injection-enabled namespaces
// what the real injector leaves on them as far as kubectl-ambient can see:
// the sidecar.istio.io/status annotation and an istio-proxy container
// (with ISTIO_META_ENABLE_HBONE=true, as the ambient profile sets). It does
// not run Envoy or change networking. Never deploy it to a real cluster.
//
// The lab's pods are fake (kwok), so without it sidecar pods could only be
// written with the sidecar baked into their template, and a restart would
// bring the sidecar back. With it, a restart after enrollment (injection
// label removed) creates pods without a sidecar, as in a real cluster.
package injectorsim

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// The names the real injector uses, which kubectl-ambient reads.
// (the labels and the status annotation are package ambient's).
const (
	AnnotationInject = "sidecar.istio.io/inject"
	EnvEnableHBONE   = "ISTIO_META_ENABLE_HBONE"
)

// statusValue is the shape of the real annotation's value.
const statusValue = `{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["istio-envoy"],"revision":"default"}`

// Options tune the stand-in.
type Options struct {
	// Scope is a namespace label value the stand-in is limited to (label
	// Injector.ScopeLabel), so tests sharing a lab do not see it.
	Scope string
	// NoHBONE leaves ISTIO_META_ENABLE_HBONE out (a sidecar from before the
	// ambient profile).
	NoHBONE bool
}

// ScopeLabel is the namespace label that opts a namespace in.
const ScopeLabel = "kubectl-ambient.test/injector"

// Injector is a running stand-in.
type Injector struct {
	kc   kubernetes.Interface
	srv  *httptest.Server
	name string
	opts Options
	// Injected counts the pods it mutated.
	Injected atomic.Int64
}

// Start serves the webhook, registers it and waits until the API server
// calls it (a server-side dry-run pod create in a scratch namespace).
func Start(ctx context.Context, kc kubernetes.Interface, opts Options) (*Injector, error) {
	if opts.Scope == "" {
		return nil, errors.New("injector stand-in: Options.Scope is required")
	}
	in := &Injector{kc: kc, opts: opts, name: "kubectl-ambient-test-injector-" + opts.Scope}
	in.srv = httptest.NewUnstartedServer(http.HandlerFunc(in.serve))
	in.srv.StartTLS()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: in.srv.Certificate().Raw})
	url := in.srv.URL + "/inject"
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	timeout := int32(5)
	hook := func(name string, sel metav1.LabelSelectorRequirement) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{
			Name:         name,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: ca},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			NamespaceSelector: &metav1.LabelSelector{
				MatchLabels:      map[string]string{ScopeLabel: opts.Scope},
				MatchExpressions: []metav1.LabelSelectorRequirement{sel},
			},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}
	}
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: in.name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			hook("namespace.sidecar-injector.test.invalid", metav1.LabelSelectorRequirement{Key: ambient.LabelInjection, Operator: metav1.LabelSelectorOpIn, Values: []string{"enabled"}}),
			hook("revision.sidecar-injector.test.invalid", metav1.LabelSelectorRequirement{Key: ambient.LabelRev, Operator: metav1.LabelSelectorOpExists}),
		},
	}
	if _, err := kc.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		in.srv.Close()
		return nil, fmt.Errorf("injector stand-in: register webhook: %w", err)
	}
	if err := in.waitActive(ctx); err != nil {
		in.Close()
		return nil, err
	}
	return in, nil
}

// waitActive dry-runs a pod create in a scratch namespace until the API
// server has loaded the webhook and the pod comes back injected.
func (in *Injector) waitActive(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "injector-probe-",
		Labels: map[string]string{ScopeLabel: in.opts.Scope, ambient.LabelInjection: "enabled"}}}
	created, err := in.kc.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("injector stand-in: probe namespace: %w", err)
	}
	defer func() {
		_ = in.kc.CoreV1().Namespaces().Delete(context.WithoutCancel(ctx), created.Name, metav1.DeleteOptions{})
	}()
	probe := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "probe"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/lab/app:1"}}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := in.kc.CoreV1().Pods(created.Name).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && p.Annotations[ambient.AnnotationSidecarStatus] != "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("injector stand-in: the API server did not call the webhook within 30s (last error: %w)", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close unregisters the webhook and stops the server.
func (in *Injector) Close() {
	err := in.kc.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), in.name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		// Leave the server up: with failurePolicy Fail, a registered
		// webhook that cannot be reached would block pod creation.
		return
	}
	in.srv.Close()
}

func (in *Injector) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	var pod corev1.Pod
	if err := json.Unmarshal(review.Request.Object.Raw, &pod); err == nil {
		if patch := in.patch(&pod); patch != nil {
			pt := admissionv1.PatchTypeJSONPatch
			resp.Patch, resp.PatchType = patch, &pt
			if review.Request.DryRun == nil || !*review.Request.DryRun {
				in.Injected.Add(1)
			}
		}
	}
	review.Response = resp
	review.Request = nil
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&review)
}

// patch is the JSON patch injecting pod, or nil when it is not injected.
func (in *Injector) patch(pod *corev1.Pod) []byte {
	if pod.Spec.HostNetwork || pod.Annotations[AnnotationInject] == "false" || pod.Annotations[ambient.AnnotationSidecarStatus] != "" {
		return nil
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == ambient.ProxyContainer {
			return nil
		}
	}
	proxy := corev1.Container{Name: ambient.ProxyContainer, Image: "registry.invalid/istio/proxyv2:1.28.0", Args: []string{"proxy", "sidecar"}}
	if !in.opts.NoHBONE {
		proxy.Env = []corev1.EnvVar{{Name: EnvEnableHBONE, Value: "true"}}
	}
	var ops []map[string]any
	if pod.Annotations == nil {
		ops = append(ops, map[string]any{"op": "add", "path": "/metadata/annotations", "value": map[string]string{}})
	}
	ops = append(ops,
		map[string]any{"op": "add", "path": "/metadata/annotations/sidecar.istio.io~1status", "value": statusValue},
		map[string]any{"op": "add", "path": "/spec/containers/-", "value": proxy},
	)
	b, _ := json.Marshal(ops)
	return b
}
