package migrate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/cnisim"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/injectorsim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/cmd"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/migrate"
)

func TestMain(m *testing.M) { kubelab.Main(m, kubelab.Options{}) }

var crdOnce sync.Once

// installCRDs installs the minimal Istio and Gateway API CRDs from testdata
// once per lab and waits until they are served.
func installCRDs(t *testing.T, lab *kubelab.Lab) {
	t.Helper()
	crdOnce.Do(func() {
		lab.Kubectl(t, "apply", "-f", filepath.Join("testdata", "crds.yaml"))
		lab.Kubectl(t, "wait", "--for=condition=Established", "--timeout=60s", "crd",
			"authorizationpolicies.security.istio.io", "peerauthentications.security.istio.io", "virtualservices.networking.istio.io",
			"destinationrules.networking.istio.io", "envoyfilters.networking.istio.io", "sidecars.networking.istio.io", "gateways.gateway.networking.k8s.io")
	})
}

// startCNI runs the test-only istio-cni stand-in until the test ends. It
// writes enabled once per pod, as istio-cni does when ztunnel accepts pods.
func startCNI(t *testing.T, lab *kubelab.Lab) *cnisim.Controller {
	t.Helper()
	return startCNIWith(t, lab, cnisim.Options{Workers: 32})
}

// startCNIWith runs the stand-in with opts (Delay: a ztunnel slow to accept
// pods, so captures go through pending).
func startCNIWith(t *testing.T, lab *kubelab.Lab, opts cnisim.Options) *cnisim.Controller {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := cnisim.New(lab.Clients.Kube, opts)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("cni stand-in: %v", err)
		}
	})
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) { return c.HasSynced(), nil }); err != nil {
		t.Fatalf("cni stand-in did not sync: %v", err)
	}
	return c
}

// deployment creates a Deployment whose pods look injected when sidecar is
// true: the real sidecar.istio.io/status annotation and an istio-proxy
// container (with ISTIO_META_ENABLE_HBONE=true when hbone).
func deployment(t *testing.T, lab *kubelab.Lab, ns, name string, replicas int32, sidecar, hbone bool) *appsv1.Deployment {
	t.Helper()
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/lab/app:1"}}},
	}
	if sidecar {
		tmpl.Annotations = map[string]string{ambient.AnnotationSidecarStatus: `{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["istio-envoy"],"revision":"default"}`}
		proxy := corev1.Container{Name: ambient.ProxyContainer, Image: "registry.invalid/istio/proxyv2:1.28.0"}
		if hbone {
			proxy.Env = []corev1.EnvVar{{Name: migrate.EnvEnableHBONE, Value: "true"}}
		}
		tmpl.Spec.Containers = append(tmpl.Spec.Containers, proxy)
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: tmpl,
		},
	}
	got, err := lab.Clients.Kube.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create deployment %s/%s: %v", ns, name, err)
	}
	return got
}

// waitPods waits until ns has exactly n Running pods with IPs (and none terminating).
func waitPods(t *testing.T, lab *kubelab.Lab, ns string, n int) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := lab.Clients.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		pods = pods[:0]
		for _, p := range l.Items {
			if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
				return false, nil
			}
			pods = append(pods, p)
		}
		return len(pods) == n, nil
	})
	if err != nil {
		t.Fatalf("namespace %s: want %d running pods, have %d: %v", ns, n, len(pods), err)
	}
	return pods
}

func podUIDs(t *testing.T, lab *kubelab.Lab, ns string) map[string]types.UID {
	t.Helper()
	l, err := lab.Clients.Kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]types.UID{}
	for _, p := range l.Items {
		out[p.Name] = p.UID
	}
	return out
}

