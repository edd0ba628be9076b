// Package mtlsscenario runs `kubectl ambient verify-mtls scenario` against
// the lab: real API server, real namespaces, pods, capture pods and exec
// (served by kwok, which runs the commands on this host), real traffic
// between fake pods' IPs, captured by tcpdump and judged by the verdict code.
//
// There is no ztunnel or istio-cni in the lab, so the test provides the
// dataplane as TEST-ONLY stand-ins: a CNI stand-in that writes the
// redirection annotation, HBONE and app listeners on the server pods' IPs,
// and internal/testing/sim/cmd/meshclient as the client command (HBONE between
// enrolled pods, plaintext otherwise, the way ztunnel would). The command
// only sees them through its flags.
//
// All fake pod IPs are local addresses of the lab's one pod network
// namespace, so pod-to-pod packets cross that namespace's loopback, never
// the veth a root-namespace tcpdump would see. TestMain therefore puts a
// tcpdump shim first in the PATH the lab's kwok inherits; it runs the real
// tcpdump inside the pod network namespace. The capture command, filter and
// pcap stream are verify-mtls's own.
package mtlsscenario

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/hbonesim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/cmd"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls/capture"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls/scenario"
)

// shimDir holds the tcpdump shim and the name of the lab's pod network
// namespace it enters (written once the lab runs).
var shimDir string

func TestMain(m *testing.M) {
	if tcpdump, err := exec.LookPath("tcpdump"); err == nil {
		dir, err := os.MkdirTemp("", "scenario-shim-")
		if err == nil {
			shim := "#!/bin/sh\n# TEST-ONLY: capture inside the lab's pod network namespace.\n" +
				"exec ip netns exec \"$(cat " + filepath.Join(dir, "netns") + ")\" " + tcpdump + " \"$@\"\n"
			if os.WriteFile(filepath.Join(dir, "tcpdump"), []byte(shim), 0o700) == nil {
				shimDir = dir
				_ = os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
			}
		}
	}
	kubelab.Main(m, kubelab.Options{Nodes: 2})
}

func requireCapture(t *testing.T) {
	t.Helper()
	if shimDir == "" {
		// TestMain found no tcpdump to put behind the shim.
		kubelab.RequireRootTools(t, "scenario test", "tcpdump")
	}
	kubelab.RequireRootTools(t, "scenario test", "timeout", "ip")
}

// env is the lab plus the stand-ins for one test.
type env struct {
	lab        *kubelab.Lab
	meshclient string
	caDir      string
}

// setup starts the stand-ins; cni false leaves pods without the
// redirection annotation (istio-cni not running).
func setup(t *testing.T, cni bool) *env {
	t.Helper()
	lab := kubelab.Get(t)
	if cni {
		requireCapture(t)
		if lab.NetNS == "" {
			t.Fatal("lab without a pod network namespace although root")
		}
		if err := os.WriteFile(filepath.Join(shimDir, "netns"), []byte(lab.NetNS), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := hbonesim.NewCA("cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{lab: lab, meshclient: kubelab.BuildBinary(t, "github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/cmd/meshclient"), caDir: t.TempDir()}
	// Runs of earlier tests must be gone: each test reads "its" scenario
	// namespaces by label.
	e.assertGone(t, e.scenarioNamespaces(t))
	if err := ca.Save(e.caDir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	if !cni {
		close(done)
		return e
	}
	go func() { defer close(done); e.dataplane(ctx, t, ca) }()
	return e
}

// dataplane is the TEST-ONLY stand-in for istio-cni and ztunnel's inbound
// side: for every running scenario pod it opens the server's listeners on
// its IP (the app port, and HBONE on 15008 in the ambient namespace), then
// writes ambient.istio.io/redirection=enabled on pods of ambient namespaces.
func (e *env) dataplane(ctx context.Context, t *testing.T, ca *hbonesim.CA) {
	kc := e.lab.Clients.Kube
	seen := map[types.UID]bool{}
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
		pods, err := kc.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: scenario.Label})
		if err != nil {
			continue
		}
		for _, p := range pods.Items {
			if seen[p.UID] || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
				continue
			}
			ns, err := kc.CoreV1().Namespaces().Get(ctx, p.Namespace, metav1.GetOptions{})
			if err != nil {
				continue
			}
			enrolled := ns.Labels[ambient.LabelDataplaneMode] == ambient.DataplaneAmbient
			if p.Labels["app"] == "server" {
				c, err := e.serve(ca, &p, enrolled)
				if err != nil {
					t.Errorf("stand-in listeners for %s/%s: %v", p.Namespace, p.Name, err)
					continue
				}
				closers = append(closers, c)
			}
			if enrolled {
				patch := []byte(`{"metadata":{"annotations":{"` + ambient.AnnotationRedirection + `":"enabled"}}}`)
				if _, err := kc.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
					continue
				}
			}
			seen[p.UID] = true
		}
	}
}

