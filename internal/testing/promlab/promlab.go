// Package promlab runs a real Prometheus server (Debian's prometheus
// package, hack/deps.sh installs it) for the fleet tests: scraping the
// ztunnel stand-ins, or serving blocks promtool made from OpenMetrics.
//
// Test-only: nothing outside _test.go files and internal/testing imports it.
package promlab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Target is one scrape target with the target labels the scrape
// configuration gives it (namespace and pod, as Istio's add-on does).
type Target struct {
	Addr   string
	Labels map[string]string
}

// Server is a running Prometheus.
type Server struct {
	URL string
	Dir string
	cmd *exec.Cmd
}

// Binary returns the prometheus binary, skipping the test (or failing it
// under CI=true) when it is not installed.
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed: run hack/deps.sh", name)
		}
		t.Skipf("%s not installed: run hack/deps.sh", name)
	}
	return p
}

// Options place a Prometheus where a cluster's would be.
type Options struct {
	// Listen is the host:port it serves on; empty picks a free loopback port.
	Listen string
	// NetNS is a named network namespace (under /run/netns) to run it in,
	// through `ip netns exec`: the lab's pod network, so that it serves on a
	// pod IP the API server's service proxy reaches and scrapes the
	// stand-ins on their own pod IPs. Needs root.
	NetNS string
}

// Start runs Prometheus scraping targets every interval, with its data in a
// temporary directory, and stops it when the test ends.
func Start(t testing.TB, targets []Target, interval time.Duration) *Server {
	t.Helper()
	return StartWith(t, targets, interval, Options{})
}

// StartWith is Start with a listen address and network namespace.
func StartWith(t testing.TB, targets []Target, interval time.Duration, o Options) *Server {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\nscrape_configs:\n- job_name: ztunnel\n  scrape_interval: %s\n  static_configs:\n", interval, interval, interval)
	for _, tg := range targets {
		fmt.Fprintf(&b, "  - targets: [%q]\n    labels:\n", tg.Addr)
		keys := make([]string, 0, len(tg.Labels))
		for k := range tg.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "      %s: %q\n", k, tg.Labels[k])
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return run(t, dir, filepath.Join(dir, "data"), o)
}

// StartWithBlocks runs Prometheus (no scraping) over the TSDB blocks that
// promtool made from an OpenMetrics file: every sample is in the past, so
// queries must use that time.
func StartWithBlocks(t testing.TB, openMetrics string) *Server {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	promtool := Binary(t, "promtool")
	out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", openMetrics, data).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool tsdb create-blocks-from openmetrics: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte("global:\n  scrape_interval: 1m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return run(t, dir, data, Options{})
}

func run(t testing.TB, dir, data string, o Options) *Server {
	t.Helper()
	bin := Binary(t, "prometheus")
	addr := o.Listen
	if addr == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = l.Addr().String()
		_ = l.Close()
	}
	args := []string{"--config.file=" + filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path=" + data,
		"--web.listen-address=" + addr, "--storage.tsdb.retention.time=10y", "--log.level=warn"}
	cmd := exec.Command(bin, args...)
	if o.NetNS != "" {
		ip, err := exec.LookPath("ip")
		if err != nil {
			t.Fatalf("prometheus in network namespace %s: %v", o.NetNS, err)
		}
		// ip execs prometheus in place: the pid, the signals and the
		// parent-death signal below are prometheus's own.
		cmd = exec.Command(ip, append([]string{"netns", "exec", o.NetNS, bin}, args...)...)
	}
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, and killed with this process if it dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	s := &Server{URL: "http://" + addr, Dir: dir, cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = logf.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/-/ready", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-ctx.Done():
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Fatalf("prometheus at %s not ready within 60s\n%s", s.URL, b)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
