package collector

import (
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	sim "github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/ztunnelsim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

func TestMain(m *testing.M) { kubelab.Main(m, kubelab.Options{Nodes: len(sim.Scenarios)}) }

// --- pure logic ---

func TestCountPods(t *testing.T) {
	pod := func(ns, node string, labels, ann map[string]string, host bool) any {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Labels: labels, Annotations: ann},
			Spec: corev1.PodSpec{NodeName: node, HostNetwork: host}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	}
	objs := []any{
		pod("shop", "n1", nil, map[string]string{ambient.AnnotationRedirection: "enabled"}, false),
		pod("shop", "n1", nil, map[string]string{ambient.AnnotationRedirection: "pending"}, false),
		pod("shop", "n1", map[string]string{ambient.LabelDataplaneMode: "none"}, nil, false), // opted out
		pod("shop", "n1", nil, nil, true), // hostNetwork: never captured
		pod("legacy", "n1", nil, map[string]string{ambient.AnnotationSidecarStatus: "{}"}, false), // sidecar, not enrolled
		pod("legacy", "n2", map[string]string{ambient.LabelDataplaneMode: "ambient"}, nil, false), // pod-level enrollment
		pod("shop", "", nil, nil, false), // unscheduled
	}
	got := countPods(objs, map[string]bool{"shop": true})
	if got["n1"] != (ztunnel.PodCounts{Enrolled: 2, Captured: 1, Pending: 1, Sidecar: 1}) || got["n2"] != (ztunnel.PodCounts{Enrolled: 1}) {
		t.Fatalf("counts %+v", got)
	}
}

func TestPodInfo(t *testing.T) {
	finished := metav1.NewTime(time.Date(2026, 11, 20, 21, 0, 0, 0, time.UTC))
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "ztunnel-x"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "istio-proxy", Image: "docker.io/istio/ztunnel:1.24.1-distroless"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "istio-proxy", RestartCount: 4,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled", FinishedAt: finished}}}}},
	}
	z := podInfo(p)
	if z.Ready || z.Restarts != 4 || z.Waiting != "CrashLoopBackOff" || z.LastRestartReason != "OOMKilled" || !z.LastRestartAt.Equal(finished.Time) || z.Version != "1.24.1" {
		t.Fatalf("%+v", z)
	}
	// The image-tag cases moved to pkg/ambient (TestImageTag).
}

// --- against the lab ---

type scenarioLab struct {
	lab       *kubelab.Lab
	ztunnelNS string
	appNS     string
	byNode    map[string]sim.Scenario
	nodeOf    map[sim.Scenario]string
	dep       *sim.Deployment
}

