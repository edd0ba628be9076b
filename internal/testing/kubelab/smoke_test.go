package kubelab_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

func TestMain(m *testing.M) {
	kubelab.Main(m, kubelab.Options{Nodes: 3})
}

// TestDaemonSetRunsOnEveryNode: the controller-manager creates a pod per
// node, the scheduler binds them, kwok runs them.
func TestDaemonSetRunsOnEveryNode(t *testing.T) {
	lab := kubelab.Get(t)
	ctx := context.Background()
	cs := lab.Clients.Kube
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "ztunnel"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "ztunnel", Namespace: "istio-system"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "istio-proxy", Image: "registry.invalid/ztunnel:1"}}},
			},
		},
	}
	if _, err := cs.AppsV1().DaemonSets("istio-system").Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.AppsV1().DaemonSets("istio-system").Delete(context.Background(), "ztunnel", metav1.DeleteOptions{})
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		pods, err := cs.CoreV1().Pods("istio-system").List(ctx, metav1.ListOptions{LabelSelector: "app=ztunnel"})
		if err != nil {
			t.Fatal(err)
		}
		perNode := map[string]int{}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
				perNode[p.Spec.NodeName]++
			}
		}
		ok := len(perNode) == len(lab.Nodes)
		for _, n := range lab.Nodes {
			if perNode[n] != 1 {
				ok = false
			}
		}
		if ok {
			for _, p := range pods.Items {
				if !strings.HasPrefix(p.Spec.NodeName, kubelab.NodePrefix) {
					t.Errorf("pod %s on unexpected node %q", p.Name, p.Spec.NodeName)
				}
				// kwok hands out pod IPs from the node's podCIDR, inside the lab's range.
				node, err := cs.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				_, nodeNet, err := net.ParseCIDR(node.Spec.PodCIDR)
				if err != nil {
					t.Fatalf("node %s podCIDR %q: %v", node.Name, node.Spec.PodCIDR, err)
				}
				_, labNet, _ := net.ParseCIDR(lab.PodCIDR)
				ip := net.ParseIP(p.Status.PodIP)
				if !nodeNet.Contains(ip) || !labNet.Contains(ip) {
					t.Errorf("pod %s ip %s outside node %s podCIDR %s or lab range %s", p.Name, ip, node.Name, nodeNet, lab.PodCIDR)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("want one Running ztunnel pod on each of %v, got %v\n%s", lab.Nodes, perNode, lab.LogTails(10))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestNamespaceLabelRoundTrip(t *testing.T) {
	lab := kubelab.Get(t)
	ns := lab.Namespace(t, nil)
	lab.Kubectl(t, "label", "namespace", ns, "istio.io/dataplane-mode=ambient")
	got, err := lab.Clients.Kube.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := got.Labels["istio.io/dataplane-mode"]; v != "ambient" {
		t.Fatalf("namespace %s label istio.io/dataplane-mode = %q, want ambient", ns, v)
	}
}

func TestExecAndLogsOnFakePod(t *testing.T) {
	lab := kubelab.Get(t)
	ns := lab.Namespace(t, nil)
	pod := lab.RunPod(t, ns, "web", lab.Nodes[0], map[string]string{"app": "web"})
	if pod.Spec.NodeName != lab.Nodes[0] {
		t.Fatalf("pod on node %q, want %q", pod.Spec.NodeName, lab.Nodes[0])
	}
	word := "hello-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	out := lab.Kubectl(t, "exec", "-n", ns, "web", "--", "echo", word)
	if strings.TrimSpace(out) != word {
		t.Fatalf("kubectl exec echo: got %q, want %q", out, word)
	}
	line := "log-line-" + word
	if err := lab.WritePodLog(line); err != nil {
		t.Fatal(err)
	}
	logs := lab.Kubectl(t, "logs", "-n", ns, "web")
	if !strings.Contains(logs, line) {
		t.Fatalf("kubectl logs: %q does not contain %q", logs, line)
	}
}

func TestPodProxyReachesListenPod(t *testing.T) {
	lab := kubelab.Get(t)
	if lab.NetNS == "" {
		_, err := lab.ListenPod("10.100.0.1", 80)
		if os.Getenv("CI") == "true" && os.Geteuid() == 0 {
			t.Fatalf("CI runs as root but the lab has no pod network: %v", err)
		}
		t.Skipf("no lab network namespace: %v", err)
	}
	ns := lab.Namespace(t, nil)
	pod := lab.RunPod(t, ns, "server", "", nil)
	ln, err := lab.ListenPod(pod.Status.PodIP, 8080)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pod %s path %s", pod.Name, r.URL.Path)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	body, err := lab.Clients.Kube.CoreV1().RESTClient().Get().
		AbsPath("/api/v1/namespaces", ns, "pods", "server:8080", "proxy", "hello").
		Timeout(10 * time.Second).DoRaw(context.Background())
	if err != nil {
		t.Fatalf("pod proxy to %s:8080: %v", pod.Status.PodIP, err)
	}
	if want := "pod server path /hello"; string(body) != want {
		t.Fatalf("pod proxy answered %q, want %q", body, want)
	}
	// The same address is reachable directly from the test process.
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + pod.Status.PodIP + ":8080/direct")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "pod server path /direct" {
		t.Fatalf("direct dial answered %q", b)
	}
}

func TestRestrictedIdentityIsDenied(t *testing.T) {
	lab := kubelab.Get(t)
	cfg, err := lab.RestrictedConfig()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("restricted identity should list namespaces: %v", err)
	}
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "forbidden-" + strconv.Itoa(os.Getpid())}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("restricted identity creating a namespace: got %v, want Forbidden", err)
	}
	// The same identity through the plugin's own client factory.
	c, err := kube.NewFactory(lab.RestrictedFlags()).Clients()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kube.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("restricted identity listing secrets: got %v, want Forbidden", err)
	}
}

