package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/promlab"
	sim "github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/ztunnelsim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

// addonLabels are the labels Istio's Prometheus add-on
// (samples/addons/prometheus.yaml, the Prometheus community chart) puts on
// its Service and pod; its Service port is named http, on 9090.
var addonLabels = map[string]string{
	"app.kubernetes.io/name":      "prometheus",
	"app.kubernetes.io/component": "server",
	"app.kubernetes.io/instance":  "prometheus",
}

// promWindow is the rate() range the tests ask for: five of the lab
// Prometheus's one-second scrapes.
const promWindow = 5 * time.Second

// addonPrometheus runs a real Prometheus where Istio's add-on would run
// one: a pod in ns with the add-on's labels, the add-on's Service in front
// of it (the lab's endpoints controller fills its endpoints), and the
// Prometheus process serving on the pod's IP inside the lab's pod network.
// It scrapes every stand-in on its pod IP (:15020) every second with the
// target labels the add-on's kubernetes-pods job gives (namespace, pod,
// node). It returns the server once each stand-in has a whole promWindow of
// samples, so rate() does not extrapolate from a young series.
func addonPrometheus(t *testing.T, s *scenarioLab, ns string) *promlab.Server {
	t.Helper()
	if s.lab.NetNS == "" {
		t.Skip("needs the lab's pod network (root and the ip command)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	core := s.lab.Clients.Kube.CoreV1()
	var targets []promlab.Target
	for node, name := range s.dep.Pods {
		p, err := core.Pods(s.ztunnelNS).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, promlab.Target{Addr: net.JoinHostPort(p.Status.PodIP, "15020"),
			Labels: map[string]string{"namespace": s.ztunnelNS, "pod": name, "node": node}})
	}
	pod := s.lab.RunPod(t, ns, "prometheus-0", s.lab.Nodes[0], addonLabels)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "prometheus", Labels: addonLabels},
		Spec: corev1.ServiceSpec{Selector: addonLabels, Ports: []corev1.ServicePort{
			{Name: "http", Port: 9090, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9090)}}},
	}
	createService(t, svc)
	prom := promlab.StartWith(t, targets, time.Second, promlab.Options{
		Listen: net.JoinHostPort(pod.Status.PodIP, "9090"), NetNS: s.lab.NetNS})
	src, err := NewPrometheus(prom.URL, "", nil, s.ztunnelNS)
	if err != nil {
		t.Fatal(err)
	}
	q := fmt.Sprintf(`count_over_time(istio_tcp_connections_opened_total{namespace=%q}[%s]) >= %d`,
		s.ztunnelNS, model.Duration(promWindow), int(promWindow/time.Second))
	for {
		v, _, _, err := src.api.Query(ctx, q, time.Now())
		if vec, ok := v.(model.Vector); err == nil && ok && len(vec) >= len(s.dep.Pods) {
			return prom
		}
		select {
		case <-ctx.Done():
			t.Fatalf("prometheus at %s has no whole %s of samples for all %d stand-ins within 60s: %v %v", prom.URL, promWindow, len(s.dep.Pods), v, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// createService creates svc and deletes it when the test ends, waiting
// until it is gone: DiscoverPrometheus looks in every namespace, and a
// Service left in a namespace still terminating would be found by the next
// test.
func createService(t *testing.T, svc *corev1.Service) {
	t.Helper()
	c := kubelab.Get(t).Clients.Kube.CoreV1().Services(svc.Namespace)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service %s/%s: %v", svc.Namespace, svc.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Delete(ctx, svc.Name, metav1.DeleteOptions{})
		for ctx.Err() == nil {
			if _, err := c.Get(ctx, svc.Name, metav1.GetOptions{}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("service %s/%s still there 30s after its deletion", svc.Namespace, svc.Name)
	})
}

// markZtunnelNotReady does what kubelet's readiness probe would do for the
// not-ready stand-in (the lab has no kubelet): its pod turns NotReady.
func markZtunnelNotReady(t *testing.T, s *scenarioLab) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nr := s.nodeOf[sim.NotReady]
	p, err := s.lab.Clients.Kube.CoreV1().Pods(s.ztunnelNS).Get(ctx, s.dep.Pods[nr], metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.SetPodReady(ctx, s.lab.Clients.Kube, p, false); err != nil {
		t.Fatal(err)
	}
}

// pluginRun is one run of the built binary.
type pluginRun struct {
	stdout, stderr string
	code           int
}

func runPlugin(t *testing.T, bin string, args ...string) pluginRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := pluginRun{stdout: out.String(), stderr: errOut.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		r.code = exit.ExitCode()
	default:
		t.Fatalf("kubectl-ambient %s: %v (within 60s)\nstderr: %s", strings.Join(args, " "), err, r.stderr)
	}
	t.Logf("kubectl-ambient %s: exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
	return r
}

// statusViewer makes a user with the permissions docs/rbac.md lists for
// `status --once --prometheus auto`, without services/proxy; grantProxy
// adds it in the Prometheus Service's namespace. Each waits until the API
// server's authorizer applies it.
type statusViewer struct {
	t    *testing.T
	lab  *kubelab.Lab
	user string
}

func newStatusViewer(t *testing.T, lab *kubelab.Lab, tag string) *statusViewer {
	v := &statusViewer{t: t, lab: lab, user: "kamb-prom-viewer-" + tag}
	read := []string{"get", "list", "watch"}
	v.bind("", []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"nodes", "namespaces", "pods"}, Verbs: read},
		{APIGroups: []string{""}, Resources: []string{"pods/proxy"}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"list"}},
	})
	v.waitAllowed(authorizationv1.ResourceAttributes{Verb: "list", Resource: "services"})
	return v
}

