package kubelab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// shared is the one lab of this test binary, started by the first Get.
var shared struct {
	mu      sync.Mutex
	main    bool
	opts    Options
	lab     *Lab
	err     error
	started bool
}

// Main runs the package's tests with one lab for the whole test binary and
// exits. Call it from TestMain. The lab starts on the first Get, so unit
// tests in the same package pay nothing; it is stopped after the tests, and
// on SIGINT or SIGTERM. If the binary dies otherwise (a test panics), the
// kernel kills the lab's processes and the next lab start removes leftovers.
func Main(m *testing.M, opts Options) {
	shared.mu.Lock()
	shared.main, shared.opts = true, opts
	shared.mu.Unlock()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		// A lab still starting holds the lock; exiting without Stop is
		// safe then too: the kernel kills the components and the
		// watchdog removes the rest.
		deadline := time.Now().Add(2 * time.Second)
		for !shared.mu.TryLock() {
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "kubelab: %v: exiting while the lab starts\n", s)
				os.Exit(130)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if shared.lab != nil {
			shared.lab.Stop()
		}
		shared.mu.Unlock()
		fmt.Fprintf(os.Stderr, "kubelab: %v: lab stopped\n", s)
		os.Exit(130)
	}()
	code := run(m)
	signal.Stop(sigs)
	os.Exit(code)
}

func run(m *testing.M) int {
	defer removeBuilds()
	code := m.Run()
	if err := stopShared(); err != nil {
		fmt.Fprintf(os.Stderr, "kubelab: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// stopShared stops the test binary's lab. It fails when a process that
// `kubectl exec` started in the lab outlived the stop (not even SIGKILL
// ended it), and reports (without failing) the ones Stop had to end.
func stopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.lab == nil {
		return nil
	}
	shared.lab.Stop()
	reaped, left := shared.lab.StopReport()
	if reaped > 0 {
		fmt.Fprintf(os.Stderr, "kubelab: stop ended %d process(es) that kubectl exec had started and nobody ended\n", reaped)
	}
	if left != "" {
		return fmt.Errorf("processes started by kubectl exec in the lab outlived it: %s", left)
	}
	return nil
}

// Get returns the test binary's lab, starting it on first use. Without the
// lab binaries it skips the test, or fails it when CI=true (CI must never
// skip lab tests silently).
func Get(t testing.TB) *Lab {
	t.Helper()
	if testing.Short() {
		// `make unit`: pure-logic tests only, no lab, no root.
		t.Skip("lab test skipped under -short")
	}
	if err := Built(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v", err)
		}
		t.Skip("lab binaries not built: run hack/lab/build.sh")
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.main {
		t.Fatal("kubelab.Get needs kubelab.Main(m, kubelab.Options{}) in the package's TestMain")
	}
	if !shared.started {
		shared.started = true
		begin := time.Now()
		shared.lab, shared.err = Start(context.Background(), shared.opts)
		if shared.err == nil {
			t.Logf("lab up in %s (%d nodes, %s, pod CIDR %s, netns %q; %s)", time.Since(begin).Round(time.Millisecond),
				len(shared.lab.Nodes), shared.lab.Server, shared.lab.PodCIDR, shared.lab.NetNS, shared.lab.StartTimings())
		}
	}
	if shared.err != nil {
		t.Fatalf("lab: %v", shared.err)
	}
	return shared.lab
}

var nameUnsafe = regexp.MustCompile(`[^a-z0-9-]+`)

// Namespace creates a namespace with a unique name derived from the test's
// name and the given labels, and deletes it when the test ends.
func (l *Lab) Namespace(t testing.TB, labels map[string]string) string {
	t.Helper()
	base := nameUnsafe.ReplaceAllString(strings.ToLower(t.Name()), "-")
	base = strings.Trim(base, "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	if base == "" {
		base = "test"
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: base + "-", Labels: labels}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	created, err := l.Clients.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create test namespace %s*: %v", base, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = l.Clients.Kube.CoreV1().Namespaces().Delete(ctx, created.Name, metav1.DeleteOptions{})
	})
	return created.Name
}

