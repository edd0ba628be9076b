package collector

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	sim "github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/ztunnelsim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/tui"
)

// TestLabScale measures the watcher and the TUI against a lab with many
// fake nodes, each with a ztunnel pod. It is slow and runs only when
// KAMB_SCALE_NODES is set (5000 for the figures in docs/benchmarks.md):
//
//	KAMB_SCALE_NODES=5000 go test ./pkg/diag/ztunnel/collector -run TestLabScale -v -timeout 30m
//
// KAMB_SCALE_SERVED (default 200) ztunnels get a stand-in behind them; the
// others have no listener, so their scrapes fail fast, which still costs the
// API server a proxy request each.
func TestLabScale(t *testing.T) {
	want, _ := strconv.Atoi(os.Getenv("KAMB_SCALE_NODES"))
	if want == 0 {
		t.Skip("set KAMB_SCALE_NODES (e.g. 5000) to run the scale measurement")
	}
	served := 200
	if v, err := strconv.Atoi(os.Getenv("KAMB_SCALE_SERVED")); err == nil {
		served = v
	}
	window := time.Minute
	if v, err := time.ParseDuration(os.Getenv("KAMB_SCALE_WINDOW")); err == nil {
		window = v
	}
	lab := kubelab.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	if missing := want - len(lab.Nodes); missing > 0 {
		begin := time.Now()
		if _, err := lab.AddNodes(ctx, missing); err != nil {
			t.Fatal(err)
		}
		t.Logf("added %d nodes in %s", missing, time.Since(begin).Round(time.Second))
	}
	nodes, err := lab.Clients.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns := lab.Namespace(t, nil)
	begin := time.Now()
	var created atomic.Int64
	work := make(chan string)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for node := range work {
				_, err := lab.Clients.Kube.CoreV1().Pods(ns).Create(ctx, sim.ZtunnelPod(ns, node, "1.24.1"), metav1.CreateOptions{})
				if err == nil || apierrors.IsAlreadyExists(err) {
					created.Add(1)
				}
			}
		}()
	}
	for _, n := range nodes.Items {
		work <- n.Name
	}
	close(work)
	wg.Wait()
	t.Logf("created %d ztunnel pods in %s", created.Load(), time.Since(begin).Round(time.Second))
	// Wait until they run, then serve a subset.
	var pods *corev1.PodList
	for {
		pods, err = lab.Clients.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.PodIP != "" {
				running++
			}
		}
		if running == len(pods.Items) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d ztunnel pods running", running, len(pods.Items))
		}
		time.Sleep(2 * time.Second)
	}
	for i, p := range pods.Items {
		if i >= served {
			break
		}
		st := sim.New(p.Spec.NodeName, sim.Healthy)
		l1, err1 := lab.ListenPod(p.Status.PodIP, 15020)
		l2, err2 := lab.ListenPod(p.Status.PodIP, 15021)
		if err1 != nil || err2 != nil {
			t.Fatalf("listen: %v %v", err1, err2)
		}
		g := st.Serve(l1, l2)
		t.Cleanup(g.Close)
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	// Protobuf, as the plugin's tui and status commands use.
	pcfg := rest.CopyConfig(lab.Config)
	pcfg.ContentType = "application/vnd.kubernetes.protobuf"
	pcfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	clients, ct := countingClients(t, pcfg)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	w := New(clients.Kube, Config{Cluster: "lab", Namespace: ns, CertInterval: -1})
	m := tui.New(tui.Options{Updates: w.Updates(), Context: wctx, Cluster: "lab"})
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 50})
	start := time.Now()
	go func() { _ = w.Run(wctx) }()
	var firstScreen time.Duration
	for firstScreen == 0 {
		select {
		case u := <-w.Updates():
			m.Update(tuiUpdate(u))
			if u.Snapshot != nil && len(u.Snapshot.Nodes) >= want {
				frame := m.View().Content
				if strings.Contains(frame, "lab-node-") {
					firstScreen = time.Since(start)
				}
			}
		case <-time.After(60 * time.Second):
			t.Fatal("no first screen within 60s")
		}
	}
	t.Logf("first screen with %d nodes after %s", want, firstScreen.Round(time.Millisecond))
	atStart := ct.snapshot()
	refresh := time.After(window)
	updates := 0