func getNS(t *testing.T, lab *kubelab.Lab, name string) *corev1.Namespace {
	t.Helper()
	ns, err := lab.Clients.Kube.CoreV1().Namespaces().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// run executes the real command tree against the lab and returns stdout, stderr and the error.
func run(t *testing.T, kubeconfig string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := cmd.NewRootCmd(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	root.SetArgs(append(args, "--kubeconfig", kubeconfig))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// waitAnnotations waits until no pod in ns carries the redirection annotation.
func waitReleased(t *testing.T, lab *kubelab.Lab, ns string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := lab.Clients.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, p := range l.Items {
			if _, ok := p.Annotations[ambient.AnnotationRedirection]; ok {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("namespace %s: pods still carry %s after unenroll: %v", ns, ambient.AnnotationRedirection, err)
	}
}

// TestEnrollEndToEnd enrolls plain, sidecar, mixed and L7 namespaces with
// the real command, verifies capture with the CNI stand-in running, checks
// status, unenrolls, unenrolls again, and re-enrolls. No pod is restarted.
func TestEnrollEndToEnd(t *testing.T) {
	lab := kubelab.Get(t)
	installCRDs(t, lab)
	startCNI(t, lab)
	plain := lab.Namespace(t, map[string]string{"team": "e2e"})
	sidecar := lab.Namespace(t, map[string]string{"istio-injection": "enabled"})
	mixed := lab.Namespace(t, map[string]string{"istio.io/rev": "default", "keep": "me"})
	l7 := lab.Namespace(t, map[string]string{"istio-injection": "enabled"})
	deployment(t, lab, plain, "web", 2, false, false)
	deployment(t, lab, sidecar, "cart", 2, true, true)
	deployment(t, lab, mixed, "old", 1, true, false)
	deployment(t, lab, mixed, "new", 2, false, false)
	deployment(t, lab, l7, "api", 1, false, false)
	writeAndApply(t, lab, l7, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: get-only}
spec:
  selector: {matchLabels: {app: api}}
  rules: [{to: [{operation: {methods: [GET]}}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api}
spec: {host: api, subsets: [{name: v1, labels: {version: v1}}]}
`)
	lab.RunPod(t, plain, "opted-out", "", map[string]string{ambient.LabelDataplaneMode: ambient.DataplaneNone})
	hostPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "host-agent", Namespace: plain},
		Spec: corev1.PodSpec{HostNetwork: true, NodeName: lab.Nodes[0], Containers: []corev1.Container{{Name: "agent", Image: "registry.invalid/lab/agent:1"}}}}
	if _, err := lab.Clients.Kube.CoreV1().Pods(plain).Create(context.Background(), hostPod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPods(t, lab, plain, 4)
	waitPods(t, lab, sidecar, 2)
	waitPods(t, lab, mixed, 3)
	waitPods(t, lab, l7, 1)
	names := []string{plain, sidecar, mixed, l7}
	before := map[string]map[string]string{}
	uids := map[string]map[string]types.UID{}
	for _, n := range names {
		before[n] = getNS(t, lab, n).Labels
		uids[n] = podUIDs(t, lab, n)
	}

	// Dry run: the plan, nothing changed.
	out, _, err := run(t, lab.Kubeconfig, append([]string{"enroll", "namespace", "--dry-run", "-o", "json"}, names...)...)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	var dry cmd.EnrollReport
	if err := json.Unmarshal([]byte(out), &dry); err != nil {
		t.Fatalf("dry run output: %v\n%s", err, out)
	}
	modes := map[string]migrate.NamespacePlan{}
	for _, n := range dry.Plan.Namespaces {
		modes[n.Name] = n
	}
	if modes[plain].Mode != migrate.ModeNone || modes[sidecar].Mode != migrate.ModeSidecar || modes[mixed].Mode != migrate.ModeSidecar {
		t.Errorf("modes: plain %s sidecar %s mixed %s", modes[plain].Mode, modes[sidecar].Mode, modes[mixed].Mode)
	}
	if p := modes[mixed].Pods; p.Capture != 2 || p.Sidecar != 1 || p.SidecarNoHBONE != 1 {
		t.Errorf("mixed pods = %+v, want 2 to capture, 1 sidecar without HBONE", p)
	}
	if len(modes[l7].L7) != 2 {
		t.Errorf("l7 resources = %+v, want the AuthorizationPolicy and the DestinationRule", modes[l7].L7)
	}
	for _, n := range names {
		if got := getNS(t, lab, n).Labels; !maps.Equal(got, before[n]) {
			t.Errorf("dry run changed %s labels: %v", n, got)
		}
	}

	// Enroll and verify.
	out, stderr, err := run(t, lab.Kubeconfig, append([]string{"enroll", "namespace", "--timeout", "60s", "-o", "json"}, names...)...)
	if err != nil {
		t.Fatalf("enroll: %v\nstderr: %s", err, stderr)
	}
	var rep cmd.EnrollReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("enroll output: %v\n%s", err, out)
	}
	if rep.Verify == nil || !rep.Verify.Done {
		t.Fatalf("verification not done: %+v", rep.Verify)
	}
	for _, v := range rep.Verify.Namespaces {
		wantCaptured := map[string]int{plain: 2, sidecar: 0, mixed: 2, l7: 1}[v.Namespace]
		wantAwaiting := map[string]int{sidecar: 2, mixed: 1}[v.Namespace]
		if v.Captured != wantCaptured || v.AwaitingRollout != wantAwaiting {
			t.Errorf("%s: captured %d awaiting %d, want %d and %d", v.Namespace, v.Captured, v.AwaitingRollout, wantCaptured, wantAwaiting)
		}
		if v.Namespace == plain && (v.OptedOut != 1 || v.HostNetwork != 1) {
			t.Errorf("plain: opted out %d, hostNetwork %d; want 1 and 1", v.OptedOut, v.HostNetwork)
		}
	}
	// The CNI stand-in, like istio-cni, leaves sidecar, opted-out and hostNetwork pods alone.
	for _, n := range names {
		l, _ := lab.Clients.Kube.CoreV1().Pods(n).List(context.Background(), metav1.ListOptions{})
		for _, p := range l.Items {
			_, sidecar := p.Annotations[ambient.AnnotationSidecarStatus]
			skip := sidecar || p.Spec.HostNetwork || p.Labels[ambient.LabelDataplaneMode] == ambient.DataplaneNone
			if got := p.Annotations[ambient.AnnotationRedirection]; (got != "") == skip || (!skip && got != ambient.RedirectionEnabled) {
				t.Errorf("pod %s/%s: redirection %q (sidecar %v, hostNetwork %v)", n, p.Name, got, sidecar, p.Spec.HostNetwork)
			}
		}
	}
	for _, n := range names {
		ns := getNS(t, lab, n)
		if ns.Labels[ambient.LabelDataplaneMode] != ambient.DataplaneAmbient || ns.Labels[ambient.LabelInjection] != "" || ns.Labels[ambient.LabelRev] != "" {
			t.Errorf("%s labels after enroll: %v", n, ns.Labels)
		}
		j, ok, err := migrate.ReadJournal(ns.Annotations)
		if err != nil || !ok {
			t.Fatalf("%s journal: %v %v", n, ok, err)
		}
		for _, k := range []string{ambient.LabelInjection, ambient.LabelRev} {
			v, had := before[n][k]
			if p := j.Previous[k]; (p != nil) != had || (p != nil && *p != v) {
				t.Errorf("%s journal previous %s = %v, want %q (present %v)", n, k, p, v, had)
			}
		}
		if got := podUIDs(t, lab, n); !maps.Equal(got, uids[n]) {
			t.Errorf("%s pods changed (restarted?): %v -> %v", n, uids[n], got)
		}
	}
	if !strings.Contains(stderr, "enrolled (journal written)") {
		t.Errorf("no progress on stderr: %s", stderr)
	}

	// Status: intent versus actual.
	out, _, err = run(t, lab.Kubeconfig, append([]string{"enroll", "status", "-o", "json"}, names...)...)
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Namespaces []migrate.NamespaceStatus }
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Namespaces {
		if s.Intent != "ambient" || !s.Journal || s.Pending+s.Missing != 0 {
			t.Errorf("status %+v", s)
		}
		if s.Namespace == mixed && (s.Captured != 2 || s.Sidecars != 1 || s.Converged) {
			t.Errorf("mixed status %+v: want 2 captured, 1 sidecar, not converged", s)
		}
	}
	tableOut, _, err := run(t, lab.Kubeconfig, "enroll", "status", plain)
	if err != nil || !strings.Contains(tableOut, "all pods captured") {
		t.Errorf("status table: %v\n%s", err, tableOut)
	}

	// A dry run says what would be restored and stores nothing.
	rvBefore := getNS(t, lab, sidecar).ResourceVersion
	out, _, err = run(t, lab.Kubeconfig, "unenroll", "namespace", sidecar, "--dry-run", "-o", "json")
	if err != nil {
		t.Fatalf("unenroll --dry-run: %v\n%s", err, out)
	}
	var dryRes struct{ Results []migrate.Result }
	if err := json.Unmarshal([]byte(out), &dryRes); err != nil || len(dryRes.Results) != 1 {
		t.Fatalf("unenroll --dry-run -o json: %v\n%s", err, out)
	}
	if r := dryRes.Results[0]; r.Outcome != migrate.OutcomeWouldUnenroll ||
		!strings.Contains(r.Message, "istio-injection=enabled") || !strings.Contains(r.Message, ambient.LabelDataplaneMode+"-") {
		t.Errorf("dry-run result = %+v, want the injection label restored and the ambient label removed", r)
	}
	if ns := getNS(t, lab, sidecar); ns.ResourceVersion != rvBefore || ns.Labels[ambient.LabelDataplaneMode] != ambient.DataplaneAmbient {
		t.Errorf("unenroll --dry-run changed namespace %s: labels %v", sidecar, ns.Labels)
	}

	// Unenroll restores exactly; a second run changes nothing.
	out, _, err = run(t, lab.Kubeconfig, append([]string{"unenroll", "namespace"}, names...)...)
	if err != nil {
		t.Fatalf("unenroll: %v\n%s", err, out)
	}
	for _, n := range names {
		ns := getNS(t, lab, n)
		if !maps.Equal(ns.Labels, before[n]) {
			t.Errorf("%s labels after unenroll = %v, want %v", n, ns.Labels, before[n])
		}
		if _, ok := ns.Annotations[migrate.AnnotationJournal]; ok {
			t.Errorf("%s journal left after unenroll", n)
		}
		waitReleased(t, lab, n)
	}
	rv := getNS(t, lab, plain).ResourceVersion
	out, _, err = run(t, lab.Kubeconfig, "unenroll", "namespace", plain)
	if err != nil || !strings.Contains(out, migrate.OutcomeNotEnrolled) {
		t.Errorf("second unenroll: %v\n%s", err, out)
	}
	if getNS(t, lab, plain).ResourceVersion != rv {
		t.Errorf("second unenroll wrote to namespace %s", plain)
	}

	// Re-enroll converges again, still without restarts.
	if _, stderr, err := run(t, lab.Kubeconfig, append([]string{"enroll", "namespace", "--timeout", "60s"}, names...)...); err != nil {
		t.Fatalf("re-enroll: %v\n%s", err, stderr)
	}
	for _, n := range names {
		if got := podUIDs(t, lab, n); !maps.Equal(got, uids[n]) {
			t.Errorf("%s pods changed on re-enroll", n)
		}
	}
}

// TestEnrollRefusals checks the errors that must change nothing at all.
func TestEnrollRefusals(t *testing.T) {
	lab := kubelab.Get(t)
	installCRDs(t, lab)
	a := lab.Namespace(t, map[string]string{"istio-injection": "enabled"})
	b := lab.Namespace(t, nil)
	blocked := lab.Namespace(t, nil)
	writeAndApply(t, lab, blocked, `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: lua}
spec: {}
`)
	snapshot := func() map[string]string {
		out := map[string]string{}
		for _, n := range []string{a, b, blocked} {
			out[n] = getNS(t, lab, n).ResourceVersion
		}
		return out
	}
	start := snapshot()
	tests := []struct {
		name string
		args []string
		want string
		exit int
	}{
		{"missing namespace", []string{"enroll", "namespace", a, "does-not-exist"}, `"does-not-exist": namespace not found`, cmd.ExitFailure},
		{"kube-system", []string{"enroll", "namespace", a, "kube-system"}, `"kube-system": namespace refused`, cmd.ExitFailure},
		{"bad selector", []string{"enroll", "namespace", "--selector", "a in (", a}, "invalid --selector", cmd.ExitUsage},
		{"blocked", []string{"enroll", "namespace", a, blocked}, "EnvoyFilter lua", cmd.ExitFailure},
		{"restricted identity", []string{"enroll", "namespace", a, b}, "", cmd.ExitFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kc := lab.Kubeconfig
			if tt.name == "restricted identity" {
				kc = lab.RestrictedKubeconfig
			}
			_, stderr, err := run(t, kc, tt.args...)
			if err == nil {
				t.Fatalf("no error; stderr %s", stderr)
			}
			if cmd.ExitCode(err) != tt.exit {
				t.Errorf("exit code %d, want %d (%v)", cmd.ExitCode(err), tt.exit, err)
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			if tt.want != "" && !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
			if tt.name == "restricted identity" && !strings.Contains(msg, "forbidden") && !strings.Contains(msg, "permission denied") {
				t.Errorf("restricted identity: error %q does not say it is forbidden", msg)
			}
			// The command layer names the flag that gets past the condition.
			if tt.name == "blocked" && !strings.Contains(msg, "pass --force to enroll anyway") {
				t.Errorf("blocked: error %q does not name --force", msg)
			}
			if msg != strings.ToLower(msg[:1])+msg[1:] || strings.HasSuffix(msg, ".") {
				t.Errorf("error not one lower-case line without period: %q", msg)
			}
			if got := snapshot(); !maps.Equal(got, start) {
				t.Errorf("namespaces were written: %v -> %v", start, got)
			}
		})
	}
}

// TestCheckAccessRestricted asks the API server, as the lab's restricted
// identity, for the permissions an enrollment needs: it must be told exactly
// which are missing.
func TestCheckAccessRestricted(t *testing.T) {
	lab := kubelab.Get(t)
	cfg, err := lab.RestrictedConfig()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := kube.NewClients(cfg)
	if err != nil {
		t.Fatal(err)
	}
	plan := &migrate.Plan{Namespaces: []migrate.NamespacePlan{{Name: "shop", Pods: migrate.PodCounts{Sidecar: 1}}}}
	err = migrate.CheckAccess(context.Background(), rc.Kube, migrate.EnrollAccess(plan, true, true))
	if !errors.Is(err, migrate.ErrForbidden) {
		t.Fatalf("err = %v, want ErrForbidden", err)
	}
	for _, want := range []string{"patch namespaces cluster-wide", "patch deployments.apps in namespace shop", "nothing was changed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "list pods") || strings.Contains(err.Error(), "get namespaces") {
		t.Errorf("error lists permissions the identity has: %v", err)
	}
	if err := migrate.CheckAccess(context.Background(), lab.Clients.Kube, migrate.EnrollAccess(plan, true, true)); err != nil {
		t.Errorf("admin: %v", err)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeAndApply(t *testing.T, lab *kubelab.Lab, ns, doc string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "obj.yaml")
	writeFile(t, p, doc)
	lab.Kubectl(t, "apply", "-n", ns, "-f", p)
}

// TestRestartSidecarsRespectsPDB restarts sidecar workloads one at a time,
// waits for each rollout, and stops at the first workload whose
// PodDisruptionBudget allows no disruption.
func TestRestartSidecarsRespectsPDB(t *testing.T) {
	lab := kubelab.Get(t)
	ctx := context.Background()
	ns := lab.Namespace(t, map[string]string{"istio-injection": "enabled"})
	deployment(t, lab, ns, "a", 2, true, true)
	deployment(t, lab, ns, "b", 2, true, true)
	deployment(t, lab, ns, "c", 1, true, true)
	waitPods(t, lab, ns, 5)
	pdb := func(name, app string, minAvail int) {
		mv := intstr.FromInt32(int32(minAvail))
		_, err := lab.Clients.Kube.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &mv, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	pdb("a-budget", "a", 1) // allows one disruption once the disruption controller has counted the pods
	pdb("b-budget", "b", 2) // allows none
	before := podUIDs(t, lab, ns)
	var events []string
	var mu sync.Mutex
	obs := func(e migrate.Event) {
		mu.Lock()
		events = append(events, string(e.Step)+" "+e.Message)
		mu.Unlock()
	}
	ws := []migrate.WorkloadRef{{Namespace: ns, Kind: "Deployment", Name: "a"}, {Namespace: ns, Kind: "Deployment", Name: "b"}, {Namespace: ns, Kind: "Deployment", Name: "c"}}
	res, err := migrate.RestartSidecars(ctx, lab.Clients.Kube, ws, migrate.RestartOptions{RolloutTimeout: 90 * time.Second, PDBTimeout: 8 * time.Second, Observer: obs})
	if err == nil || !strings.Contains(err.Error(), "b-budget") || !strings.Contains(err.Error(), "remaining 1 workload") {
		t.Fatalf("err = %v, want the b-budget PDB to stop the run before c", err)
	}
	if len(res) != 2 || res[0].Outcome != migrate.RestartDone || res[1].Outcome != migrate.RestartFailed {
		t.Fatalf("results = %+v", res)
	}
	after := podUIDs(t, lab, ns)
	changed := map[string]int{}
	for name, uid := range before {
		if after[name] != uid {
			changed[strings.SplitN(name, "-", 2)[0]]++
		}
	}
	if changed["a"] != 2 || changed["b"] != 0 || changed["c"] != 0 {
		t.Errorf("replaced pods per workload = %v, want only a's 2", changed)
	}
	for _, name := range []string{"b", "c"} {
		d, _ := lab.Clients.Kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if _, ok := d.Spec.Template.Annotations[migrate.AnnotationRestartedAt]; ok {
			t.Errorf("deployment %s was restarted after the failure", name)
		}
	}
	mu.Lock()
	joined := strings.Join(events, "\n")
	mu.Unlock()
	if !strings.Contains(joined, "waiting-pdb b-budget") || !strings.Contains(joined, "restarted Deployment/a") {
		t.Errorf("events:\n%s", joined)
	}
}

// TestEnrollVerifyTimeoutReportsPods: without istio-cni the pods stay
// missing; with an agent that never gets past pending they stay pending.
// Either way the command stops at --timeout, lists each pod with its reason,
// and exits non-zero, while the namespace stays enrolled with its journal.
func TestEnrollVerifyTimeoutReportsPods(t *testing.T) {
	lab := kubelab.Get(t)
	ns := lab.Namespace(t, nil)
	lab.RunPod(t, ns, "lonely", lab.Nodes[0], nil)

	out, _, err := run(t, lab.Kubeconfig, "enroll", "namespace", ns, "--timeout", "2s")
	if !errors.Is(err, migrate.ErrNotCaptured) || cmd.ExitCode(err) != cmd.ExitFailure {
		t.Fatalf("err = %v, want ErrNotCaptured", err)
	}
	if !strings.Contains(err.Error(), "1 pod(s) in 1 namespace(s) still not captured after 2s") {
		t.Errorf("error: %v", err)
	}
	wantLine := fmt.Sprintf("%s/lonely: missing: no %s annotation: istio-cni on node %s has not processed the pod", ns, ambient.AnnotationRedirection, lab.Nodes[0])
	if !strings.Contains(out, wantLine) || !strings.Contains(out, "0/1") {
		t.Errorf("output lacks the missing pod and its reason:\n%s", out)
	}
	if _, ok, _ := migrate.ReadJournal(getNS(t, lab, ns).Annotations); !ok {
		t.Errorf("namespace lost its journal after a verification timeout")
	}

	// An agent stuck at pending (delay far beyond the timeout).
	ctx, cancel := context.WithCancel(context.Background())
	stuck := cnisim.New(lab.Clients.Kube, cnisim.Options{Delay: time.Hour})
	done := make(chan error, 1)
	go func() { done <- stuck.Run(ctx) }()
	defer func() { cancel(); <-done }()
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := lab.Clients.Kube.CoreV1().Pods(ns).Get(ctx, "lonely", metav1.GetOptions{})
		return err == nil && p.Annotations[ambient.AnnotationRedirection] == ambient.RedirectionPending, nil
	})
	if err != nil {
		t.Fatalf("stuck agent did not write pending: %v", err)
	}
	out, _, err = run(t, lab.Kubeconfig, "enroll", "namespace", ns, "--timeout", "2s", "-o", "json")
	if !errors.Is(err, migrate.ErrNotCaptured) {
		t.Fatalf("err = %v, want ErrNotCaptured", err)
	}
	var rep cmd.EnrollReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Results[0].Outcome != migrate.OutcomeAlreadyEnrolled {
		t.Errorf("re-run outcome = %q, want %q", rep.Results[0].Outcome, migrate.OutcomeAlreadyEnrolled)
	}
	v := rep.Verify.Namespaces[0]
	if v.Pending != 1 || len(v.Pods) != 1 || v.Pods[0].State != migrate.PodPending || !strings.Contains(v.Pods[0].Reason, "ztunnel on node "+lab.Nodes[0]) {
		t.Errorf("verify = %+v, want the pod pending with a ztunnel reason", v)
	}
}

// enrollRestarting runs `enroll namespace NS --restart-sidecars -o json` and
// requires exactly the Deployment workload to have been restarted.
func enrollRestarting(t *testing.T, lab *kubelab.Lab, ns, workload string) (cmd.EnrollReport, string) {
	t.Helper()
	out, stderr, err := run(t, lab.Kubeconfig, "enroll", "namespace", ns, "--restart-sidecars", "--timeout", "60s", "--rollout-timeout", "90s", "-o", "json")
	if err != nil {
		t.Fatalf("enroll: %v\n%s", err, stderr)
	}
	var rep cmd.EnrollReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Restarts) != 1 || rep.Restarts[0].Workload.Name != workload || rep.Restarts[0].Outcome != migrate.RestartDone {
		t.Fatalf("restarts = %+v", rep.Restarts)
	}
	return rep, stderr
}

// TestEnrollRestartSidecarsCommand runs `enroll --restart-sidecars`: the
// sidecar Deployment is restarted (new pod UIDs), the plain one is not.
func TestEnrollRestartSidecarsCommand(t *testing.T) {
	lab := kubelab.Get(t)
	startCNI(t, lab)
	ns := lab.Namespace(t, map[string]string{"istio-injection": "enabled"})
	deployment(t, lab, ns, "legacy", 2, true, true)
	deployment(t, lab, ns, "plain", 1, false, false)
	waitPods(t, lab, ns, 3)
	before := podUIDs(t, lab, ns)
	_, stderr := enrollRestarting(t, lab, ns, "legacy")
	after := podUIDs(t, lab, ns)
	for name, uid := range before {
		replaced := after[name] != uid
		if strings.HasPrefix(name, "legacy-") != replaced {
			t.Errorf("pod %s replaced = %v", name, replaced)
		}
	}
	if !strings.Contains(stderr, "restarting Deployment/legacy") || !strings.Contains(stderr, "Deployment/legacy rolled out") {
		t.Errorf("progress:\n%s", stderr)
	}
}

// TestEnrollRestartCapturesPods is the whole migration of a sidecar
// workload: a real mutating webhook (the test-only injector stand-in)
// injects the pods while the namespace has istio-injection=enabled; enroll
// removes the label and, with --restart-sidecars, restarts the Deployment;
// the new pods come back without a sidecar (the injector no longer selects
// the namespace) and istio-cni (stand-in) captures them.
func TestEnrollRestartCapturesPods(t *testing.T) {
	lab := kubelab.Get(t)
	startCNI(t, lab)
	ctx := context.Background()
	scope := fmt.Sprintf("restart-%d", time.Now().UnixNano()%1_000_000)
	inj, err := injectorsim.Start(ctx, lab.Clients.Kube, injectorsim.Options{Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inj.Close)
	ns := lab.Namespace(t, map[string]string{"istio-injection": "enabled", injectorsim.ScopeLabel: scope})
	deployment(t, lab, ns, "web", 2, false, false) // a plain template: the webhook injects
	before := map[types.UID]bool{}
	for _, p := range waitPods(t, lab, ns, 2) {
		if p.Annotations[ambient.AnnotationSidecarStatus] == "" || len(p.Spec.Containers) != 2 || p.Spec.Containers[1].Name != ambient.ProxyContainer {
			t.Fatalf("pod %s was not injected: annotations %v, %d containers", p.Name, p.Annotations, len(p.Spec.Containers))
		}
		before[p.UID] = true
	}
	if inj.Injected.Load() != 2 {
		t.Fatalf("injector injected %d pods, want 2", inj.Injected.Load())
	}

	rep, _ := enrollRestarting(t, lab, ns, "web")
	if rep.Verify == nil || !rep.Verify.Done || len(rep.Verify.Namespaces) != 1 {
		t.Fatalf("verify = %+v", rep.Verify)
	}
	if v := rep.Verify.Namespaces[0]; v.Expected != 2 || v.Captured != 2 || v.AwaitingRollout != 0 {
		t.Fatalf("after the restart: %+v, want 2 expected and captured, none awaiting a rollout", v)
	}
	pods, err := lab.Clients.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	live := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		live++
		if before[p.UID] {
			t.Errorf("pod %s was not replaced", p.Name)
		}
		if _, ok := p.Annotations[ambient.AnnotationSidecarStatus]; ok || len(p.Spec.Containers) != 1 {
			t.Errorf("restarted pod %s still has a sidecar", p.Name)
		}
		if p.Annotations[ambient.AnnotationRedirection] != ambient.RedirectionEnabled {
			t.Errorf("restarted pod %s: redirection %q, want enabled", p.Name, p.Annotations[ambient.AnnotationRedirection])
		}
	}
	if live != 2 {
		t.Errorf("%d live pods, want 2", live)
	}
	if inj.Injected.Load() != 2 {
		t.Errorf("injector injected %d pods in all, want only the 2 before enrollment", inj.Injected.Load())
	}
}

// TestCheckAccessJournalConfigMap: an enrollment whose moved originals
// would not fit the journal annotation needs to create and update the
// originals ConfigMap, and unenrolling from such a journal needs to read
// and delete it; the restricted identity is told so, naming verb, resource
// and namespace, before anything is written. A small plan does not ask.
func TestCheckAccessJournalConfigMap(t *testing.T) {
	lab := kubelab.Get(t)
	cfg, err := lab.RestrictedConfig()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := kube.NewClients(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The identity may do everything with policies and gateways in shop,
	// so the error is about the ConfigMap (and the cluster-wide namespace
	// patch the restricted identity never has).
	shop := lab.Namespace(t, nil)
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "l7", Namespace: shop}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"security.istio.io", "gateway.networking.k8s.io"}, Resources: []string{"authorizationpolicies", "gateways"}, Verbs: []string{"*"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "l7", Namespace: shop},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "l7"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: kubelab.RestrictedUser}}}
	if _, err := lab.Clients.Kube.RbacV1().Roles(shop).Create(context.Background(), role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Clients.Kube.RbacV1().RoleBindings(shop).Create(context.Background(), binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gw := schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}
	ap := schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "authorizationpolicies"}
	granted := []migrate.Access{{Verb: "create", Group: ap.Group, Resource: ap.Resource, Namespace: shop}}
	if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		return migrate.CheckAccess(ctx, rc.Kube, granted) == nil, nil
	}); err != nil {
		t.Fatalf("the Role never took effect: %v", err)
	}
	move := func(size int) migrate.PolicyMove {
		return migrate.PolicyMove{Original: "big", Copy: "big-waypoint", Target: "Gateway/waypoint",
			OriginalObject: map[string]any{"spec": map[string]any{"rules": []any{map[string]any{"to": []any{map[string]any{"operation": map[string]any{"paths": []any{strings.Repeat("p", size)}}}}}}}}}
	}
	plan := func(size int) *migrate.Plan {
		return &migrate.Plan{GatewayGVR: gw, PolicyGVR: ap, Namespaces: []migrate.NamespacePlan{{Name: shop, Waypoint: "waypoint", Moves: []migrate.PolicyMove{move(size)}}}}
	}
	for _, a := range migrate.EnrollAccess(plan(1<<10), false, false) {
		if a.Resource == "configmaps" {
			t.Errorf("a 1 KiB original asks for %v", a)
		}
	}
	err = migrate.CheckAccess(context.Background(), rc.Kube, migrate.EnrollAccess(plan(200<<10), false, false))
	if !errors.Is(err, migrate.ErrForbidden) {
		t.Fatalf("err = %v, want ErrForbidden", err)
	}
	for _, want := range []string{"create configmaps in namespace " + shop, "update configmaps in namespace " + shop, "nothing was changed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("enroll: error %q does not name %q", err, want)
		}
	}
	j := `{"v":1,"time":"2026-01-01T00:00:00Z","previousLabels":{},"waypoint":"waypoint","moves":[{"original":"big","copy":"big-waypoint"}],"originalsConfigMap":"` + migrate.OriginalsConfigMap + `"}`
	info := []migrate.NamespaceInfo{{Name: shop, Annotations: map[string]string{migrate.AnnotationJournal: j}}}
	err = migrate.CheckAccess(context.Background(), rc.Kube, migrate.UnenrollAccess(info, gw, ap))
	if strings.Contains(err.Error(), "authorizationpolicies") {
		t.Errorf("enroll: error lists policy rights the identity has: %v", err)
	}
	for _, want := range []string{"delete configmaps in namespace " + shop} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("unenroll: error %v does not name %q", err, want)
		}
	}
	if err := migrate.CheckAccess(context.Background(), lab.Clients.Kube, migrate.EnrollAccess(plan(200<<10), false, false)); err != nil {
		t.Errorf("admin: %v", err)
	}
}
