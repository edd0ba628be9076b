package tui

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goldenpkg "github.com/kubectl-ambient/kubectl-ambient/internal/testing/golden"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

var t0 = time.Date(2026, 11, 20, 22, 0, 0, 0, time.UTC)

// sample builds a snapshot covering every scenario through the real rules.
func sample(extra int) *ztunnel.Snapshot {
	ago := func(d time.Duration) *time.Time { t := t0.Add(-d); return &t }
	pod := func(node string) *ztunnel.Pod {
		return &ztunnel.Pod{Namespace: "istio-system", Name: "ztunnel-" + node, Phase: "Running", Ready: true, Version: "1.24.1", Created: t0.Add(-50 * time.Hour)}
	}
	metrics := &ztunnel.Metrics{At: t0, ActiveProxies: 2}
	// read returns metrics read d before the snapshot, for the SEEN column.
	read := func(d time.Duration) *ztunnel.Metrics { m := *metrics; m.At = t0.Add(-d); return &m }
	ok := &ztunnel.Rates{Window: 5 * time.Second, OpenedPerSec: 10, ClosedPerSec: 9, BytesPerSec: 19000, Opened: 50}
	obs := []ztunnel.Observation{
		{Node: "node-healthy", Ztunnel: pod("node-healthy"), Probe: &ztunnel.Probe{Ready: true}, Metrics: read(4 * time.Second), Rates: ok, Pods: ztunnel.PodCounts{Enrolled: 4, Captured: 4}},
		{Node: "node-notready", Ztunnel: pod("node-notready"), Probe: &ztunnel.Probe{Status: 503}, Metrics: metrics, Rates: ok},
		{Node: "node-missing"},
		// Read 3 minutes ago: stale at the default 5 s interval.
		{Node: "node-certs", Ztunnel: pod("node-certs"), Probe: &ztunnel.Probe{Ready: true}, Metrics: read(3 * time.Minute), Rates: ok,
			Certificates: []ztunnel.Certificate{{Identity: "spiffe://cluster.local/ns/shop/sa/web", State: "Available", Expiration: func() *time.Time { t := t0.Add(3 * time.Hour); return &t }()}}},
		{Node: "node-failing", Ztunnel: pod("node-failing"), Probe: &ztunnel.Probe{Ready: true}, Metrics: metrics,
			Rates: &ztunnel.Rates{Window: 5 * time.Second, OpenedPerSec: 2, FailedPerSec: 8, Opened: 10, Failed: 40}},
		{Node: "node-restarting", Ztunnel: func() *ztunnel.Pod {
			p := pod("node-restarting")
			p.Restarts, p.LastRestartAt, p.LastRestartReason = 3, ago(2*time.Minute), "Error"
			return p
		}(), Probe: &ztunnel.Probe{Ready: true}, Metrics: read(14 * time.Second), Rates: &ztunnel.Rates{Window: 5 * time.Second, XDSTerminations: 2}},
		{Node: "node-pending", Ztunnel: pod("node-pending"), Probe: &ztunnel.Probe{Ready: true}, Rates: ok, PendingStuck: 45 * time.Second,
			Metrics: &ztunnel.Metrics{At: t0, ActiveProxies: 2, PendingProxies: 2}},
	}
	for i := 0; i < extra; i++ {
		name := fmt.Sprintf("node-%05d", i)
		obs = append(obs, ztunnel.Observation{Node: name, Ztunnel: pod(name), Probe: &ztunnel.Probe{Ready: true}, Metrics: metrics, Rates: ok})
	}
	nodes := make([]ztunnel.NodeHealth, 0, len(obs))
	for _, o := range obs {
		o.NodeReady, o.Schedulable = true, true
		o.Conditions = []ztunnel.NodeCondition{{Type: "Ready", Status: "True"}}
		nodes = append(nodes, ztunnel.Evaluate(o, t0, ztunnel.DefaultThresholds()))
	}
	s := ztunnel.NewSnapshot("lab", "1.24.1", t0, nodes)
	return &s
}

