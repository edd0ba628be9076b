package collector

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"k8s.io/client-go/rest"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/promlab"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/tui"
)

// TestPromScale measures `status --once --prometheus` at scale: a lab with
// KAMB_PROM_SCALE_NODES nodes and a ztunnel pod each, and a real Prometheus
// loaded (promtool tsdb create-blocks-from openmetrics) with the last two
// minutes of every ztunnel's series. The figures are in docs/benchmarks.md:
//
//	KAMB_PROM_SCALE_NODES=5000 go test ./pkg/diag/ztunnel/collector -run TestPromScale -v -count=1 -timeout 20m
func TestPromScale(t *testing.T) {
	want, _ := strconv.Atoi(os.Getenv("KAMB_PROM_SCALE_NODES"))
	if want == 0 {
		t.Skip("set KAMB_PROM_SCALE_NODES (e.g. 5000) to run the Prometheus scale measurement")
	}
	lab := kubelab.Get(t)
	bin := kubelab.BuildBinary(t, kubelab.PluginPackage)
	ctx, cancel := context.WithTimeout(context.Background(), 18*time.Minute)
	defer cancel()
	begin := time.Now()
	ns, nodes, _ := labFleet(ctx, t, lab, want, "1.31.2")
	t.Logf("fleet of %d nodes ready after %s", len(nodes.Items), time.Since(begin).Round(time.Second))

	// Two minutes of series for every pod, one sample every 15 s, ending now.
	om := filepath.Join(t.TempDir(), "ztunnels.om")
	f, err := os.Create(om)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	end := time.Now().Truncate(time.Second)
	type fam struct {
		name, typ string
		per       float64 // increase per second (counters) or the gauge value
	}
	fams := []fam{
		{"istio_tcp_connections_opened", "counter", 10}, {"istio_tcp_connections_closed", "counter", 9},
		{"istio_tcp_connections_failed", "counter", 0}, {"istio_tcp_sent_bytes", "counter", 15000},
		{"istio_tcp_received_bytes", "counter", 4000}, {"istio_xds_connection_terminations", "counter", 0},
		{"workload_manager_active_proxy_count", "gauge", 4}, {"workload_manager_pending_proxy_count", "gauge", 0},
	}
	for _, fm := range fams {
		fmt.Fprintf(bw, "# TYPE %s %s\n", fm.name, fm.typ)
		sample := fm.name
		if fm.typ == "counter" {
			sample += "_total"
		}
		for _, n := range nodes.Items {
			for s := 8; s >= 0; s-- {
				ts := end.Add(-time.Duration(s) * 15 * time.Second)
				v := fm.per
				if fm.typ == "counter" {
					v = fm.per * float64(120-15*s)
				}
				fmt.Fprintf(bw, "%s{namespace=%q,pod=%q} %g %d\n", sample, ns, "ztunnel-"+n.Name, v, ts.Unix())
			}
		}
	}
	fmt.Fprintf(bw, "# TYPE istio_build gauge\n")
	for _, n := range nodes.Items {
		for s := 8; s >= 0; s-- {
			fmt.Fprintf(bw, "istio_build{component=\"ztunnel\",namespace=%q,pod=%q,tag=\"1.31.2\"} 1 %d\n", ns, "ztunnel-"+n.Name, end.Add(-time.Duration(s)*15*time.Second).Unix())
		}
	}
	fmt.Fprintf(bw, "# EOF\n")
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	begin = time.Now()
	prom := promlab.StartWithBlocks(t, om)
	t.Logf("prometheus loaded %d ztunnels' series in %s", len(nodes.Items), time.Since(begin).Round(time.Second))

	// In process, with the API requests counted.
	clients, counter := countingClients(t, lab.Config)
	src, err := NewPrometheus(prom.URL, "", nil, ns)
	if err != nil {
		t.Fatal(err)
	}
	src.Window = 2 * time.Minute
	begin = time.Now()
	if _, err := src.Fetch(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	t.Logf("one prometheus query for %d ztunnels: %s", len(nodes.Items), time.Since(begin).Round(time.Millisecond))
	src.Queries = 0
	if dir := os.Getenv("KAMB_PROM_SCALE_PROFILE"); dir != "" {
		runtime.MemProfileRate = 64 << 10
		defer writeProfile(t, filepath.Join(dir, "collect.heap"), "allocs")
	}
	begin = time.Now()
	snap, err := Collect(ctx, clients.Kube, Config{Cluster: "lab", Namespace: ns, CertInterval: -1, Metrics: src}, 0)
	if err != nil {
		t.Fatal(err)
	}
	withMetrics := 0
	for _, n := range snap.Nodes {
		if n.Metrics != nil && n.Metrics.Build == "1.31.2" && n.Rates != nil {
			withMetrics++
		}
	}
	t.Logf("in process: %d nodes, %d with metrics and rates from prometheus, in %s; API requests %v; prometheus queries %d",
		len(snap.Nodes), withMetrics, time.Since(begin).Round(time.Millisecond), counter.snapshot(), src.Queries)
	if withMetrics < len(nodes.Items)*9/10 {
		t.Errorf("only %d of %d nodes got metrics from prometheus", withMetrics, len(nodes.Items))
	}
	tuiFromPrometheus(ctx, t, lab, ns, src)

	// The binary, timed by /usr/bin/time, with and without Prometheus;
	// KAMB_PROM_SCALE_ENV adds runs with other environments (e.g.
	// "GOGC=50;GOMEMLIMIT=64MiB") to compare the garbage collector's settings.
	withProm := []string{"--prometheus", prom.URL, "--prometheus-window", "2m"}
	runs := []struct {
		env  string
		args []string
	}{{"", withProm}, {"", withProm}, {"", []string{"--window", "0", "--cert-interval", "0"}}}
	if v := os.Getenv("KAMB_PROM_SCALE_ENV"); v != "" {
		for _, env := range strings.Split(v, ";") {
			runs = append(runs, struct {
				env  string
				args []string
			}{env, withProm})
		}
	}
	for _, r := range runs {
		timeBinary(ctx, t, bin, r.env, append([]string{"--kubeconfig", lab.Kubeconfig, "status", "--once", "-o", "json", "--ztunnel-namespace", ns}, r.args...))
	}
}

func timeBinary(ctx context.Context, t *testing.T, bin, env string, args []string) {
	evictFromPageCache(t, bin)
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, "/usr/bin/time", append([]string{"-v", bin}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.Env = append(os.Environ(), "GODEBUG=gctrace=1")
	if env != "" {
		cmd.Env = append(cmd.Env, env)
	}
	begin := time.Now()
	err := cmd.Run()
	wall := time.Since(begin)
	rss := regexp.MustCompile(`Maximum resident set size \(kbytes\): (\d+)`).FindStringSubmatch(errOut.String())
	if rss == nil {
		t.Fatalf("no RSS from /usr/bin/time: %v\n%s", err, errOut.String())
	}
	gcs, live, atStart := gcTrace(errOut.String())
	t.Logf("binary %v %s: exit %v, wall %s, peak RSS %s kB, %d bytes of JSON; %d collections, largest heap at GC start %d MB, largest live heap %d MB",
		args[3:], env, err, wall.Round(time.Millisecond), rss[1], out.Len(), gcs, atStart, live)
}

// writeProfile writes a runtime/pprof profile (KAMB_PROM_SCALE_PROFILE).
func writeProfile(t *testing.T, path, name string) {
	f, err := os.Create(path)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		t.Error(err)
	}
	t.Logf("%s profile in %s", name, path)
}

// tuiFromPrometheus runs the watcher and the TUI's model as `tui
// --prometheus URL` wires them (budget 50/s, client QPS 55, the model's
// visible rows as the focus, a 160x50 terminal) over the 5,000-node lab for
// four intervals, and counts what it asks: Prometheus at most once a
// refresh, and the API server's pod proxy only for the rows on screen and
// the nodes the metrics mark suspect, under the budget.
func tuiFromPrometheus(ctx context.Context, t *testing.T, lab *kubelab.Lab, ns string, src *Prometheus) {
	const budget, interval, rounds = 50.0, 5 * time.Second, 4
	cfg := rest.CopyConfig(lab.Config)
	cfg.QPS, cfg.Burst = budget+5, int(budget)+10
	clients, counter := countingClients(t, cfg)
	src.Queries = 0
	w := New(clients.Kube, Config{Cluster: "lab", Namespace: ns, Interval: interval, Metrics: src, MaxRPS: budget})
	m := tui.New(tui.Options{Updates: w.Updates(), Context: ctx, Cluster: "lab", Focus: w, Interval: interval})
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 50})
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(wctx) }()
	begin := time.Now()
	var first time.Duration
	for end := begin.Add(rounds * interval); time.Now().Before(end); {
		select {
		case u := <-w.Updates():
			m.Update(tui.UpdateMsg(u))
			if first == 0 && u.Snapshot != nil && len(u.Snapshot.Nodes) >= 5000 && strings.Contains(m.View().Content, "lab-node-") {
				first = time.Since(begin)
			}
		case <-time.After(time.Second):
		}
	}
	elapsed := time.Since(begin)
	cancel()
	<-done
	got := counter.snapshot()
	proxyRate := float64(got["GET proxy"]) / elapsed.Seconds()
	t.Logf("tui from prometheus over %s (%d intervals): first screen after %s, %d prometheus queries, %d pod-proxy requests (%.1f/s), all API requests %v",
		elapsed.Round(time.Millisecond), rounds, first.Round(time.Millisecond), src.Queries, got["GET proxy"], proxyRate, got)
	if src.Queries > rounds+1 {
		t.Errorf("%d prometheus queries in %d intervals: more than one a refresh", src.Queries, rounds)
	}
	// The budget, plus the bucket's burst (budget tokens) and the requests
	// that may be in flight when the count ends, spread over the run.
	if limit := budget + (budget+DefaultConcurrency)/elapsed.Seconds(); proxyRate > limit {
		t.Errorf("%.1f pod-proxy requests/s, over the budget's %.1f", proxyRate, limit)
	}
	if first == 0 {
		t.Error("the TUI never drew the fleet")
	}
}