func (v *statusViewer) grantProxy(ns string) {
	v.bind(ns, []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services/proxy"}, Verbs: []string{"get"}}})
	v.waitAllowed(authorizationv1.ResourceAttributes{Namespace: ns, Verb: "get", Resource: "services", Subresource: "proxy"})
}

// bind grants rules cluster-wide (ns "") or in ns, and removes them when
// the test ends.
func (v *statusViewer) bind(ns string, rules []rbacv1.PolicyRule) {
	v.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rbac := v.lab.Clients.Kube.RbacV1()
	name := v.user
	subjects := []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: v.user}}
	var err error
	if ns == "" {
		_, err = rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{})
		if err == nil {
			_, err = rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subjects,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}}, metav1.CreateOptions{})
		}
		v.t.Cleanup(func() {
			_ = rbac.ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
			_ = rbac.ClusterRoles().Delete(context.Background(), name, metav1.DeleteOptions{})
		})
	} else {
		_, err = rbac.Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{})
		if err == nil {
			_, err = rbac.RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subjects,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}}, metav1.CreateOptions{})
		}
	}
	if err != nil {
		v.t.Fatalf("grant %s %v: %v", v.user, rules, err)
	}
}

func (v *statusViewer) waitAllowed(attrs authorizationv1.ResourceAttributes) {
	v.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		r, err := v.lab.Clients.Kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: v.user, ResourceAttributes: &attrs}}, metav1.CreateOptions{})
		if err == nil && r.Status.Allowed {
			return
		}
		select {
		case <-ctx.Done():
			v.t.Fatalf("%s still may not %+v 20s after the grant: %v", v.user, attrs, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// near reports whether got is within 20% of want.
func near(got, want float64) bool { return math.Abs(got-want) <= 0.2*want }

// TestStatusPrometheusAuto runs the built binary's `status --once
// --prometheus auto` against the lab with Istio's Prometheus add-on stood
// up for real: no Service yet (a clear failure), a Service the user may not
// reach through the service proxy (the permission named), then the add-on
// in ztunnel's namespace beside a second candidate elsewhere (ztunnel's
// wins, and stderr says so) read with exactly the permissions docs/rbac.md
// lists. The rows must carry what only Prometheus could have given.
func TestStatusPrometheusAuto(t *testing.T) {
	begin := time.Now()
	s := deployScenarios(t)
	removeAppPods(t, s)
	markZtunnelNotReady(t, s)
	bin := kubelab.BuildBinary(t, kubelab.PluginPackage)
	t.Logf("stand-ins deployed and binary built after %s", time.Since(begin).Round(time.Millisecond))
	viewer := newStatusViewer(t, s.lab, s.ztunnelNS)
	args := func(extra ...string) []string {
		return append([]string{"--kubeconfig", s.lab.Kubeconfig, "--as", viewer.user, "--ztunnel-namespace", s.ztunnelNS,
			"--prometheus", "auto", "--prometheus-window", promWindow.String()}, extra...)
	}
	status := args("status", "--once", "-o", "json", "--timeout", "45s")

	t.Run("no prometheus service", func(t *testing.T) {
		r := runPlugin(t, bin, status...)
		if r.code != 1 {
			t.Errorf("exit code %d, want 1 (an error, never 0: a CI job must not read it as healthy)", r.code)
		}
		for _, want := range append(PrometheusSelectors, "no prometheus service found", "pass --prometheus URL") {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr does not say %q", want)
			}
		}
		if r.stdout != "" {
			t.Errorf("no snapshot may be printed without its metrics source, got:\n%s", r.stdout)
		}
	})

	// A second candidate outside ztunnel's namespace with nothing behind
	// it: choosing it would fail the run.
	decoyNS := s.lab.Namespace(t, nil)
	createService(t, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: decoyNS, Name: "a-prometheus", Labels: addonLabels},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "nothing-here"}, Ports: []corev1.ServicePort{
			{Name: "web", Port: 9090, TargetPort: intstr.FromInt32(9090)}}},
	})
	addonPrometheus(t, s, s.ztunnelNS)
	t.Logf("prometheus has a whole window of samples after %s", time.Since(begin).Round(time.Millisecond))

	t.Run("no services/proxy permission", func(t *testing.T) {
		r := runPlugin(t, bin, status...)
		if r.code != 1 {
			t.Errorf("exit code %d, want 1", r.code)
		}
		want := fmt.Sprintf("grant get on services/proxy in namespace %s", s.ztunnelNS)
		if !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, s.ztunnelNS+"/prometheus") {
			t.Errorf("stderr must name the service and the permission (%q)", want)
		}
	})

	viewer.grantProxy(s.ztunnelNS)
	t.Run("add-on in ztunnel's namespace", func(t *testing.T) {
		r := runPlugin(t, bin, status...)
		used := fmt.Sprintf("metrics from prometheus service %s/prometheus port http (found by label app.kubernetes.io/name=prometheus; also found %s/a-prometheus: chose the one in ztunnel's namespace %s)",
			s.ztunnelNS, decoyNS, s.ztunnelNS)
		if !strings.Contains(r.stderr, used) {
			t.Errorf("stderr must say which service was used and why:\nwant %s", used)
		}
		var snap ztunnel.Snapshot
		if err := json.Unmarshal([]byte(r.stdout), &snap); err != nil {
			t.Fatalf("json: %v\n%s", err, r.stdout)
		}
		if want := map[bool]int{true: 1, false: 0}[snap.Totals.Unhealthy > 0]; r.code != want {
			t.Errorf("exit code %d with %d unhealthy nodes, want %d", r.code, snap.Totals.Unhealthy, want)
		}
		checkPrometheusRows(t, s, &snap)
	})

	t.Run("tui without a terminal", func(t *testing.T) {
		// Not a terminal: tui prints one snapshot, as status --once does.
		r := runPlugin(t, bin, args("tui", "--interval", "2s")...)
		if !strings.Contains(r.stderr, "metrics from prometheus service "+s.ztunnelNS+"/prometheus port http") {
			t.Errorf("stderr must say which service was used")
		}
		if r.code != 1 {
			t.Errorf("exit code %d, want 1 (unhealthy nodes)", r.code)
		}
		for sc, want := range map[sim.Scenario]string{sim.FailingConnections: "connection failures/s (80% of attempts)", sim.Healthy: " ok"} {
			row := lineWith(r.stdout, s.nodeOf[sc]+" ")
			if !strings.Contains(row, want) {
				t.Errorf("%s (%s) row %q does not say %q", s.nodeOf[sc], sc, row, want)
			}
		}
	})

	t.Run("tui on a terminal", func(t *testing.T) {
		tuiOnTerminal(t, s, bin, args("tui", "--interval", "1s"))
	})
}

