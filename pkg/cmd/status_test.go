package cmd

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

func TestStatusFlagErrorsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"status", "--once", "-o", "xml"},
		{"status", "--once", "--interval", "10ms"},
		{"status", "--once", "--ztunnel-selector", "app"},
		{"status", "--once", "--admin-access", "ssh"},
		{"tui", "--concurrency", "0"},
		{"status", "extra-arg"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			streams, _, _, _ := genericiooptions.NewTestIOStreams()
			root := NewRootCmd(streams)
			root.SetArgs(args)
			err := root.Execute()
			if ExitCode(err) != ExitUsage {
				t.Fatalf("exit %d (%v), want %d", ExitCode(err), err, ExitUsage)
			}
			if msg := err.Error(); msg != strings.ToLower(msg[:1])+msg[1:] || strings.HasSuffix(msg, ".") {
				t.Fatalf("error style: %q", msg)
			}
		})
	}
}

func TestPrintSnapshotYAMLRoundTrips(t *testing.T) {
	s := ztunnel.NewSnapshot("lab", "1.24.1", time.Date(2026, 11, 20, 22, 0, 0, 0, time.UTC), []ztunnel.NodeHealth{
		{Node: "a", State: ztunnel.StateUnhealthy, Reasons: []ztunnel.Reason{{Code: ztunnel.ReasonNoZtunnel, Severity: ztunnel.StateUnhealthy, Message: "no ztunnel on node"}}},
		{Node: "b", State: ztunnel.StateHealthy},
	})
	var b bytes.Buffer
	if err := PrintSnapshot(&b, OutputYAML, &s); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "state: unhealthy") || !strings.Contains(b.String(), "code: NoZtunnel") {
		t.Fatalf("yaml:\n%s", b.String())
	}
	var back ztunnel.Snapshot
	if err := yaml.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Nodes[0].State != ztunnel.StateUnhealthy || back.Totals.Unhealthy != 1 || !back.Unhealthy() {
		t.Fatalf("round trip %+v", back)
	}
}

// The streamed JSON and YAML of a snapshot must be byte for byte what
// encoding it in one piece gives, for scripts that compare outputs.
func TestPrintSnapshotStreamsTheSameBytes(t *testing.T) {
	at := time.Date(2026, 11, 20, 22, 0, 0, 0, time.UTC)
	exp := at.Add(3 * time.Hour)
	nodes := []ztunnel.NodeHealth{
		{Node: "a", State: ztunnel.StateUnhealthy, Reasons: []ztunnel.Reason{{Code: ztunnel.ReasonNoZtunnel, Severity: ztunnel.StateUnhealthy, Message: "no ztunnel on node <&>"},
			{Code: "Multi", Severity: ztunnel.StateWarning, Message: "first line\n\n  indented: third, with a colon\n- a dash"}}},
		{Node: "b", State: ztunnel.StateWarning, NodeReady: true, Schedulable: true, Conditions: []ztunnel.NodeCondition{{Type: "Ready", Status: "True"}},
			Ztunnel: &ztunnel.Pod{Namespace: "istio-system", Name: "ztunnel-b", Phase: "Running", Ready: true, Created: at},
			Metrics: &ztunnel.Metrics{At: at, ActiveProxies: 2, PendingProxies: 2}, Rates: &ztunnel.Rates{Window: 5 * time.Second, OpenedPerSec: 1.5},
			Certificates: []ztunnel.Certificate{{Identity: "spiffe://cluster.local/ns/shop/sa/web", State: "Available", Expiration: &exp}}},
		{Node: "c", State: ztunnel.StateHealthy},
	}
	for _, tt := range []struct {
		name string
		snap ztunnel.Snapshot
	}{
		{"nodes", ztunnel.NewSnapshot("lab", "1.24.1", at, nodes)},
		{"one node, no version", ztunnel.NewSnapshot("lab", "", at, nodes[:1])},
		{"no nodes", ztunnel.NewSnapshot("lab", "1.24.1", at, []ztunnel.NodeHealth{})},
		{"nil nodes", ztunnel.NewSnapshot("lab", "1.24.1", at, nil)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, format := range []string{OutputJSON, OutputYAML} {
				var whole, streamed bytes.Buffer
				if err := PrintStructured(&whole, format, &tt.snap); err != nil {
					t.Fatal(err)
				}
				if err := PrintSnapshot(&streamed, format, &tt.snap); err != nil {
					t.Fatal(err)
				}
				if whole.String() != streamed.String() {
					t.Fatalf("streamed %s differs\n--- streamed\n%s\n--- whole\n%s", format, streamed.String(), whole.String())
				}
			}
		})
	}
}

// BenchmarkPrintSnapshot5000 writes a 5,000-node snapshot (every node with
// a reason, a ztunnel pod, metrics, rates and a certificate) as JSON and YAML.
//
//	go test ./pkg/cmd -run '^$' -bench PrintSnapshot5000 -benchmem
func BenchmarkPrintSnapshot5000(b *testing.B) {
	at := time.Date(2026, 11, 20, 22, 0, 0, 0, time.UTC)
	exp := at.Add(3 * time.Hour)
	nodes := make([]ztunnel.NodeHealth, 5000)
	for i := range nodes {
		nodes[i] = ztunnel.NodeHealth{Node: fmt.Sprintf("node-%d", i), State: ztunnel.StateUnhealthy, NodeReady: true, Schedulable: true,
			Conditions: []ztunnel.NodeCondition{{Type: "Ready", Status: "True"}},
			Reasons:    []ztunnel.Reason{{Code: ztunnel.ReasonZtunnelNotReady, Severity: ztunnel.StateUnhealthy, Message: "ztunnel NotReady (/healthz/ready unreachable: connection refused)"}},
			Ztunnel:    &ztunnel.Pod{Namespace: "istio-system", Name: fmt.Sprintf("ztunnel-%d", i), Phase: "Running", Ready: true, Created: at},
			Metrics:    &ztunnel.Metrics{At: at, ActiveProxies: 2}, Rates: &ztunnel.Rates{Window: 5 * time.Second, OpenedPerSec: 1.5},
			Certificates: []ztunnel.Certificate{{Identity: "spiffe://cluster.local/ns/shop/sa/web", State: "Available", Expiration: &exp}}}
	}
	s := ztunnel.NewSnapshot("lab", "1.24.1", at, nodes)
	for _, format := range []string{OutputJSON, OutputYAML} {
		b.Run(format, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := PrintSnapshot(io.Discard, format, &s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