func (e *env) serve(ca *hbonesim.CA, p *corev1.Pod, ambient bool) (func(), error) {
	app, err := e.lab.ListenPod(p.Status.PodIP, scenario.DefaultPort)
	if err != nil {
		return nil, err
	}
	go hbonesim.Echo(app)
	if !ambient {
		return func() { _ = app.Close() }, nil
	}
	sa := p.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	cert, err := ca.Issue(p.Namespace, sa)
	if err != nil {
		_ = app.Close()
		return nil, err
	}
	ln, err := e.lab.ListenPod(p.Status.PodIP, hbonesim.Port)
	if err != nil {
		_ = app.Close()
		return nil, err
	}
	// ztunnel hands the tunnelled stream to the app inside the pod, out of
	// any node capture's sight: an echo on this host's loopback (outside
	// the pod network namespace the capture runs in) plays that part.
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = app.Close()
		_ = ln.Close()
		return nil, err
	}
	go hbonesim.Echo(inner)
	hb := &hbonesim.Server{TLS: ca.ServerConfig(cert), Dial: func(ctx context.Context, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", inner.Addr().String())
	}}
	go func() { _ = hb.Serve(ln) }()
	return func() { _ = ln.Close(); hb.Close(); _ = inner.Close(); _ = app.Close() }, nil
}

// clientCommand is --client-command for the meshclient stand-in.
func (e *env) clientCommand(extra string) string {
	return fmt.Sprintf("%s --kubeconfig %s --netns %s --ca-dir %s --namespace {namespace} --pod {pod} --target {target}%s",
		e.meshclient, e.lab.Kubeconfig, e.lab.NetNS, e.caDir, extra)
}