// tuiOnTerminal runs the TUI in a real terminal (tmux) until its screen
// shows the nodes whose rows metrics decide, then quits it with q: it must
// say on stderr which Prometheus it reads and exit 0. The expiring
// certificate is not in the metrics: the row says so only because the TUI
// tells its watcher which rows are on screen (Watcher.Focus) and the watcher
// reads those nodes' certificates directly.
func tuiOnTerminal(t *testing.T, s *scenarioLab, bin string, args []string) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed")
	}
	dir := t.TempDir()
	sock := "kamb-promauto-" + s.ztunnelNS
	tm := func(a ...string) (string, error) {
		out, err := exec.Command("tmux", append([]string{"-L", sock}, a...)...).CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { _, _ = tm("kill-server") })
	quoted := make([]string, 0, len(args)+1)
	for _, a := range append([]string{bin}, args...) {
		quoted = append(quoted, "'"+a+"'")
	}
	shell := strings.Join(quoted, " ") + " 2>" + dir + "/stderr; echo $? >" + dir + "/code"
	if out, err := tm("new-session", "-d", "-s", "tui", "-x", "200", "-y", "20", shell); err != nil {
		t.Fatalf("tmux: %v %s", err, out)
	}
	rows := map[string]string{
		s.nodeOf[sim.FailingConnections]: "connection failures/s (80% of attempts)",
		// Pending proxies from the metrics; the TUI gives them 30 s to
		// drain before it warns.
		s.nodeOf[sim.PendingProxies]: "2/2",
		s.nodeOf[sim.Healthy]:        " ok",
		s.nodeOf[sim.ExpiringCerts]:  "expires in",
	}
	var screen string
	for deadline := time.Now().Add(30 * time.Second); ; {
		screen, _ = tm("capture-pane", "-p", "-t", "tui")
		shown := 0
		for node, want := range rows {
			if strings.Contains(lineWith(screen, node+" "), want) {
				shown++
			}
		}
		if shown == len(rows) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the TUI did not show %v within 30s; screen:\n%s", rows, screen)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("screen:\n%s", screen)
	_, _ = tm("send-keys", "-t", "tui", "q")
	var code []byte
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		if code, err = os.ReadFile(dir + "/code"); err == nil && len(code) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the TUI did not end within 10s of q")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stderr, _ := os.ReadFile(dir + "/stderr")
	if !strings.Contains(string(stderr), "metrics from prometheus service "+s.ztunnelNS+"/prometheus port http") {
		t.Errorf("stderr must say which service was used, got %q", stderr)
	}
	if strings.TrimSpace(string(code)) != "0" {
		t.Errorf("exit code %s after q, want 0", code)
	}
}