loop:
	for {
		select {
		case u := <-w.Updates():
			m.Update(tuiUpdate(u))
			_ = m.View()
			updates++
		case <-refresh:
			break loop
		}
	}
	after := ct.snapshot()
	runtime.GC()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	rss := readRSS()
	perMin := func(k string) float64 { return float64(after[k]-atStart[k]) / window.Minutes() }
	t.Logf("during %s of refresh: %.0f lists/min, %.0f watches/min, %.0f proxy requests/min (all requests: %v)",
		window, perMin("GET list nodes")+perMin("GET list pods")+perMin("GET list namespaces"),
		perMin("GET watch nodes")+perMin("GET watch pods")+perMin("GET watch namespaces"), perMin("GET proxy"), after)
	t.Logf("heap in use %.0f MB (before the watcher %.0f MB), process RSS %.0f MB, %d updates rendered",
		float64(mem.HeapInuse)/1e6, float64(before.HeapInuse)/1e6, float64(rss)/1e6, updates)
	for _, res := range []string{"nodes", "pods", "namespaces"} {
		if after["GET list "+res] > 1 || after["GET watch "+res] > 2 {
			t.Errorf("%s: %d lists, %d watches", res, after["GET list "+res], after["GET watch "+res])
		}
	}
	if firstScreen > 2*time.Second {
		t.Logf("first screen took %s, over the 2 s target", firstScreen)
	}
	if mem.HeapInuse > 200e6 {
		t.Errorf("heap %d MB over 200 MB", mem.HeapInuse/1e6)
	}
	wcancel()
	measureBinary(t, lab, ns, want)
	fmt.Fprintf(os.Stderr, "SCALE nodes=%d first_screen=%s heap_mb=%.0f rss_mb=%.0f proxy_per_min=%.0f lists_total=%d\n",
		want, firstScreen.Round(time.Millisecond), float64(mem.HeapInuse)/1e6, float64(rss)/1e6, perMin("GET proxy"),
		after["GET list nodes"]+after["GET list pods"]+after["GET list namespaces"])
}

// tuiUpdate hands a watcher update to the TUI the way its channel Cmd would.
func tuiUpdate(u ztunnel.Update) tea.Msg { return tui.UpdateMsg(u) }

func readRSS() int64 { return statusKB(os.Getpid(), "VmRSS:") * 1024 }

// statusKB reads one kB field (VmRSS:, VmHWM:) of /proc/<pid>/status.
func statusKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field) {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb
			}
		}
	}
	return 0
}