// TestManyNodes adds 5000 fake nodes. It takes a minute or more on a small
// machine, so it runs only with LAB_BIG=1.
func TestManyNodes(t *testing.T) {
	if os.Getenv("LAB_BIG") != "1" {
		t.Skip("set LAB_BIG=1 to add 5000 fake nodes")
	}
	lab := kubelab.Get(t)
	n := 5000
	if s := os.Getenv("LAB_BIG_NODES"); s != "" {
		if v, err := strconv.Atoi(s); err == nil {
			n = v
		}
	}
	start := time.Now()
	names, err := lab.AddNodes(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("added %d Ready fake nodes in %s", len(names), time.Since(start).Round(time.Millisecond))
	list, err := lab.Clients.Kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) < n {
		t.Fatalf("cluster has %d nodes, want at least %d", len(list.Items), n)
	}
}

func TestPerPodLogs(t *testing.T) {
	lab := kubelab.Get(t)
	ns := lab.Namespace(t, nil)
	lab.RunPod(t, ns, "a", "", nil)
	lab.RunPod(t, ns, "b", "", nil)
	ctx := context.Background()
	if err := lab.WriteContainerLog(ctx, ns, "a", "app", "first from a", "second from a"); err != nil {
		t.Fatal(err)
	}
	if err := lab.WriteContainerLog(ctx, ns, "b", "app", "only from b"); err != nil {
		t.Fatal(err)
	}
	// Appends after registration are served too (kwok reads the file).
	if err := lab.WriteContainerLog(ctx, ns, "a", "app", "third from a"); err != nil {
		t.Fatal(err)
	}
	a := lab.Kubectl(t, "logs", "-n", ns, "a", "-c", "app")
	b := lab.Kubectl(t, "logs", "-n", ns, "b")
	if want := "first from a\nsecond from a\nthird from a\n"; a != want {
		t.Errorf("kubectl logs a = %q, want %q", a, want)
	}
	if want := "only from b\n"; b != want {
		t.Errorf("kubectl logs b = %q, want %q", b, want)
	}
}

func TestPortForwardToFakePod(t *testing.T) {
	lab := kubelab.Get(t)
	ns := lab.Namespace(t, nil)
	pod := lab.RunPod(t, ns, "admin", "", nil)
	// A simulator on 127.0.0.1 stands for the pod's localhost-only port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "admin of %s", pod.Name)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	if err := lab.ForwardPodPort(context.Background(), ns, "admin", 15000, ln.Addr().String()); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, lab.KubectlPath(), "--kubeconfig="+lab.Kubeconfig, "port-forward", "-n", ns, "pod/admin", ":15000")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("kubectl port-forward printed nothing: %v %s", err, stderr.String())
	}
	// "Forwarding from 127.0.0.1:NNNNN -> 15000"
	f := strings.Fields(line)
	if len(f) < 3 || !strings.HasPrefix(f[2], "127.0.0.1:") {
		t.Fatalf("unexpected kubectl port-forward output %q", line)
	}
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := (&http.Client{Timeout: 3 * time.Second}).Get("http://" + f[2] + "/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer through kubectl port-forward: %v %q; kubectl: %s", err, body, stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if body != "admin of admin" {
		t.Fatalf("port-forward answered %q", body)
	}
}