// Kubectl runs the lab's own kubectl with the admin kubeconfig and returns
// its standard output; it fails the test (showing stderr) on error.
func (l *Lab) Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := l.KubectlE(context.Background(), args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// KubectlE is Kubectl returning the error (with stderr) instead of failing.
func (l *Lab) KubectlE(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.KubectlPath(), append([]string{"--kubeconfig=" + l.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "KUBECONFIG="+l.Kubeconfig)
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// KubectlPath is the lab's kubectl binary.
func (l *Lab) KubectlPath() string { return l.BinDir + "/kubectl" }

// ListenPod opens a TCP listener on podIP:port inside the lab's network
// namespace, where every pod IP is local. The API server's pod proxy
// (/api/v1/namespaces/NS/pods/NAME:PORT/proxy/) then reaches it, and so does
// a plain dial of podIP:port from this process. It fails with
// ErrNoPodNetwork when the lab has no network namespace (not root).
func (l *Lab) ListenPod(podIP string, port int) (net.Listener, error) {
	ip := net.ParseIP(podIP)
	if ip == nil {
		return nil, fmt.Errorf("listen on pod ip %q: not an ip address", podIP)
	}
	if l.net == nil || l.net.NetNS == "" {
		return nil, fmt.Errorf("listen on pod ip %s: %w (%s)", podIP, ErrNoPodNetwork, l.noNetReason())
	}
	if !l.net.CIDR.Contains(ip) {
		return nil, fmt.Errorf("listen on pod ip %s: outside the lab's pod CIDR %s", podIP, l.PodCIDR)
	}
	var ln net.Listener
	err := inNetNS(l.net.NetNS, func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(podIP, fmt.Sprint(port)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on pod ip %s port %d in %s: %w", podIP, port, l.net.NetNS, err)
	}
	return ln, nil
}

func (l *Lab) noNetReason() string {
	if l.net != nil && l.net.reason != "" {
		return l.net.reason
	}
	return "needs root and the ip command"
}

// RunInPodNetwork runs fn on a thread inside the lab's network namespace, for
// sockets that must live there (dialers bound to a pod IP, packet captures).
func (l *Lab) RunInPodNetwork(fn func() error) error {
	if l.net == nil || l.net.NetNS == "" {
		return fmt.Errorf("run in pod network: %w (%s)", ErrNoPodNetwork, l.noNetReason())
	}
	return inNetNS(l.net.NetNS, fn)
}

// PodLogPath is the file kwok serves as every fake pod's container log, in
// the CRI log format ("<RFC3339Nano> stdout F <line>").
func (l *Lab) PodLogPath() string { return l.logsFile }

// WritePodLog appends lines to the fake pods' log (see PodLogPath), each
// stamped now and written as complete stdout lines.
func (l *Lab) WritePodLog(lines ...string) error {
	return appendCRILines(l.logsFile, lines)
}

// RunPod creates a pod with one container ("app") pinned to node (any node
// when empty) and waits until kwok reports it Running with a pod IP.
func (l *Lab) RunPod(t testing.TB, namespace, name, node string, labels map[string]string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/lab/app:1"}},
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := l.Clients.Kube.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s/%s: %v", namespace, name, err)
	}
	got, err := l.WaitPodRunning(ctx, namespace, name)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// WaitPodRunning waits until the pod is Running with a pod IP.
func (l *Lab) WaitPodRunning(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	for {
		p, err := l.Clients.Kube.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
			return p, nil
		}
		select {
		case <-ctx.Done():
			phase := "unknown"
			if p != nil {
				phase = string(p.Status.Phase)
			}
			return nil, fmt.Errorf("pod %s/%s not Running with an ip (phase %s): %w", namespace, name, phase, errors.Join(ctx.Err(), err))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ListenInNetNS opens a TCP listener on addr (host:port) inside the named
// network namespace, for processes other than the one that started the lab
// (the demo's simulators find the namespace in the lab's State).
func ListenInNetNS(netns, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNetNS(netns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in network namespace %s: %w", addr, netns, err)
	}
	return ln, nil
}