// measureBinary runs the real plugin against the big lab: the TUI inside
// tmux (time to the first screen with nodes, peak RSS after a minute of
// refresh) and `status --once` (peak RSS, wall time).
func measureBinary(t *testing.T, lab *kubelab.Lab, ns string, nodes int) {
	bin := kubelab.BuildBinary(t, kubelab.PluginPackage)
	args := []string{"--kubeconfig", lab.Kubeconfig, "--ztunnel-namespace", ns}
	// The peak RSS comes from /usr/bin/time, or else from polling the
	// child's VmHWM, never from this process's rusage of the child: Go
	// starts children with vfork and exec, and Linux carries the parent's
	// RSS high-water mark over the exec into the child's ru_maxrss, which
	// then reports this test process's peak (about 270 MB), not the binary's.
	statusArgs := append(append([]string{}, args...), "status", "--once", "-o", "json", "--window", "5s")
	const rssTag = "KAMB_MAXRSS_KB "
	st := exec.Command(bin, statusArgs...)
	timed := false
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		st = exec.Command("/usr/bin/time", append([]string{"-f", rssTag + "%M", bin}, statusArgs...)...)
		timed = true
	}
	st.Stdout = io.Discard
	var gc strings.Builder
	st.Stderr = &gc
	st.Env = append(os.Environ(), "GODEBUG=gctrace=1")
	begin := time.Now()
	if err := st.Start(); err != nil {
		t.Fatal(err)
	}
	var polled atomic.Int64 // kB, from polling when /usr/bin/time is missing
	exited := make(chan struct{})
	if !timed {
		go func() {
			for {
				if kb := statusKB(st.Process.Pid, "VmHWM:"); kb > polled.Load() {
					polled.Store(kb)
				}
				select {
				case <-exited:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
	}
	_ = st.Wait() // exit 1: most ztunnels have no stand-in
	close(exited)
	wall := time.Since(begin)
	// "A->B->C MB": heap at GC start, at GC end, live; the largest live heap
	// tells the model's size apart from garbage waiting for the collector.
	collections, maxLive, maxStart := 0, 0, 0
	peakKB := polled.Load()
	for _, l := range strings.Split(gc.String(), "\n") {
		if kb, ok := strings.CutPrefix(l, rssTag); ok {
			peakKB, _ = strconv.ParseInt(strings.TrimSpace(kb), 10, 64)
		}
		i := strings.Index(l, " MB, ")
		if !strings.HasPrefix(l, "gc ") || i < 0 {
			continue // client-go's log lines share stderr
		}
		var a, b, c int
		f := strings.Fields(l[:i])
		if _, err := fmt.Sscanf(f[len(f)-1], "%d->%d->%d", &a, &b, &c); err == nil {
			collections++
			maxLive, maxStart = max(maxLive, c), max(maxStart, a)
		}
	}
	t.Logf("binary: status --once gc trace: %d collections, largest heap at GC start %d MB, largest live heap %d MB", collections, maxStart, maxLive)
	how := "/usr/bin/time"
	if !timed {
		how = "VmHWM polled every 20 ms"
	}
	t.Logf("binary: status --once over %d nodes took %s, peak RSS %d MB (%s)", nodes, wall.Round(time.Millisecond), peakKB/1024, how)
	if _, err := exec.LookPath("tmux"); err != nil {
		return
	}
	sock := fmt.Sprintf("kamb-scale-%d", os.Getpid())
	tm := func(a ...string) (string, error) {
		out, err := exec.Command("tmux", append([]string{"-L", sock}, a...)...).CombinedOutput()
		return string(out), err
	}
	defer func() { _, _ = tm("kill-server") }()
	begin = time.Now()
	if out, err := tm("new-session", "-d", "-s", "s", "-x", "160", "-y", "50", strings.Join(append(append([]string{bin}, args...), "tui"), " ")); err != nil {
		t.Fatalf("tmux: %v %s", err, out)
	}
	var first time.Duration
	for time.Since(begin) < 30*time.Second {
		screen, _ := tm("capture-pane", "-p", "-t", "s")
		if strings.Contains(screen, "lab-node-") && strings.Contains(screen, fmt.Sprintf("%d nodes", nodes)) {
			first = time.Since(begin)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	pid, _ := tm("list-panes", "-t", "s", "-F", "#{pane_pid}")
	// A key press to the next frame, read from the real terminal.
	before, _ := tm("capture-pane", "-p", "-t", "s")
	keyAt := time.Now()
	_, _ = tm("send-keys", "-t", "s", "s")
	var keyFrame time.Duration
	for time.Since(keyAt) < 5*time.Second {
		screen, _ := tm("capture-pane", "-p", "-t", "s")
		if screen != before && strings.Contains(screen, "sort: name") {
			keyFrame = time.Since(keyAt)
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(60 * time.Second)
	status, _ := os.ReadFile("/proc/" + strings.TrimSpace(pid) + "/status")
	var hwm, rss string
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			hwm = strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
		}
		if strings.HasPrefix(l, "VmRSS:") {
			rss = strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	t.Logf("binary: tui first screen with %d nodes after %s; key 's' to a changed frame (incl. tmux polling) %s; after 60 s refresh RSS %s, peak %s",
		nodes, first.Round(time.Millisecond), keyFrame.Round(time.Millisecond), rss, hwm)
}
