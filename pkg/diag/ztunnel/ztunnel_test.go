package ztunnel

import (
	"os"
	"strings"
	"testing"
	"time"
)

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseMetrics(t *testing.T) {
	at := time.Date(2026, 11, 20, 22, 0, 0, 0, time.UTC)
	m, err := ParseMetrics(mustRead(t, "metrics.txt"), at)
	if err != nil {
		t.Fatal(err)
	}
	want := Metrics{At: at, ActiveProxies: 5, PendingProxies: 1, ConnOpened: 42, ConnClosed: 39, ConnFailed: 3,
		BytesSent: 1000, BytesReceived: 24, XDSTerminations: 3, Build: "1.24.1"}
	if *m != want {
		t.Fatalf("got %+v\nwant %+v", *m, want)
	}
}

func TestParseMetricsErrors(t *testing.T) {
	for _, tt := range []struct{ name, body, want string }{
		{"bad value", "istio_tcp_connections_opened_total{a=\"b\"} x\n", "line 1"},
		{"unterminated labels", "ok 1\nistio_build{tag=\"1\n", "line 2"},
		{"no value", "istio_tcp_connections_opened_total\n", "no value"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMetrics([]byte(tt.body), time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestComputeRates(t *testing.T) {
	t0 := time.Unix(1000, 0)
	prev := &Metrics{At: t0, ConnOpened: 100, ConnFailed: 10, BytesSent: 1000, BytesReceived: 500, XDSTerminations: 1}
	cur := &Metrics{At: t0.Add(5 * time.Second), ConnOpened: 150, ConnFailed: 20, BytesSent: 2000, BytesReceived: 1000, XDSTerminations: 3}
	r := ComputeRates(prev, cur)
	if r.OpenedPerSec != 10 || r.FailedPerSec != 2 || r.BytesPerSec != 300 || r.XDSTerminations != 2 {
		t.Fatalf("rates %+v", r)
	}
	// A counter reset (ztunnel restarted) counts the new value as the change.
	reset := &Metrics{At: t0.Add(10 * time.Second), ConnOpened: 5}
	if r := ComputeRates(cur, reset); r.Opened != 5 {
		t.Fatalf("after reset opened=%v, want 5", r.Opened)
	}
	if ComputeRates(nil, cur) != nil || ComputeRates(cur, prev) != nil {
		t.Fatal("rates without an earlier scrape must be nil")
	}
}

func TestParseConfigDumpBothShapes(t *testing.T) {
	for _, file := range []string{"configdump_array.json", "configdump_object.json", "configdump_store.json"} {
		t.Run(file, func(t *testing.T) {
			d, err := ParseConfigDump(mustRead(t, file))
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Workloads) != 2 || d.Workloads[0].Name != "db-0" || d.Workloads[1].Name != "web-1" {
				t.Fatalf("workloads %+v", d.Workloads)
			}
			if got := d.Workloads[1].Addresses; len(got) != 1 || got[0] != "10.244.1.5" {
				t.Fatalf("web-1 addresses %v", got)
			}
			if d.Workloads[0].Protocol != "TCP" || d.Workloads[1].ServiceAccount != "web" {
				t.Fatalf("fields lost: %+v", d.Workloads)
			}
		})
	}
	d, _ := ParseConfigDump(mustRead(t, "configdump_array.json"))
	if len(d.Certificates) != 2 {
		t.Fatalf("certificates %+v", d.Certificates)
	}
	web := d.Certificates[1]
	if web.State != "Available" || web.Expiration == nil || !web.Expiration.Equal(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)) || web.Serial != "0x1a2b" {
		t.Fatalf("web cert %+v", web)
	}
	if _, err := ParseConfigDump([]byte(`{"workloads": 3}`)); err == nil {
		t.Fatal("a number for workloads must be an error")
	}
}

// TestParseConfigDumpWorkloadStore: ztunnel of Istio 1.19-1.21 wrote its
// workload store, {"by_addr": ..., "by_uid": ...}; each workload is read
// once, with the address from by_addr when its own list is empty.
func TestParseConfigDumpWorkloadStore(t *testing.T) {
	body := mustRead(t, "configdump_store.json")
	d, err := ParseConfigDump(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Workloads) != 2 || d.Services != 2 {
		t.Fatalf("workloads %+v, services %d; want 2 and 2", d.Workloads, d.Services)
	}
	if got := d.Workloads[0].Addresses; d.Workloads[0].Name != "db-0" || len(got) != 1 || got[0] != "10.244.1.6" {
		t.Fatalf("db-0 %+v: want its address from by_addr", d.Workloads[0])
	}
	id, err := ParseIdentityDump(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(id.Workloads) != 2 || id.Workloads[1].UID != "Kubernetes//Pod/shop/web-1" || id.Workloads[1].TrustDomain != "cluster.local" {
		t.Fatalf("identity workloads %+v", id.Workloads)
	}
	// by_addr alone, with a list where two host-network pods share an address.
	onlyAddr := `{"workloads": {"by_addr": {"net/10.0.0.9": [{"uid": "a", "name": "a", "namespace": "x"}, {"uid": "b", "name": "b", "namespace": "x"}]}}}`
	d, err = ParseConfigDump([]byte(onlyAddr))
	if err != nil || len(d.Workloads) != 2 || d.Workloads[0].Addresses[0] != "10.0.0.9" {
		t.Fatalf("by_addr only: %+v, %v", d, err)
	}
}

// TestParseConfigDumpUnknownShape: a shape the parser does not know is an
// error naming what it found, never zero workloads.
func TestParseConfigDumpUnknownShape(t *testing.T) {
	for _, body := range []string{
		`{"workloads": {"by_node": {"node-1": {"uid": "x"}}}}`,
		`{"workloads": {"by_addr": {"net/10.0.0.1": {"protocol": "TCP"}}}}`,
	} {
		d, err := ParseConfigDump([]byte(body))
		if err == nil {
			t.Errorf("%s: parsed to %+v, want an error", body, d)
			continue
		}
		if !strings.Contains(err.Error(), "by_") || !strings.Contains(err.Error(), "shape") {
			t.Errorf("%s: error %q does not name the shape", body, err)
		}
	}
}

func TestParseConfigDumpProxyStates(t *testing.T) {
	// workloadState is keyed by pod UID (not the workload uid); pods are
	// matched by namespace and name, and a pending pod without a workload
	// entry is still listed.
	body := `{"workloads": [
	    {"uid": "cluster1//v1/Pod/shop/web-1", "name": "web-1", "namespace": "shop", "workloadIps": ["10.244.1.5"]},
	    {"uid": "cluster1//v1/Pod/shop/api-1", "name": "api-1", "namespace": "shop", "workloadIps": ["10.244.1.7"]},
	    {"uid": "cluster1//v1/Pod/other/db-0", "name": "db-0", "namespace": "other", "node": "node-2"}],
	  "workloadState": {
	    "6f1c": {"state": "Up", "info": {"name": "web-1", "namespace": "shop", "serviceAccount": "web"}, "connections": {"inbound": [], "outbound": []}},
	    "9a2d": {"state": "Pending", "info": {"name": "api-1", "namespace": "shop", "serviceAccount": "api"}},
	    "b3e4": {"state": "Pending", "info": {"name": "job-7", "namespace": "batch", "serviceAccount": "job"}}}}`
	d, err := ParseConfigDump([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range d.Workloads {
		got = append(got, w.Namespace+"/"+w.Name+"="+w.ProxyState)
	}
	if want := "batch/job-7=Pending other/db-0= shop/api-1=Pending shop/web-1=Up"; strings.Join(got, " ") != want {
		t.Fatalf("proxy states %v, want %s", got, want)
	}
}

func TestParseAccessLog(t *testing.T) {
	entries := ParseAccessLog(mustRead(t, "ztunnel.log"))
	if len(entries) != 2 {
		t.Fatalf("got %d entries, want 2: %+v", len(entries), entries)
	}
	e := entries[0]
	if e.SrcIdentity != "spiffe://cluster.local/ns/default/sa/sleep" || e.DstHBONEAddr != "10.244.1.5:80" ||
		e.Direction != "inbound" || e.BytesSent != "231" || e.Duration != "1ms" || !e.MTLS {
		t.Fatalf("entry %+v", e)
	}
	if !e.Time.Equal(time.Date(2026, 11, 20, 22, 0, 1, 123456000, time.UTC)) {
		t.Fatalf("time %v", e.Time)
	}
	if entries[1].MTLS || entries[1].Error != "connection refused" {
		t.Fatalf("plaintext entry %+v", entries[1])
	}
}

func TestEvaluate(t *testing.T) {
	now := time.Date(2026, 11, 20, 22, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	in := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	running := func() *Pod {
		return &Pod{Name: "ztunnel-a", Phase: "Running", Ready: true, Created: now.Add(-48 * time.Hour)}
	}
	base := func() Observation {
		return Observation{Node: "n1", NodeReady: true, Schedulable: true, Ztunnel: running(),
			Probe: &Probe{Ready: true, Status: 200}, Metrics: &Metrics{At: now}, Rates: &Rates{Window: 5 * time.Second}}
	}
	tests := []struct {
		name      string
		mutate    func(o *Observation)
		wantState State
		wantCode  string
		wantMsg   string
	}{
		{"healthy", func(o *Observation) {}, StateHealthy, "", "ok"},
		{"no ztunnel", func(o *Observation) { o.Ztunnel, o.Probe, o.Metrics, o.Rates = nil, nil, nil, nil }, StateUnhealthy, ReasonNoZtunnel, "no ztunnel on node"},
		{"no ztunnel is first even on a NotReady node", func(o *Observation) { o.Ztunnel = nil; o.NodeReady = false }, StateUnhealthy, ReasonNoZtunnel, "no ztunnel on node"},
		{"cordoned without ztunnel", func(o *Observation) { o.Ztunnel = nil; o.Schedulable = false }, StateHealthy, ReasonNotScheduled, "node cordoned; no ztunnel"},
		{"probe not ready", func(o *Observation) { o.Probe = &Probe{Status: 503} }, StateUnhealthy, ReasonZtunnelNotReady, "ztunnel NotReady (/healthz/ready returned 503)"},
		{"pod not ready", func(o *Observation) { o.Ztunnel.Ready = false }, StateUnhealthy, ReasonZtunnelNotReady, "ztunnel NotReady (pod not ready)"},
		{"pod pending", func(o *Observation) { o.Ztunnel.Phase = "Pending"; o.Ztunnel.Ready = false }, StateUnhealthy, ReasonZtunnelNotRun, "ztunnel pod Pending"},
		{"crash loop", func(o *Observation) {
			o.Ztunnel.Waiting = "CrashLoopBackOff"
			o.Ztunnel.Restarts = 7
			o.Ztunnel.LastRestartAt = ago(time.Minute)
		}, StateUnhealthy, ReasonCrashLoop, "ztunnel in CrashLoopBackOff (7 restarts)"},
		{"recent restart", func(o *Observation) {
			o.Ztunnel.Restarts = 3
			o.Ztunnel.LastRestartAt = ago(5 * time.Minute)
			o.Ztunnel.LastRestartReason = "OOMKilled"
		}, StateWarning, ReasonRecentRestart, "restarted 3 times, last 5m ago, OOMKilled"},
		{"old restart is fine", func(o *Observation) { o.Ztunnel.Restarts = 3; o.Ztunnel.LastRestartAt = ago(2 * time.Hour) }, StateHealthy, "", "ok"},
		{"pending proxies stuck", func(o *Observation) { o.Metrics.PendingProxies = 4; o.PendingStuck = time.Minute }, StateWarning, ReasonPendingProxies, "4 pending proxies not draining for 1m"},
		{"pending proxies fresh", func(o *Observation) { o.Metrics.PendingProxies = 4; o.PendingStuck = time.Second }, StateHealthy, "", "ok"},
		{"cert expiring", func(o *Observation) {
			o.Certificates = []Certificate{{Identity: "spiffe://cluster.local/ns/shop/sa/web", State: "Available", Expiration: in(3 * time.Hour)}}
		}, StateWarning, ReasonCertExpiring, "certificate shop/web expires in 3h"},
		{"cert expired", func(o *Observation) {
			o.Certificates = []Certificate{{Identity: "spiffe://cluster.local/ns/shop/sa/web", State: "Available", Expiration: ago(time.Hour)}}
		}, StateUnhealthy, ReasonCertExpiring, "certificate shop/web expired 1h ago"},
		{"cert unavailable", func(o *Observation) {
			o.Certificates = []Certificate{{Identity: "spiffe://cluster.local/ns/shop/sa/db", State: "Unavailable: signing failed"}}
		}, StateUnhealthy, ReasonCertUnavailable, "certificate shop/db Unavailable: signing failed"},
		{"24h cert renewed on time", func(o *Observation) {
			o.Certificates = []Certificate{{Identity: "spiffe://x/ns/a/sa/b", State: "Available", ValidFrom: ago(time.Hour), Expiration: in(23 * time.Hour)}}
		}, StateHealthy, "", "ok"},
		{"24h cert past half-life", func(o *Observation) {
			o.Certificates = []Certificate{{Identity: "spiffe://x/ns/a/sa/b", State: "Available", ValidFrom: ago(21 * time.Hour), Expiration: in(3 * time.Hour)}}
		}, StateWarning, ReasonCertExpiring, "certificate a/b expires in 3h"},
		{"90d cert within a day", func(o *Observation) {
			o.Certificates = []Certificate{{Identity: "spiffe://x/ns/a/sa/b", State: "Available", ValidFrom: ago(89 * 24 * time.Hour), Expiration: in(20 * time.Hour)}}
		}, StateWarning, ReasonCertExpiring, "certificate a/b expires in 20h"},
		{"cert fine", func(o *Observation) {
			o.Certificates = []Certificate{{Identity: "spiffe://x/ns/a/sa/b", State: "Available", Expiration: in(30 * time.Hour)}}
		}, StateHealthy, "", "ok"},
		{"some failures", func(o *Observation) { o.Rates.Opened, o.Rates.Failed, o.Rates.FailedPerSec = 90, 10, 2 }, StateWarning, ReasonConnFailures, "2.0 connection failures/s (10% of attempts)"},
		{"mostly failing", func(o *Observation) { o.Rates.Opened, o.Rates.Failed, o.Rates.FailedPerSec = 10, 40, 8 }, StateUnhealthy, ReasonConnFailures, "8.0 connection failures/s (80% of attempts)"},
		{"xds disconnects", func(o *Observation) { o.Rates.XDSTerminations = 2 }, StateWarning, ReasonXDSDisconnects, "2 xDS disconnects in 5s"},
		{"scrape failed", func(o *Observation) { o.Metrics, o.Rates, o.ScrapeError = nil, nil, "timeout" }, StateUnknown, ReasonMetricsUnreached, "metrics unavailable: timeout"},
		{"node not ready", func(o *Observation) {
			o.NodeReady = false
			o.Conditions = []NodeCondition{{Type: "Ready", Status: "False", Reason: "KubeletNotReady"}}
		}, StateUnhealthy, ReasonNodeNotReady, "node NotReady (KubeletNotReady)"},
		{"worst reason first", func(o *Observation) {
			o.Rates.XDSTerminations = 1
			o.Probe = &Probe{Error: "connection refused"}
		}, StateUnhealthy, ReasonZtunnelNotReady, "ztunnel NotReady (/healthz/ready connection refused)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base()
			tt.mutate(&o)
			h := Evaluate(o, now, DefaultThresholds())
			if h.State != tt.wantState {
				t.Errorf("state %v, want %v (reasons %+v)", h.State, tt.wantState, h.Reasons)
			}
			if got := h.Summary(); got != tt.wantMsg {
				t.Errorf("summary %q, want %q", got, tt.wantMsg)
			}
			if tt.wantCode != "" && (len(h.Reasons) == 0 || h.Reasons[0].Code != tt.wantCode) {
				t.Errorf("first reason %+v, want code %s", h.Reasons, tt.wantCode)
			}
		})
	}
}

func TestPendingTracker(t *testing.T) {
	var p PendingTracker
	t0 := time.Unix(0, 0)
	steps := []struct {
		pending float64
		at      int
		want    time.Duration
	}{
		{3, 0, 0}, {3, 5, 5 * time.Second}, {4, 10, 10 * time.Second}, // stuck and growing
		{2, 15, 0},               // draining resets
		{2, 20, 5 * time.Second}, // stuck again
		{0, 25, 0}, {1, 30, 0},   // drained, then new
	}
	for i, s := range steps {
		if got := p.Observe("n", s.pending, t0.Add(time.Duration(s.at)*time.Second)); got != s.want {
			t.Fatalf("step %d: stuck %v, want %v", i, got, s.want)
		}
	}
}

func TestSnapshotSortsSickestFirst(t *testing.T) {
	nodes := []NodeHealth{
		{Node: "b", State: StateHealthy, Pods: PodCounts{Captured: 2}},
		{Node: "c", State: StateUnhealthy, Ztunnel: &Pod{}},
		{Node: "a", State: StateWarning, Ztunnel: &Pod{Restarts: 4}},
		{Node: "d", State: StateUnhealthy},
	}
	s := NewSnapshot("lab", "1.24.1", time.Now(), nodes)
	var order []string
	for _, n := range s.Nodes {
		order = append(order, n.Node)
	}
	if got := strings.Join(order, ","); got != "c,d,a,b" {
		t.Fatalf("order %s, want c,d,a,b", got)
	}
	if s.Totals != (Totals{Nodes: 4, Healthy: 1, Warning: 1, Unhealthy: 2, Ztunnels: 2, Captured: 2}) || !s.Unhealthy() {
		t.Fatalf("totals %+v", s.Totals)
	}
	SortNodes(s.Nodes, SortRestarts)
	if s.Nodes[0].Node != "a" {
		t.Fatalf("restart sort first %s", s.Nodes[0].Node)
	}
	SortNodes(s.Nodes, SortName)
	if s.Nodes[0].Node != "a" || s.Nodes[3].Node != "d" {
		t.Fatalf("name sort %v", s.Nodes)
	}
}

func TestParseAccessLogLineQuoting(t *testing.T) {
	line := `2026-11-20T10:00:00.000000Z info access connection complete src.addr=10.0.0.1:5000 ` +
		`src.workload="client x" error="conn \"reset\"" lone dst.addr=10.0.0.2:15008 dst.identity=`
	e, ok := ParseAccessLogLine(line)
	if !ok {
		t.Fatal("line not recognised as an access log entry")
	}
	if e.SrcAddr != "10.0.0.1:5000" || e.SrcWorkload != "client x" || e.Error != `conn "reset"` ||
		e.DstAddr != "10.0.0.2:15008" || e.DstIdentity != "" || e.MTLS {
		t.Fatalf("entry = %+v", e)
	}
	if _, ok := ParseAccessLogLine("info xds connected"); ok {
		t.Error("a non-access line was accepted")
	}
}