// run executes `kubectl ambient verify-mtls scenario` through the cobra tree.
func (e *env) run(ctx context.Context, args ...string) (string, string, error) {
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	root := cmd.NewRootCmd(streams)
	root.SetArgs(append([]string{"verify-mtls", "scenario", "--kubeconfig", e.lab.Kubeconfig}, args...))
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func TestScenarioPasses(t *testing.T) {
	e := setup(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// SCENARIO_DURATION times the command at another capture window (the
	// command's default is 15s) for docs/benchmarks.md.
	duration := "8s"
	if d := os.Getenv("SCENARIO_DURATION"); d != "" {
		duration = d
	}
	begin := time.Now()
	// The stand-in client, like Go's TLS and ztunnel with post-quantum
	// support, offers X25519MLKEM768: --require-pqc passes.
	junit := filepath.Join(t.TempDir(), "scenario.xml")
	out, stderr, err := e.run(ctx, "-o", "json", "--duration", duration, "--pod-timeout", "60s", "--client-command", e.clientCommand(""),
		"--require-pqc", "--expect", "ambient/client-cross-node->ambient/server", "--expect", "client-same-node->server", "--junit", junit)
	t.Logf("whole command (--duration %s): %s\nstderr:\n%s", duration, time.Since(begin).Round(time.Millisecond), stderr)
	if err != nil {
		t.Fatalf("scenario: %v\n%s", err, out)
	}
	var res scenario.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("parse json: %v\n%s", err, out)
	}
	if !res.Passed || res.Verdict != mtls.OutcomePass || len(res.Cases) != 8 {
		t.Fatalf("verdict %s passed=%v, %d cases: %s", res.Verdict, res.Passed, len(res.Cases), out)
	}
	for _, c := range res.Cases {
		t.Logf("%s -> %s %s: expected %s, observed %s: %s (%s)", c.From, c.To, c.Placement, c.Expected, c.Observed, c.Result, c.Reason)
		want := "plaintext on 8080"
		if c.Expected == scenario.ExpectHBONE {
			want = "hbone on 15008"
		}
		if c.Result != scenario.CasePass || c.Observed != want {
			t.Errorf("case %s -> %s (%s): %s, observed %q, want %q", c.From, c.To, c.Placement, c.Result, c.Observed, want)
		}
	}
	if !res.RequirePQC || len(res.Expectations) != 2 {
		t.Errorf("requirePQC %v, expectations %+v; want true and 2", res.RequirePQC, res.Expectations)
	}
	for _, x := range res.Expectations {
		if !x.Seen || !x.Passed {
			t.Errorf("expected pair %s: seen %v passed %v: %s", x, x.Seen, x.Passed, x.Reason)
		}
	}
	assertGroups(t, res.Capture, "X25519MLKEM768", true)
	if b, err := os.ReadFile(junit); err != nil || !strings.Contains(string(b), `name="ambient/client-cross-node-&gt;ambient/server" classname="verify-mtls-scenario.expect"></testcase>`) {
		t.Errorf("junit (%v) lacks the passed --expect testcase:\n%s", err, b)
	}
	e.assertGone(t, res.Namespaces)
	// The run's capture namespace goes too.
	e.assertGone(t, e.scenarioNamespaces(t))
}

// assertGroups checks every HBONE row's negotiated key-exchange group.
func assertGroups(t *testing.T, rep *mtls.Report, group string, pq bool) {
	t.Helper()
	if rep == nil {
		t.Fatal("no capture report")
	}
	n := 0
	for _, p := range rep.Pairs {
		for _, r := range p.Rows {
			if r.Port != hbonesim.Port {
				continue
			}
			n++
			if r.Negotiated == nil || r.Negotiated.Group != group || r.Negotiated.PostQuantum != pq {
				t.Errorf("%s -> %s: negotiated %+v, want group %s (post-quantum %v)", r.Client.Name, r.Server.Name, r.Negotiated, group, pq)
			}
		}
	}
	if n == 0 {
		t.Error("no HBONE row in the capture")
	}
}

// TestScenarioClassicalFailsRequirePQC: a client that offers only a
// classical group (a ztunnel without post-quantum support) makes every
// ambient -> ambient case fail under --require-pqc, and the expected pair
// with it; the other cases are untouched.
func TestScenarioClassicalFailsRequirePQC(t *testing.T) {
	e := setup(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	junit := filepath.Join(t.TempDir(), "scenario.xml")
	out, stderr, err := e.run(ctx, "-o", "json", "--duration", "8s", "--pod-timeout", "60s", "--client-command", e.clientCommand(" --classical"),
		"--require-pqc", "--expect", "ambient/client-same-node->ambient/server", "--junit", junit)
	var se cmd.SilentError
	if !errors.As(err, &se) || se.Code != cmd.ExitFailure {
		t.Fatalf("err = %v, want exit code 1\n%s\n%s", err, out, stderr)
	}
	var res scenario.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("parse json: %v\n%s", err, out)
	}
	for _, c := range res.Cases {
		t.Logf("%s -> %s %s: %s: %s", c.From, c.To, c.Placement, c.Result, c.Reason)
		want := scenario.CasePass
		if c.Expected == scenario.ExpectHBONE {
			want = scenario.CaseFail
			if !strings.Contains(c.Reason, "negotiated the classical group x25519") {
				t.Errorf("case %s -> %s: reason %q does not name the classical group", c.From, c.To, c.Reason)
			}
		}
		if c.Result != want {
			t.Errorf("case %s -> %s (%s): %s, want %s", c.From, c.To, c.Placement, c.Result, want)
		}
	}
	if res.Verdict != mtls.OutcomeFail || len(res.Expectations) != 1 || res.Expectations[0].Passed || !res.Expectations[0].Seen {
		t.Errorf("verdict %s, expectations %+v; want FAIL and the expected pair seen but failed", res.Verdict, res.Expectations)
	}
	assertGroups(t, res.Capture, "x25519", false)
	b, err := os.ReadFile(junit)
	if err != nil || !strings.Contains(string(b), `name="ambient/client-same-node-&gt;ambient/server" classname="verify-mtls-scenario.expect">`) ||
		!strings.Contains(string(b), `type="FAIL"`) {
		t.Errorf("junit (%v) lacks the failed --expect testcase:\n%s", err, b)
	}
	e.assertGone(t, e.scenarioNamespaces(t))
}

func TestScenarioOneNode(t *testing.T) {
	e := setup(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Cordon every node but the first: the cross-node cases cannot be placed.
	kc := e.lab.Clients.Kube
	for _, n := range e.lab.Nodes[1:] {
		if _, err := kc.CoreV1().Nodes().Patch(ctx, n, types.MergePatchType, []byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = kc.CoreV1().Nodes().Patch(context.Background(), n, types.MergePatchType, []byte(`{"spec":{"unschedulable":false}}`), metav1.PatchOptions{})
		})
	}
	out, stderr, err := e.run(ctx, "-o", "yaml", "--duration", "6s", "--pod-timeout", "60s", "--client-command", e.clientCommand(""))
	if err != nil {
		t.Fatalf("scenario: %v\n%s\n%s", err, out, stderr)
	}
	var res scenario.Result
	if err := yaml.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("parse yaml: %v\n%s", err, out)
	}
	count := map[string]int{}
	for _, c := range res.Cases {
		count[c.Result+" "+c.Placement]++
		if c.Result == scenario.CaseSkipped && !strings.Contains(c.Reason, "only one ready, schedulable node") {
			t.Errorf("skipped without the reason: %+v", c)
		}
	}
	if !res.Passed || len(res.Nodes) != 1 || count["pass same-node"] != 4 || count["skipped cross-node"] != 4 {
		t.Errorf("passed=%v nodes=%v cases=%v\n%s", res.Passed, res.Nodes, count, out)
	}
	e.assertGone(t, res.Namespaces)
}