type fakeFetcher struct{ calls []string }

func (f *fakeFetcher) Detail(_ context.Context, node string) (ztunnel.NodeDetail, error) {
	f.calls = append(f.calls, "detail "+node)
	exp := t0.Add(3 * time.Hour)
	return ztunnel.NodeDetail{Node: node, Pod: "istio-system/ztunnel-" + node,
		Workloads: []ztunnel.Workload{
			{Name: "api-1", Namespace: "shop", ServiceAccount: "api", Addresses: []string{"10.244.1.6"}, Protocol: "HBONE", Status: "Healthy", ProxyState: "Pending"},
			{Name: "web-1", Namespace: "shop", ServiceAccount: "web", Addresses: []string{"10.244.1.5"}, Protocol: "HBONE", Status: "Healthy", ProxyState: "Up"},
		},
		Certificates: []ztunnel.Certificate{{Identity: "spiffe://cluster.local/ns/shop/sa/web", State: "Available", Expiration: &exp}},
		AccessLog: []ztunnel.AccessLog{{Time: t0.Add(-time.Second), Direction: "inbound", SrcNamespace: "default", SrcWorkload: "sleep",
			DstNamespace: "shop", DstWorkload: "web-1", Duration: "1ms", BytesSent: "231", BytesReceived: "87", MTLS: true}},
	}, nil
}

func (f *fakeFetcher) LogLines(_ context.Context, node string, _ int64) ([]string, error) {
	f.calls = append(f.calls, "logs "+node)
	return []string{"line one of " + node, "line two"}, nil
}

func key(s string) tea.KeyPressMsg {
	switch s {
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "pgdown":
		return tea.KeyPressMsg{Code: tea.KeyPgDown}
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	}
	r := []rune(s)[0]
	return tea.KeyPressMsg{Code: r, Text: s}
}

// ready returns a model sized 120x20 that has received the sample snapshot.
func ready(t testing.TB, extra int) (*Model, *fakeFetcher) {
	f := &fakeFetcher{}
	m := New(Options{Fetcher: f, Cluster: "lab"})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 20})
	m.Update(UpdateMsg{Snapshot: sample(extra)})
	return m, f
}

// run executes a Cmd and feeds its message back, as the Bubble Tea loop does.
func run(m *Model, cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	m.Update(cmd())
}

func screen(m *Model) string { return ansi.Strip(m.View().Content) }

func TestUpdateMessages(t *testing.T) {
	ch := make(chan ztunnel.Update, 1)
	m := New(Options{Updates: ch, Cluster: "lab"})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 20})
	if !strings.Contains(screen(m), "connecting to the cluster") {
		t.Fatalf("first frame should say connecting:\n%s", screen(m))
	}
	ch <- ztunnel.Update{Snapshot: sample(0)}
	cmd := m.Init()
	msg := cmd()
	_, next := m.Update(msg)
	if next == nil {
		t.Fatal("Update must re-arm the channel read after an update")
	}
	if got := screen(m); !strings.Contains(got, "node-missing") || strings.Contains(got, "connecting") {
		t.Fatalf("after a snapshot the table must show nodes:\n%s", got)
	}
	// The cluster goes away: the last data stays, with a clear error.
	m.Update(UpdateMsg{Err: errors.New("dial tcp 10.0.0.1:6443: connect: connection refused")})
	if got := screen(m); !strings.Contains(got, "cluster unreachable, retrying; showing data from 22:00:00") || !strings.Contains(got, "node-missing") {
		t.Fatalf("error frame:\n%s", got)
	}
	// It comes back.
	m.Update(UpdateMsg{Snapshot: sample(0)})
	if got := screen(m); strings.Contains(got, "unreachable") {
		t.Fatalf("error must clear on recovery:\n%s", got)
	}
	close(ch)
	m.Update(m.wait()())
	if !strings.Contains(screen(m), "watcher stopped") {
		t.Fatal("a closed source must be shown")
	}
}