// TestDetachedLabStopsFromPidFiles is `lab up` / `lab down`: a lab whose
// processes outlive their starter is stopped by another caller through the
// pid files, and leaves nothing behind.
func TestDetachedLabStopsFromPidFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a lab: skipped under -short")
	}
	if err := kubelab.Built(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip("lab binaries not built: run hack/lab/build.sh")
	}
	dir := t.TempDir()
	lab, err := kubelab.Start(context.Background(), kubelab.Options{Nodes: 1, Dir: dir, Detached: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lab.Stop)
	ps, err := kubelab.Processes(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, p := range ps {
		if !p.Running {
			t.Errorf("%s (pid %d) not running", p.Name, p.PID)
		}
		names[p.Name] = true
	}
	for _, want := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"} {
		if !names[want] {
			t.Errorf("no pid file for %s (have %v)", want, names)
		}
	}
	begin := time.Now()
	if err := kubelab.StopDir(dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("StopDir took %s", time.Since(begin).Round(time.Millisecond))
	for _, p := range ps {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", p.PID)); err == nil {
			if stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID)); !strings.Contains(string(stat), ") Z ") {
				t.Errorf("%s (pid %d) still running after StopDir", p.Name, p.PID)
			}
		}
	}
	if lab.NetNS != "" {
		if _, err := os.Stat("/run/netns/" + lab.NetNS); err == nil {
			t.Errorf("network namespace %s left after StopDir", lab.NetNS)
		}
	}
	if _, err := kube.ServerVersion(context.Background(), lab.Clients); err == nil {
		t.Error("API server still answers after StopDir")
	}
}

// TestLabCleanedUpAfterPanic runs a test binary that panics while its lab is
// up: the kernel kills the components (Pdeathsig) and the watchdog removes
// the network namespace and the lab's directories.
func TestLabCleanedUpAfterPanic(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a lab: skipped under -short")
	}
	if os.Getenv("LABTEST_CHILD") == "panic" {
		reportChildLab(t)
		panic("deliberate panic with a running lab")
	}
	out, err := runChild(t, "TestLabCleanedUpAfterPanic", "panic", nil)
	if err == nil || !strings.Contains(out, "deliberate panic") {
		t.Fatalf("child did not panic: %v\n%s", err, out)
	}
	assertLabGone(t, out)
}

// TestLabStoppedOnInterrupt: Ctrl-C on a test binary stops its lab.
func TestLabStoppedOnInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a lab: skipped under -short")
	}
	if os.Getenv("LABTEST_CHILD") == "sigint" {
		reportChildLab(t)
		time.Sleep(time.Minute)
		t.Fatal("child was not interrupted")
	}
	out, err := runChild(t, "TestLabStoppedOnInterrupt", "sigint", func(p *os.Process) { _ = p.Signal(os.Interrupt) })
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 || !strings.Contains(out, "lab stopped") {
		t.Fatalf("child after SIGINT: %v, want exit code 130 and \"lab stopped\"\n%s", err, out)
	}
	assertLabGone(t, out)
}

func reportChildLab(t *testing.T) {
	lab := kubelab.Get(t)
	ps, err := kubelab.Processes(lab.Dir)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("LABDIR %s\nNETNS %s\n", lab.Dir, lab.NetNS)
	for _, p := range ps {
		fmt.Printf("PID %d %s\n", p.PID, p.Name)
	}
	fmt.Println("READY")
}

// runChild runs this test binary on one test in child mode; once the child
// printed READY, signal (if any) is called with its process.
func runChild(t *testing.T, test, mode string, signal func(*os.Process)) (string, error) {
	t.Helper()
	if err := kubelab.Built(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip("lab binaries not built: run hack/lab/build.sh")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.v")
	cmd.Env = append(os.Environ(), "LABTEST_CHILD="+mode, "LAB_KEEP=")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = pw.Close()
	var out strings.Builder
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if sc.Text() == "READY" && signal != nil {
			signal(cmd.Process)
		}
	}
	err = cmd.Wait()
	return out.String(), err
}