func TestScenarioBrokenDataplaneFails(t *testing.T) {
	e := setup(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, stderr, err := e.run(ctx, "--duration", "8s", "--pod-timeout", "60s", "--client-command", e.clientCommand(" --broken"))
	var se cmd.SilentError
	if !errors.As(err, &se) || se.Code != cmd.ExitFailure {
		t.Fatalf("err = %v, want exit code 1\n%s\n%s", err, out, stderr)
	}
	t.Logf("\n%s", out)
	fails := 0
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, " FAIL ") {
			continue
		}
		fails++
		if !strings.Contains(line, "/client-") || !strings.Contains(line, "(ambient)") || !strings.Contains(line, "/server (ambient)") ||
			!strings.Contains(line, "port 8080: ") {
			t.Errorf("failing row does not name the ambient -> ambient case: %q", line)
		}
	}
	if fails != 2 || !strings.Contains(out, "FAIL: some cases") {
		t.Errorf("want the 2 ambient -> ambient cases failing:\n%s", out)
	}
	e.assertGone(t, e.scenarioNamespaces(t))
}

func TestScenarioCleansUpOnCancel(t *testing.T) {
	e := setup(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		stderr string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		_, stderr, err := e.run(ctx, "--duration", "30s", "--pod-timeout", "60s", "--client-command", e.clientCommand(""))
		done <- result{stderr, err}
	}()
	// Ctrl-C while the capture runs: scenario namespaces, pods and capture pods exist.
	kc := e.lab.Clients.Kube
	var names []string
	deadline := time.Now().Add(90 * time.Second)
	for {
		caps, err := kc.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{LabelSelector: capture.Label})
		if err == nil && len(caps.Items) > 0 {
			names = e.scenarioNamespaces(t)
			break
		}
		if time.Now().After(deadline) {
			cancel()
			r := <-done
			t.Fatalf("no capture pods appeared: %v\n%s", r.err, r.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	cancel()
	begin := time.Now()
	r := <-done
	t.Logf("returned %s after cancel: %v\n%s", time.Since(begin).Round(time.Millisecond), r.err, r.stderr)
	if r.err == nil {
		t.Fatal("cancelled scenario returned no error")
	}
	// Two workload namespaces and the capture namespace of the run's own
	// (capture pods never run in the workload namespaces).
	if len(names) != 3 {
		t.Fatalf("scenario namespaces while running = %v, want 3", names)
	}
	e.assertGone(t, names)
}

func TestScenarioWithoutCNI(t *testing.T) {
	e := setup(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, stderr, err := e.run(ctx, "--pod-timeout", "5s")
	if err == nil || !strings.Contains(err.Error(), "is istio-cni running?") || !strings.Contains(err.Error(), ambient.AnnotationRedirection) {
		t.Fatalf("err = %v, want the missing redirection annotation and the istio-cni hint\n%s\n%s", err, out, stderr)
	}
	t.Logf("error: %v", err)
	e.assertGone(t, e.scenarioNamespaces(t))
}

func TestScenarioKeepThenCleanup(t *testing.T) {
	e := setup(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, stderr, err := e.run(ctx, "--pod-timeout", "3s", "--keep")
	if err == nil || !strings.Contains(stderr, "kept namespaces") {
		t.Fatalf("err = %v, want a failed run that keeps its namespaces\n%s", err, stderr)
	}
	nss, err := e.lab.Clients.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: scenario.Label})
	if err != nil || len(nss.Items) != 2 {
		t.Fatalf("kept namespaces: %v %v", nss, err)
	}
	// A later run points at the leftovers.
	if _, stderr, _ := e.run(ctx, "--pod-timeout", "1s"); !strings.Contains(stderr, "namespaces of earlier scenario runs are still there ("+nss.Items[0].Name) {
		t.Errorf("a later run does not warn about the kept namespaces:\n%s", stderr)
	}
	out, _, err := e.run(ctx, "--cleanup")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nss.Items {
		names = append(names, n.Name)
		if !strings.Contains(out, "deleted namespace "+n.Name+"\n") {
			t.Errorf("--cleanup output does not name %s:\n%s", n.Name, out)
		}
	}
	e.assertGone(t, names)
	if out, _, err := e.run(ctx, "--cleanup"); err != nil || !strings.Contains(out, "no scenario namespaces left behind") {
		t.Errorf("second --cleanup: %v %q", err, out)
	}
}

func TestScenarioRefusedWithoutRBAC(t *testing.T) {
	e := setup(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The lab's restricted user may only read namespaces and pods.
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	root := cmd.NewRootCmd(streams)
	root.SetArgs([]string{"verify-mtls", "scenario", "--kubeconfig", e.lab.RestrictedKubeconfig})
	err := root.ExecuteContext(ctx)
	for _, want := range []string{"refused before changing anything", "cannot list nodes", "cannot create namespaces", "cannot create pods/exec in namespace ambient-verify-", "docs/rbac.md"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q\n%s", err, want, out)
		}
	}
	if left := e.scenarioNamespaces(t); len(left) != 0 {
		t.Errorf("a refused run created namespaces %v", left)
	}
}

func (e *env) scenarioNamespaces(t *testing.T) []string {
	t.Helper()
	nss, err := e.lab.Clients.Kube.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{LabelSelector: scenario.Label})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nss.Items {
		names = append(names, n.Name)
	}
	return names
}

// assertGone waits until the namespaces and every pod in them are deleted.
func (e *env) assertGone(t *testing.T, names []string) {
	t.Helper()
	kc := e.lab.Clients.Kube
	deadline := time.Now().Add(90 * time.Second)
	for _, ns := range names {
		for {
			_, err := kc.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
			pods, perr := kc.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
			if apierrors.IsNotFound(err) && perr == nil && len(pods.Items) == 0 {
				break
			}
			if time.Now().After(deadline) {
				var b bytes.Buffer
				if pods != nil {
					for _, p := range pods.Items {
						fmt.Fprintf(&b, " %s", p.Name)
					}
				}
				t.Fatalf("namespace %s not gone (get: %v; pods:%s)", ns, err, b.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