func TestSickestFirst(t *testing.T) {
	m, _ := ready(t, 0)
	var got []string
	for _, r := range m.rows {
		got = append(got, r.State.Symbol()+r.Node)
	}
	want := "✗node-failing ✗node-missing ✗node-notready !node-certs !node-pending !node-restarting ✓node-healthy"
	if strings.Join(got, " ") != want {
		t.Fatalf("order %v\nwant  %s", got, want)
	}
}

func TestKeys(t *testing.T) {
	tests := []struct {
		name  string
		keys  []string
		check func(t *testing.T, m *Model, f *fakeFetcher, cmd tea.Cmd)
	}{
		{"down moves", []string{"down"}, func(t *testing.T, m *Model, _ *fakeFetcher, _ tea.Cmd) {
			if m.cursor != 1 || m.selected != "node-missing" {
				t.Fatalf("cursor %d selected %s", m.cursor, m.selected)
			}
		}},
		{"j k move", []string{"j", "j", "k"}, func(t *testing.T, m *Model, _ *fakeFetcher, _ tea.Cmd) {
			if m.cursor != 1 {
				t.Fatalf("cursor %d", m.cursor)
			}
		}},
		{"up stops at top", []string{"up", "k"}, func(t *testing.T, m *Model, _ *fakeFetcher, _ tea.Cmd) {
			if m.cursor != 0 {
				t.Fatalf("cursor %d", m.cursor)
			}
		}},
		{"G goes to the end", []string{"G"}, func(t *testing.T, m *Model, _ *fakeFetcher, _ tea.Cmd) {
			if m.selected != "node-healthy" {
				t.Fatalf("selected %s", m.selected)
			}
		}},
		{"filter", []string{"/", "c", "e", "r", "t", "enter"}, func(t *testing.T, m *Model, _ *fakeFetcher, _ tea.Cmd) {
			if m.filtering || len(m.rows) != 1 || m.rows[0].Node != "node-certs" {
				t.Fatalf("filtering=%v rows=%d", m.filtering, len(m.rows))
			}
			if !strings.Contains(screen(m), `filter: "cert" (1 of 7)`) {
				t.Fatalf("filter not shown:\n%s", screen(m))
			}
		}},
		{"filter matches reasons", []string{"/", "x", "d", "s"}, func(t *testing.T, m *Model, _ *fakeFetcher, _ tea.Cmd) {
			if len(m.rows) != 1 || m.rows[0].Node != "node-restarting" || !m.filtering {
				t.Fatalf("rows %d", len(m.rows))
			}
		}},
		{"filter finds pending proxies", []string{"/", "d", "r", "a", "i", "n"}, func(t *testing.T, m *Model, _ *fakeFetcher, _ tea.Cmd) {
			if len(m.rows) != 1 || m.rows[0].Node != "node-pending" || m.rows[0].State != ztunnel.StateWarning {
				t.Fatalf("rows %+v", m.rows)
			}
			if r := m.rows[0].Reasons[0]; r.Code != ztunnel.ReasonPendingProxies || r.Message != "2 pending proxies not draining for 45s" {
				t.Fatalf("reason %+v", r)
			}
			if !strings.Contains(screen(m), "! warning    node-pending  ready") || !strings.Contains(screen(m), "2 pending proxies not draining") {
				t.Fatalf("reason not shown:\n%s", screen(m))
			}
		}},
		{"filter backspace and esc", []string{"/", "z", "z", "backspace", "esc"}, func(t *testing.T, m *Model, _ *fakeFetcher, _ tea.Cmd) {
			if m.filter != "" || len(m.rows) != 7 || m.filtering {
				t.Fatalf("filter %q rows %d", m.filter, len(m.rows))
			}
		}},
		{"q while filtering is text", []string{"/", "q"}, func(t *testing.T, m *Model, _ *fakeFetcher, cmd tea.Cmd) {
			if m.filter != "q" || cmd != nil {
				t.Fatalf("filter %q", m.filter)
			}
		}},
		{"sort cycles", []string{"s"}, func(t *testing.T, m *Model, _ *fakeFetcher, _ tea.Cmd) {
			if ztunnel.SortOrders[m.sortIdx] != ztunnel.SortName || m.rows[0].Node != "node-certs" {
				t.Fatalf("sort %s first %s", ztunnel.SortOrders[m.sortIdx], m.rows[0].Node)
			}
			if m.selected != "node-failing" || m.rows[m.cursor].Node != "node-failing" {
				t.Fatalf("cursor must stay on the same node, on %s", m.rows[m.cursor].Node)
			}
		}},
		{"sort by restarts", []string{"s", "s"}, func(t *testing.T, m *Model, _ *fakeFetcher, _ tea.Cmd) {
			if m.rows[0].Node != "node-restarting" {
				t.Fatalf("first %s", m.rows[0].Node)
			}
		}},
		{"help and back", []string{"?"}, func(t *testing.T, m *Model, _ *fakeFetcher, _ tea.Cmd) {
			if m.mode != modeHelp || !strings.Contains(screen(m), "filter by node, state or reason") {
				t.Fatal("help not shown")
			}
			m.Update(key("esc"))
			if m.mode != modeTable {
				t.Fatal("esc must leave help")
			}
		}},
		{"enter opens detail", []string{"enter"}, func(t *testing.T, m *Model, f *fakeFetcher, cmd tea.Cmd) {
			if m.mode != modeDetail || !m.loading || cmd == nil {
				t.Fatalf("mode %v loading %v", m.mode, m.loading)
			}
			if !strings.Contains(screen(m), "reading config_dump") {
				t.Fatal("loading not shown")
			}
			run(m, cmd)
			if len(f.calls) != 1 || f.calls[0] != "detail node-failing" {
				t.Fatalf("calls %v", f.calls)
			}
			m.Update(tea.WindowSizeMsg{Width: 120, Height: 30})
			got := screen(m)
			for _, want := range []string{"WORKLOADS (2)", "! proxy Pending", "proxy Up", "CERTIFICATES (1)", "expires in 3h", "RECENT ACCESS LOG (1)", "mTLS", "CONNECT", "ConnectionFailures:"} {
				if want == "CONNECT" {
					continue
				}
				if !strings.Contains(got, want) {
					t.Fatalf("detail lacks %q:\n%s", want, got)
				}
			}
			m.Update(key("esc"))
			if m.mode != modeTable || m.detail != nil {
				t.Fatal("esc must go back to the table")
			}
		}},
		{"l opens logs", []string{"j", "l"}, func(t *testing.T, m *Model, f *fakeFetcher, cmd tea.Cmd) {
			run(m, cmd)
			if m.mode != modeLogs || f.calls[0] != "logs node-missing" || !strings.Contains(screen(m), "line one of node-missing") {
				t.Fatalf("logs: %v\n%s", f.calls, screen(m))
			}
		}},
		{"stale detail reply is ignored", []string{"enter"}, func(t *testing.T, m *Model, _ *fakeFetcher, _ tea.Cmd) {
			m.Update(detailMsg{node: "another", detail: ztunnel.NodeDetail{Node: "another"}})
			if m.detail != nil {
				t.Fatal("a reply for another node must not show")
			}
		}},
		{"q quits", []string{"q"}, func(t *testing.T, _ *Model, _ *fakeFetcher, cmd tea.Cmd) {
			if cmd == nil {
				t.Fatal("no command")
			}
			if _, ok := cmd().(tea.QuitMsg); !ok {
				t.Fatal("q must quit")
			}
		}},
		{"ctrl+c quits while filtering", []string{"/", "ctrl+c"}, func(t *testing.T, _ *Model, _ *fakeFetcher, cmd tea.Cmd) {
			if cmd == nil {
				t.Fatal("no command")
			}
			if _, ok := cmd().(tea.QuitMsg); !ok {
				t.Fatal("ctrl+c must quit")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, f := ready(t, 0)
			var cmd tea.Cmd
			for _, k := range tt.keys {
				_, cmd = m.Update(key(k))
			}
			tt.check(t, m, f, cmd)
		})
	}
}

func TestResizeKeepsCursorVisible(t *testing.T) {
	m, _ := ready(t, 100)
	m.Update(key("G"))
	m.Update(tea.WindowSizeMsg{Width: 60, Height: 10})
	got := screen(m)
	lines := strings.Split(got, "\n")
	if len(lines) != 10 {
		t.Fatalf("frame has %d lines, want 10", len(lines))
	}
	for _, l := range lines {
		if w := ansi.StringWidth(l); w > 60 {
			t.Fatalf("line wider than the terminal (%d): %q", w, l)
		}
	}
	if !strings.Contains(got, m.selected) {
		t.Fatalf("selected %s not visible after resize:\n%s", m.selected, got)
	}
	// Narrow terminals drop the expendable columns but keep state, node and reason.
	if strings.Contains(lines[2], "VERSION") || !strings.Contains(lines[2], "STATE") || !strings.Contains(lines[2], "REASON") {
		t.Fatalf("columns at 60: %q", lines[2])
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenpkg.AssertString(t, filepath.Join("testdata", name+".golden"), got)
}

func TestGoldenFrames(t *testing.T) {
	m, _ := ready(t, 0)
	golden(t, "table_120x20", screen(m))
	m.Update(tea.WindowSizeMsg{Width: 72, Height: 12})
	golden(t, "table_72x12", screen(m))
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 30})
	_, cmd := m.Update(key("enter"))
	run(m, cmd)
	golden(t, "detail_120x30", screen(m))
	m.Update(key("esc"))
	m.Update(key("?"))
	golden(t, "help_120x20", screen(m))
	// The node whose pending proxies do not drain, with its pending pod.
	m.Update(key("esc"))
	for _, k := range []string{"/", "n", "o", "d", "e", "-", "p", "e", "n", "d", "enter"} {
		m.Update(key(k))
	}
	_, cmd = m.Update(key("enter"))
	run(m, cmd)
	golden(t, "detail_pending_120x30", screen(m))
}