// checkPrometheusRows asserts every scenario node's verdict and that its
// metrics and rates came from Prometheus: the rates span --prometheus-window
// (the direct path's would span --window), the values are the stand-in's
// own for that node (the join from the pod label to the node holds), and
// the healthy nodes were never read through the API server (no probe).
func checkPrometheusRows(t *testing.T, s *scenarioLab, snap *ztunnel.Snapshot) {
	t.Helper()
	for node, sc := range s.byNode {
		n := nodeByName(snap, node)
		// The direct path's verdicts, but for certificates: they are not
		// in the metrics, and status does not read a node's config_dump
		// when its metrics look healthy. The not-ready pod (as kubelet
		// marks it here) is the first reason given, before the probe's.
		w := expect[sc]
		switch sc {
		case sim.ExpiringCerts:
			w.state, w.code, w.msg = ztunnel.StateHealthy, "", "ok"
		case sim.NotReady:
			w.msg = "ztunnel NotReady"
		}
		if n == nil || n.State != w.state || !strings.Contains(n.Summary(), w.msg) || (w.code != "" && n.Reasons[0].Code != w.code) {
			t.Errorf("%s (%s): %+v, want %s %s %q", node, sc, n, w.state, w.code, w.msg)
			continue
		}
		if sc == sim.NoZtunnel {
			continue
		}
		if n.Metrics == nil || n.Rates == nil {
			t.Errorf("%s (%s): no metrics or rates: %s", node, sc, n.ScrapeError)
			continue
		}
		if n.Rates.Window != promWindow || n.Metrics.Build != "1.24.1" {
			t.Errorf("%s (%s): rates over %s, build %q; want rates over --prometheus-window %s and istio_build 1.24.1 from prometheus", node, sc, n.Rates.Window, n.Metrics.Build, promWindow)
		}
		// The stand-in's counters: 10 opened/s, or 2 opened and 8 failed
		// per second when failing; 1,900 bytes per opened connection.
		opened, failed, pending := 10.0, 0.0, 0.0
		switch sc {
		case sim.FailingConnections:
			opened, failed = 2, 8
		case sim.PendingProxies:
			pending = 2
		}
		r := n.Rates
		if !near(r.OpenedPerSec, opened) || !near(r.FailedPerSec, failed) || !near(r.BytesPerSec, 1900*opened) || n.Metrics.PendingProxies != pending {
			t.Errorf("%s (%s): opened %.1f/s failed %.1f/s %.0f B/s pending %g; want the stand-in's %g/s, %g/s, %g B/s, %g",
				node, sc, r.OpenedPerSec, r.FailedPerSec, r.BytesPerSec, n.Metrics.PendingProxies, opened, failed, 1900*opened, pending)
		}
		if sc == sim.Restarting && r.XDSTerminations <= 0 {
			t.Errorf("%s (%s): no xDS terminations in the window; the stand-in drops one every 2s", node, sc)
		}
		if (sc == sim.Healthy || sc == sim.ExpiringCerts) && n.Probe != nil {
			t.Errorf("%s (%s) was probed through the API server; with prometheus only suspect nodes are", node, sc)
		}
	}
}

// lineWith returns the first line of out containing sub.
func lineWith(out, sub string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
