package mtls

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/fixtures"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
)

// fakeCluster stands in for pkg/diag/mtls/capture: a fixed pod list and a
// canned live capture.
type fakeCluster struct {
	pods    PodMap
	podsErr error
	live    *LiveResult
	liveErr error
	// got is the LiveConfig Capture was called with.
	got   LiveConfig
	calls int
}

func (f *fakeCluster) PodMap(context.Context) (PodMap, error) {
	if f.podsErr != nil {
		return nil, f.podsErr
	}
	m := PodMap{}
	for k, v := range f.pods {
		m[k] = v
	}
	return m, nil
}

func (f *fakeCluster) Capture(_ context.Context, cfg LiveConfig, progress io.Writer) (*LiveResult, error) {
	f.got = cfg
	f.calls++
	_, _ = io.WriteString(progress, "capturing\n")
	return f.live, f.liveErr
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVerifyLiveMergesEvidence(t *testing.T) {
	dump := parseDump(t, "istio-system/ztunnel-1", dumpJSON(map[string][2]string{
		idX: {"Available", "2026-11-21T20:00:00Z"}, idY: {"Available", "2026-11-21T20:00:00Z"},
	}))
	fc := &fakeCluster{
		// The cluster has a stale entry for the client: the mapping file wins.
		pods: PodMap{ipA: {Namespace: "c", Pod: "stale"}},
		live: &LiveResult{
			Flows: []pcap.Flow{flow(ipA, ipB, 15008, pcap.ClassHBONE, 500, "h2"), flow(ipN, ipB, 8080, pcap.ClassPlaintext, 90)},
			Stats: pcap.Stats{Packets: 20, Flows: 2},
			// The captured namespace's own pods.
			Pods:  PodMap{ipB: {Namespace: "b", Pod: "server", Enrolled: true}},
			Files: []string{"/tmp/live.pcap"},
			Dumps: []ZtunnelDump{dump},
		},
	}
	podsFile := writeFile(t, "pods.yaml", "10.0.0.1: {namespace: a, pod: client, enrolled: true}\n")
	var progress bytes.Buffer
	live := LiveConfig{Namespace: "b", To: "server", Duration: 5e9, Image: "img"}
	rep, err := Verify(context.Background(), Deps{Pods: fc, Capturer: fc, Progress: &progress, Now: func() time.Time { return testNow }},
		Config{PodsFile: podsFile, Live: live})
	if err != nil {
		t.Fatal(err)
	}
	if fc.calls != 1 || fc.got != live {
		t.Errorf("Capture called %d times with %+v, want once with %+v", fc.calls, fc.got, live)
	}
	hb := findRow(rep, "a/client", "b/server", pcap.HBONEPort)
	if hb == nil || hb.Verdict != Pass || hb.ClientIdentity != idX || hb.ServerIdentity != idY {
		t.Fatalf("HBONE row = %+v", hb)
	}
	// n/plain is known only to ztunnel's config_dump.
	if r := findRow(rep, "n/plain", "b/server", 8080); r == nil || r.Verdict != Info {
		t.Errorf("row of the workload only config_dump knows = %+v", r)
	}
	if !rep.Passed || len(rep.Certificates) != 2 || rep.Stats.Packets != 20 {
		t.Errorf("report: passed %v, certificates %+v, stats %+v", rep.Passed, rep.Certificates, rep.Stats)
	}
	if got := progress.String(); got != "capturing\ncapture kept in /tmp/live.pcap\n" {
		t.Errorf("progress = %q", got)
	}
}

func TestVerifyLiveErrors(t *testing.T) {
	boom := errors.New("create capture pod: forbidden")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		deps Deps
		want string
		is   error
	}{
		{"capture fails", context.Background(), Deps{Capturer: &fakeCluster{liveErr: boom}}, "create capture pod: forbidden", boom},
		{"interrupted", ctx, Deps{Capturer: &fakeCluster{liveErr: boom}}, "live capture interrupted: context canceled; its capture pods were deleted", ErrInterrupted},
		{"no cluster", context.Background(), Deps{}, "live capture: no cluster", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(tt.ctx, tt.deps, Config{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.is)
			}
		})
	}
	// A config_dump file that cannot be read fails before the capture starts.
	fc := &fakeCluster{live: &LiveResult{}}
	if _, err := Verify(context.Background(), Deps{Capturer: fc}, Config{DumpFiles: []string{filepath.Join(t.TempDir(), "nope.json")}}); err == nil || fc.calls != 0 {
		t.Errorf("err = %v after %d captures, want an error before any", err, fc.calls)
	}
}

func TestVerifyOfflinePodSources(t *testing.T) {
	capture := fixtures.Path("pcap", "good-afpacket.pcap")
	body, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	client := netip.MustParseAddr("10.99.163.1")
	server := netip.MustParseAddr("10.99.163.2")
	cluster := &fakeCluster{pods: PodMap{client: {Namespace: "a", Pod: "client", Enrolled: true}, server: {Namespace: "b", Pod: "server", Enrolled: true}}}
	tests := []struct {
		name   string
		deps   Deps
		cfg    Config
		want   string // error, or the HBONE row's client name
		noMesh bool
	}{
		{"mapping file", Deps{}, Config{Pcap: capture, PodsFile: fixtures.Path("pcap", "pods.yaml")}, "a/client", false},
		{"cluster pods", Deps{Pods: cluster}, Config{Pcap: capture}, "a/client", false},
		{"stdin", Deps{Pods: cluster, Stdin: bytes.NewReader(body)}, Config{Pcap: "-"}, "a/client", false},
		{"config_dump without a cluster", Deps{}, Config{Pcap: capture, DumpFiles: []string{fixtures.Path("pcap", "ztunnel-config_dump.json")}}, "a/client", false},
		{"no cluster", Deps{}, Config{Pcap: capture}, "error: no cluster to list pods from", false},
		{"cluster fails", Deps{Pods: &fakeCluster{podsErr: errors.New("no cluster reachable")}}, Config{Pcap: capture}, "error: no cluster reachable", false},
		{"unknown addresses", Deps{Pods: &fakeCluster{}}, Config{Pcap: capture}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var progress bytes.Buffer
			tt.deps.Progress = &progress
			rep, err := Verify(context.Background(), tt.deps, tt.cfg)
			if want, ok := strings.CutPrefix(tt.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("err = %v, want %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.noMesh {
				if rep.Verdict != OutcomeInconclusive || rep.Passed || len(rep.Reasons) == 0 || !strings.Contains(rep.Reasons[0], "maps to a pod") {
					t.Errorf("verdict %s, reasons %q: want INCONCLUSIVE because no address maps to a pod", rep.Verdict, rep.Reasons)
				}
				return
			}
			if hb := findRow(rep, tt.want, "b/server", pcap.HBONEPort); hb == nil || hb.Verdict != Pass {
				t.Errorf("HBONE row = %+v", hb)
			}
			if progress.Len() != 0 {
				t.Errorf("progress = %q, want no warnings", progress.String())
			}
		})
	}
}