func TestColourIsNeverAlone(t *testing.T) {
	m, _ := ready(t, 0)
	raw := m.View().Content
	if !strings.Contains(raw, "\x1b[") {
		t.Fatal("expected colours in the raw frame")
	}
	plain := ansi.Strip(raw)
	for _, want := range []string{"✗ unhealthy", "! warning", "✓ healthy"} {
		if !strings.Contains(plain, want) {
			t.Fatalf("without colour the frame must still say %q", want)
		}
	}
}

func BenchmarkView5000(b *testing.B) {
	m, _ := ready(b, 5000)
	m.Update(tea.WindowSizeMsg{Width: 200, Height: 50})
	m.Update(key("G"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = m.View()
	}
}

func BenchmarkUpdateKey5000(b *testing.B) {
	m, _ := ready(b, 5000)
	m.Update(tea.WindowSizeMsg{Width: 200, Height: 50})
	keys := []tea.KeyPressMsg{key("j"), key("k"), key("s")}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Update(keys[i%len(keys)])
		_ = m.View()
	}
}

func BenchmarkUpdateSnapshot5000(b *testing.B) {
	m, _ := ready(b, 5000)
	s := sample(5000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Update(UpdateMsg{Snapshot: s})
	}
}

func TestWriteTable(t *testing.T) {
	var b strings.Builder
	if err := WriteTable(&b, sample(0)); err != nil {
		t.Fatal(err)
	}
	golden(t, "status_table", b.String())
}
