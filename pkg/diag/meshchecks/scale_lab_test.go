package meshchecks

import (
	"context"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// countingTransport counts requests per verb and path (query stripped).
type countingTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *countingTransport) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := 0
	for _, v := range c.n {
		t += v
	}
	return t
}

// TestLabScale measures `check` on a large lab. It runs only when
// CHECK_SCALE_NODES is set (the figure in docs/benchmarks.md used 5000):
//
//	CHECK_SCALE_NODES=5000 go test ./pkg/diag/meshchecks -run TestLabScale -v -timeout 20m
func TestLabScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CHECK_SCALE_NODES"))
	if n <= 0 {
		t.Skip("set CHECK_SCALE_NODES=5000 to run the scale test")
	}
	lab := getLab(t)
	ctx := context.Background()
	if more := n - len(lab.Nodes); more > 0 {
		start := time.Now()
		if _, err := lab.AddNodes(ctx, more); err != nil {
			t.Fatal(err)
		}
		t.Logf("added %d nodes in %s", more, time.Since(start).Round(time.Millisecond))
	}
	start := time.Now()
	istioNS, appNS := installAmbient(t, lab, labInstall{})
	t.Logf("ambient objects ready on %d nodes in %s", len(lab.Nodes), time.Since(start).Round(time.Millisecond))

	counter := &countingTransport{n: map[string]int{}}
	cfg := ListConfig(lab.Config)
	cfg.QPS, cfg.Burst = kube.DefaultQPS, kube.DefaultBurst
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter }
	clients, err := kube.NewClients(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, narrow := range []string{"", appNS} {
		counter.n = map[string]int{}
		c := NewCluster(clients.Kube, clients.Dynamic, istioNS, narrow)
		cpu0 := cpuTime()
		start = time.Now()
		res, sum := run(t, Health(c, HealthOptions{}))
		took := time.Since(start)
		cpu := cpuTime() - cpu0
		load, _ := os.ReadFile("/proc/loadavg")
		var paths []string
		for p, k := range counter.n {
			paths = append(paths, p+" x"+strconv.Itoa(k))
		}
		sort.Strings(paths)
		t.Logf("check (namespace %q) on %d nodes: %s wall, %s client CPU, load average %s, %d requests:\n  %s",
			narrow, len(lab.Nodes), took.Round(time.Millisecond), cpu.Round(time.Millisecond), strings.Fields(string(load) + " ?")[0], counter.total(), strings.Join(paths, "\n  "))
		if r := res["ztunnel-nodes"]; r.Failed() || !strings.Contains(r.Message, "ready on "+strconv.Itoa(len(lab.Nodes))) {
			t.Errorf("ztunnel-nodes: %s %q", r.Status, r.Message)
		}
		if narrow == appNS && (sum.Errors > 0 || sum.Warnings > 0) {
			t.Errorf("%d errors, %d warnings on a healthy install", sum.Errors, sum.Warnings)
		}
		if took > 5*time.Second {
			t.Errorf("check took %s on %d nodes, want under 5s", took, len(lab.Nodes))
		}
		// Paged lists of nodes and of each DaemonSet's pods grow with the
		// cluster (500 per page); nothing else may.
		if limit := 40 + 3*len(lab.Nodes)/PageSize; counter.total() > limit {
			t.Errorf("%d requests, want at most %d", counter.total(), limit)
		}
	}
}

// cpuTime is this process's user+system CPU time (the client side of a
// check: decoding, evaluation); the API server's share is not included.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