// assertLabGone checks that the processes, directory and network namespace
// the child reported disappear.
func assertLabGone(t *testing.T, out string) {
	t.Helper()
	var dir, netns string
	var pids []int
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "LABDIR":
			dir = f[1]
		case len(f) == 2 && f[0] == "NETNS":
			netns = f[1]
		case len(f) == 3 && f[0] == "PID":
			pid, _ := strconv.Atoi(f[1])
			pids = append(pids, pid)
		}
	}
	if dir == "" || len(pids) < 5 {
		t.Fatalf("child did not report its lab:\n%s", out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var left []string
		for _, pid := range pids {
			if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(stat), ") Z ") {
				left = append(left, fmt.Sprintf("pid %d", pid))
			}
		}
		if _, err := os.Stat(dir); err == nil {
			left = append(left, "dir "+dir)
		}
		if netns != "" {
			if _, err := os.Stat("/run/netns/" + netns); err == nil {
				left = append(left, "netns "+netns)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("child's lab still there: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestConcurrentLabs: labs started at the same moment get their own ports,
// pod ranges and network namespaces.
func TestConcurrentLabs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a lab: skipped under -short")
	}
	if err := kubelab.Built(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip("lab binaries not built: run hack/lab/build.sh")
	}
	const n = 2
	labs := make([]*kubelab.Lab, n)
	errs := make([]error, n)
	done := make(chan int)
	for i := range n {
		go func() {
			labs[i], errs[i] = kubelab.Start(context.Background(), kubelab.Options{Nodes: 1})
			done <- i
		}()
	}
	for range n {
		<-done
	}
	for i := range n {
		if labs[i] != nil {
			t.Cleanup(labs[i].Stop)
		}
		if errs[i] != nil {
			t.Fatalf("lab %d: %v", i, errs[i])
		}
	}
	a, b := labs[0], labs[1]
	if a.Server == b.Server || a.PodCIDR == b.PodCIDR || a.Dir == b.Dir {
		t.Fatalf("labs share server/range/dir: %s %s %s vs %s %s %s", a.Server, a.PodCIDR, a.Dir, b.Server, b.PodCIDR, b.Dir)
	}
	if a.NetNS != "" && a.NetNS == b.NetNS {
		t.Fatalf("labs share network namespace %s", a.NetNS)
	}
	// Each answers for itself: a namespace made in one is absent in the other.
	ctx := context.Background()
	ns, err := a.Clients.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "only-in-a-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Clients.Kube.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace %s of lab a seen in lab b: %v", ns.Name, err)
	}
}

// TestExecProcessesEndWithTheStream: commands started by `kubectl exec` into
// a fake pod run on this host under kwok, which leaves them running when the
// exec stream ends; timeout(1), which the live capture runs in front of
// tcpdump, even leaves kwok's process group. The lab's exec proxy ends each
// command with its stream, and Stop ends any still running, so no test
// leaves one behind.
func TestExecProcessesEndWithTheStream(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test skipped under -short")
	}
	if err := kubelab.Built(); err != nil {
		t.Skip(err)
	}
	lab, err := kubelab.Start(context.Background(), kubelab.Options{Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Stop()
	// Not lab.Namespace: its clean-up would run against the stopped lab.
	ns := "default"
	lab.RunPod(t, ns, "capture", lab.Nodes[0], nil)
	// exec starts cmdline through kubectl exec and returns once it runs
	// under kwok; cancel ends the stream as a killed client would.
	exec1 := func(cmdline ...string) (end func()) {
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, lab.KubectlPath(), append([]string{"--kubeconfig=" + lab.Kubeconfig, "exec", "-n", ns, "capture", "--"}, cmdline...)...)
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		want := "(" + strings.Join(cmdline, " ") + ")"
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(lab.ExecProcesses(), want) {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("%s not running under kwok after 30s; exec'd processes: %s", want, lab.ExecProcesses())
			}
			time.Sleep(50 * time.Millisecond)
		}
		return func() {
			cancel()
			_ = cmd.Wait()
		}
	}
	for _, cmdline := range [][]string{{"sleep", "600"}, {"timeout", "-s", "INT", "600", "sleep", "601"}} {
		end := exec1(cmdline...)
		end()
		begin := time.Now()
		for running := lab.ExecProcesses(); running != ""; running = lab.ExecProcesses() {
			if time.Since(begin) > 5*time.Second {
				t.Fatalf("5s after the stream of %q ended, still running: %s", cmdline, running)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("%q gone %s after its stream ended", cmdline, time.Since(begin).Round(time.Millisecond))
	}

	// A stream still open when the lab stops: Stop ends its command too.
	end := exec1("timeout", "-s", "INT", "600", "sleep", "602")
	defer end()
	begin := time.Now()
	lab.Stop()
	if left := lab.ExecProcesses(); left != "" {
		t.Fatalf("still running %s after Stop: %s", time.Since(begin).Round(time.Millisecond), left)
	}
	if took := time.Since(begin); took > 10*time.Second {
		t.Errorf("Stop took %s", took)
	}
	if _, leftover := lab.StopReport(); leftover != "" {
		t.Errorf("StopReport: leftover %q, want none", leftover)
	}
}