// deployScenarios puts one scenario on each of the lab's first nodes,
// with ztunnel pods in a namespace of the test's own, and application pods
// on the healthy node.
func deployScenarios(t *testing.T) *scenarioLab {
	t.Helper()
	lab := kubelab.Get(t)
	if len(lab.Nodes) < len(sim.Scenarios) {
		t.Fatalf("lab has %d nodes, need %d", len(lab.Nodes), len(sim.Scenarios))
	}
	s := &scenarioLab{lab: lab, byNode: map[string]sim.Scenario{}, nodeOf: map[sim.Scenario]string{}}
	for i, sc := range sim.Scenarios {
		s.byNode[lab.Nodes[i]] = sc
		s.nodeOf[sc] = lab.Nodes[i]
	}
	s.ztunnelNS = lab.Namespace(t, nil)
	s.appNS = lab.Namespace(t, map[string]string{ambient.LabelDataplaneMode: "ambient"})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dep, err := sim.Deploy(ctx, lab.Clients.Kube, s.ztunnelNS, s.byNode, lab.ListenPod)
	if dep != nil {
		t.Cleanup(dep.Close)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.dep = dep
	// The expiring-certs node serves the older, address-keyed config_dump.
	dep.Stands[s.nodeOf[sim.ExpiringCerts]].ObjectShape = true
	healthy := s.nodeOf[sim.Healthy]
	for _, step := range []struct {
		redir   string
		n       int
		sidecar bool
	}{{"enabled", 3, false}, {"pending", 1, false}, {"", 1, true}} {
		if err := sim.AppPods(ctx, lab.Clients.Kube, s.appNS, healthy, step.n, step.redir, step.sidecar); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// config scrapes every second and lets pending proxies stay 2 s before
// they count as not draining, so the watcher sees it within a test.
func (s *scenarioLab) config() Config {
	th := ztunnel.DefaultThresholds()
	th.PendingGrace = 2 * time.Second
	return Config{Cluster: "lab", Namespace: s.ztunnelNS, Interval: time.Second, RequestTimeout: 3 * time.Second, Thresholds: th}
}

func nodeByName(snap *ztunnel.Snapshot, name string) *ztunnel.NodeHealth {
	for i := range snap.Nodes {
		if snap.Nodes[i].Node == name {
			return &snap.Nodes[i]
		}
	}
	return nil
}

// expectation per scenario: the state and the first reason a user reads.
var expect = map[sim.Scenario]struct {
	state ztunnel.State
	code  string
	msg   string
}{
	sim.Healthy:            {ztunnel.StateHealthy, "", "ok"},
	sim.NotReady:           {ztunnel.StateUnhealthy, ztunnel.ReasonZtunnelNotReady, "ztunnel NotReady (/healthz/ready returned 503)"},
	sim.NoZtunnel:          {ztunnel.StateUnhealthy, ztunnel.ReasonNoZtunnel, "no ztunnel on node"},
	sim.ExpiringCerts:      {ztunnel.StateWarning, ztunnel.ReasonCertExpiring, "expires in 2h"},
	sim.FailingConnections: {ztunnel.StateUnhealthy, ztunnel.ReasonConnFailures, "% of attempts)"},
	sim.Restarting:         {ztunnel.StateWarning, ztunnel.ReasonRecentRestart, "restarted 3 times, last 2m ago, Error"},
	sim.PendingProxies:     {ztunnel.StateWarning, ztunnel.ReasonPendingProxies, "2 pending proxies not draining for "},
}

func checkScenarios(t *testing.T, s *scenarioLab, snap *ztunnel.Snapshot) {
	t.Helper()
	for node, sc := range s.byNode {
		n := nodeByName(snap, node)
		if n == nil {
			t.Errorf("%s (%s): missing from the snapshot", node, sc)
			continue
		}
		want := expect[sc]
		if n.State != want.state || !strings.Contains(n.Summary(), want.msg) || (want.code != "" && n.Reasons[0].Code != want.code) {
			t.Errorf("%s (%s): %s %q %+v\n  want %s %q (%s)", node, sc, n.State, n.Summary(), n.Reasons, want.state, want.msg, want.code)
		}
	}
}

func TestCollectScenarios(t *testing.T) {
	s := deployScenarios(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	snap, err := Collect(ctx, s.lab.Clients.Kube, s.config(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkScenarios(t, s, &snap)
	h := nodeByName(&snap, s.nodeOf[sim.Healthy])
	if h.Pods != (ztunnel.PodCounts{Enrolled: 5, Captured: 3, Pending: 1, Sidecar: 1}) {
		t.Errorf("healthy node pods %+v", h.Pods)
	}
	if h.Metrics == nil || h.Metrics.Build != "1.24.1" || h.Rates == nil || h.Rates.OpenedPerSec < 5 || h.Rates.OpenedPerSec > 15 {
		t.Errorf("healthy node metrics %+v rates %+v", h.Metrics, h.Rates)
	}
	if len(h.Certificates) != 2 || h.Ztunnel.Version != "1.24.1" {
		t.Errorf("healthy node certs %+v ztunnel %+v", h.Certificates, h.Ztunnel)
	}
	p := nodeByName(&snap, s.nodeOf[sim.PendingProxies])
	if p.Metrics == nil || p.Metrics.PendingProxies != 2 || p.Metrics.ActiveProxies != 2 || len(p.Reasons) != 1 || len(p.Certificates) != 2 {
		t.Errorf("pending-proxies node: metrics %+v reasons %+v certificates %d", p.Metrics, p.Reasons, len(p.Certificates))
	}
	r := nodeByName(&snap, s.nodeOf[sim.Restarting])
	if len(r.Reasons) < 2 || r.Reasons[1].Code != ztunnel.ReasonXDSDisconnects {
		t.Errorf("restarting node should also report xDS disconnects: %+v", r.Reasons)
	}
	if !snap.Unhealthy() || snap.IstioVersion != "1.24.1" {
		t.Errorf("snapshot unhealthy=%v istio=%q", snap.Unhealthy(), snap.IstioVersion)
	}
	// Sickest first.
	for i := 1; i < len(snap.Nodes); i++ {
		if snap.Nodes[i-1].State < snap.Nodes[i].State {
			t.Fatalf("not sorted sickest first at %d: %s before %s", i, snap.Nodes[i-1].State, snap.Nodes[i].State)
		}
	}
}

// countingTransport counts requests by verb and resource path.
type countingTransport struct {
	mu    sync.Mutex
	rt    http.RoundTripper
	count map[string]int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	key := r.Method + " " + classify(r)
	c.mu.Lock()
	c.count[key]++
	c.mu.Unlock()
	return c.rt.RoundTrip(r)
}

func classify(r *http.Request) string {
	p := r.URL.Path
	switch {
	case strings.Contains(p, "/proxy"):
		return "proxy"
	case strings.Contains(p, "/log"):
		return "log"
	case r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1":
		return "watch " + p[strings.LastIndex(p, "/")+1:]
	default:
		return "list " + p[strings.LastIndex(p, "/")+1:]
	}
}

func (c *countingTransport) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.count {
		out[k] = v
	}
	return out
}

func countingClients(t *testing.T, cfg *rest.Config) (*kube.Clients, *countingTransport) {
	t.Helper()
	ct := &countingTransport{count: map[string]int{}}
	cfg = rest.CopyConfig(cfg)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { ct.rt = rt; return ct }
	c, err := kube.NewClients(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, ct
}

// waitFor reads updates until ok accepts a snapshot.
func waitFor(t *testing.T, w *Watcher, d time.Duration, ok func(*ztunnel.Update) bool) *ztunnel.Update {
	t.Helper()
	deadline := time.After(d)
	var last ztunnel.Update
	for {
		select {
		case u := <-w.Updates():
			last = u
			if ok(&u) {
				return &u
			}
		case <-deadline:
			t.Fatalf("no matching update within %s; last %+v", d, last)
		}
	}
}

func TestWatcherWatchesAndScrapes(t *testing.T) {
	s := deployScenarios(t)
	clients, ct := countingClients(t, s.lab.Config)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := New(clients.Kube, s.config())
	start := time.Now()
	go func() { _ = w.Run(ctx) }()
	first := waitFor(t, w, 20*time.Second, func(u *ztunnel.Update) bool { return u.Snapshot != nil })
	t.Logf("first snapshot after %s", time.Since(start))
	// Rates need two scrapes; then every scenario must read as expected.
	u := waitFor(t, w, 20*time.Second, func(u *ztunnel.Update) bool {
		if u.Snapshot == nil {
			return false
		}
		n := nodeByName(u.Snapshot, s.nodeOf[sim.FailingConnections])
		e := nodeByName(u.Snapshot, s.nodeOf[sim.ExpiringCerts])
		// Pending proxies count only once they stayed through the grace.
		p := nodeByName(u.Snapshot, s.nodeOf[sim.PendingProxies])
		return n != nil && n.Rates != nil && e != nil && len(e.Certificates) > 0 && p != nil && p.State == ztunnel.StateWarning
	})
	_ = first
	checkScenarios(t, s, u.Snapshot)

	// A change arrives through the watch, not a re-list.
	before := ct.snapshot()
	node := s.nodeOf[sim.Healthy]
	if err := s.lab.Clients.Kube.CoreV1().Pods(s.ztunnelNS).Delete(ctx, s.dep.Pods[node], metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, w, 15*time.Second, func(u *ztunnel.Update) bool {
		if u.Snapshot == nil {
			return false
		}
		n := nodeByName(u.Snapshot, node)
		return n != nil && n.Summary() == "no ztunnel on node"
	})
	time.Sleep(3 * time.Second) // three more scrape intervals
	after := ct.snapshot()
	for _, res := range []string{"nodes", "pods", "namespaces"} {
		// client-go first tries a streaming watch-list (a WATCH with
		// sendInitialEvents); where the server does not take it, it falls
		// back to one LIST and one WATCH. Either way: at most two watches
		// and one list per resource at start, and none during refresh.
		lists, watches := after["GET list "+res], after["GET watch "+res]
		if lists > 1 || watches > 2 || lists+watches < 1 {
			t.Errorf("%s: %d lists and %d watches (all: %v)", res, lists, watches, after)
		}
		if lists != before["GET list "+res] || watches != before["GET watch "+res] {
			t.Errorf("%s was listed or watched again during refresh: before %v, after %v", res, before, after)
		}
	}
	if after["GET proxy"] <= before["GET proxy"] {
		t.Errorf("the scraper sent no proxy requests during refresh: %v", after)
	}
	t.Logf("requests: %v", after)
}

func TestDetailAndLogs(t *testing.T) {
	s := deployScenarios(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node := s.nodeOf[sim.ExpiringCerts]
	line := s.dep.Stands[node].AccessLogLines(3)
	if err := s.lab.WriteContainerLog(ctx, s.ztunnelNS, s.dep.Pods[node], "istio-proxy", line...); err != nil {
		t.Fatal(err)
	}
	w := New(s.lab.Clients.Kube, s.config())
	go func() { _ = w.Run(ctx) }()
	waitFor(t, w, 20*time.Second, func(u *ztunnel.Update) bool { return u.Snapshot != nil })
	d, err := w.Detail(ctx, s.nodeOf[sim.ExpiringCerts])
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Errors) > 0 {
		t.Fatalf("detail errors: %v", d.Errors)
	}
	if len(d.Workloads) != 2 || len(d.Certificates) != 2 || d.Workloads[0].Addresses[0] == "" {
		t.Fatalf("detail from the address-keyed config_dump: %+v", d)
	}
	if len(d.AccessLog) < 3 || !d.AccessLog[len(d.AccessLog)-1].MTLS {
		t.Fatalf("access log %+v", d.AccessLog)
	}
	lines, err := w.LogLines(ctx, s.nodeOf[sim.ExpiringCerts], 10)
	if err != nil || len(lines) == 0 || !strings.Contains(strings.Join(lines, "\n"), "connection complete") {
		t.Fatalf("log lines %v %v", lines, err)
	}
	// The pending pods are in the detail with their proxy state.
	d, err = w.Detail(ctx, s.nodeOf[sim.PendingProxies])
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, wl := range d.Workloads {
		states[strings.Split(wl.Name, "-")[0]] = wl.ProxyState
	}
	if want := map[string]string{"api": "Pending", "db": "Up", "web": "Up", "worker": "Pending"}; !maps.Equal(states, want) || len(d.Certificates) != 2 {
		t.Fatalf("pending-proxies detail: proxy states %v (want %v), %d certificates", states, want, len(d.Certificates))
	}
	if _, err := w.Detail(ctx, s.nodeOf[sim.NoZtunnel]); err == nil || !strings.Contains(err.Error(), "no ztunnel on node") {
		t.Fatalf("detail of a node without ztunnel: %v", err)
	}
}

// cutProxy is a TCP forwarder to the API server that the test can cut and
// restore, to play a cluster that goes away and comes back.
type cutProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
}

func (p *cutProxy) up(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
}

func (p *cutProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.ln.Close()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func TestClusterGoesAwayAndReturns(t *testing.T) {
	s := deployScenarios(t)
	host := strings.TrimPrefix(s.lab.Config.Host, "https://")
	p := &cutProxy{addr: "127.0.0.1:0", target: host}
	p.up(t)
	defer p.down()
	cfg := rest.CopyConfig(s.lab.Config)
	cfg.Host = "https://" + p.addr
	hostOnly, _, _ := net.SplitHostPort(host)
	cfg.ServerName = hostOnly
	clients, err := kube.NewClients(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := New(clients.Kube, s.config())
	go func() { _ = w.Run(ctx) }()
	waitFor(t, w, 20*time.Second, func(u *ztunnel.Update) bool { return u.Snapshot != nil })

	p.down()
	u := waitFor(t, w, 30*time.Second, func(u *ztunnel.Update) bool { return u.Err != nil })
	t.Logf("while down: %v", u.Err)
	p.up(t)
	waitFor(t, w, 30*time.Second, func(u *ztunnel.Update) bool { return u.Snapshot != nil && u.Err == nil })
}

func TestRestrictedIdentityGetsAClearError(t *testing.T) {
	lab := kubelab.Get(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", lab.RestrictedKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	clients, err := kube.NewClients(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = Collect(ctx, clients.Kube, Config{}, 0)
	if err == nil || !strings.Contains(err.Error(), "nodes") || !strings.Contains(err.Error(), "grant get, list and watch") {
		t.Fatalf("want a forbidden error naming nodes and the fix, got %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the forbidden error must come at once, not after the timeout")
	}
}

func TestPortForwardAdmin(t *testing.T) {
	lab := kubelab.Get(t)
	ns := lab.Namespace(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	node := lab.Nodes[0]
	pod := sim.ZtunnelPod(ns, node, "1.24.1")
	if _, err := lab.Clients.Kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.WaitPodRunning(ctx, ns, pod.Name); err != nil {
		t.Fatal(err)
	}
	// The admin port listens on localhost only, as in real ztunnel: the pod
	// proxy cannot reach it, a port-forward can.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st := sim.New(node, sim.ExpiringCerts)
	g := st.Serve(l)
	defer g.Close()
	if err := lab.ForwardPodPort(ctx, ns, pod.Name, 15000, l.Addr().String()); err != nil {
		t.Fatal(err)
	}
	proxy := ProxyAdmin{Client: lab.Clients.Kube, Timeout: 3 * time.Second}
	if _, err := proxy.ConfigDump(ctx, ns, pod.Name); err == nil {
		t.Fatal("the pod proxy must not reach a localhost-only admin port")
	}
	pf := PortForwardAdmin{Config: lab.Config, Client: lab.Clients.Kube}
	var dump *ztunnel.ConfigDump
	deadline := time.Now().Add(15 * time.Second)
	for {
		dump, err = FallbackAdmin{proxy, pf}.ConfigDump(ctx, ns, pod.Name)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond) // kwok picks the forward rule up through a watch
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(dump.Workloads) != 2 || len(dump.Certificates) != 2 || dump.Certificates[0].Expiration == nil {
		t.Fatalf("dump through the port-forward: %+v", dump)
	}
}

// TestUnreachableZtunnelIsNamed: a ztunnel pod that answers nothing (no
// process listening) is reported as unreachable with the API server's dial
// error, not as "returned 503", and its config_dump is not tried.
func TestUnreachableZtunnelIsNamed(t *testing.T) {
	lab := kubelab.Get(t)
	ns := lab.Namespace(t, nil)
	lab.RunPod(t, ns, "ztunnel-silent", lab.Nodes[0], map[string]string{"app": "ztunnel"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := Config{Cluster: "lab", Namespace: ns, Interval: time.Second, RequestTimeout: 3 * time.Second, Thresholds: ztunnel.DefaultThresholds()}
	snap, err := Collect(ctx, lab.Clients.Kube, cfg, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	n := nodeByName(&snap, lab.Nodes[0])
	if n == nil {
		t.Fatalf("%s missing from the snapshot", lab.Nodes[0])
	}
	want := "ztunnel NotReady (/healthz/ready unreachable: connection refused)"
	if n.State != ztunnel.StateUnhealthy || !strings.Contains(n.Summary(), want) {
		t.Fatalf("%s: %s %q, want unhealthy with %q", n.Node, n.State, n.Summary(), want)
	}
	if n.CertError != "" || len(n.Certificates) != 0 {
		t.Errorf("config_dump of an unreachable ztunnel was tried: certs %v, error %q", n.Certificates, n.CertError)
	}
}
