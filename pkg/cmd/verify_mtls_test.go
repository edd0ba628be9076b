package cmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/fixtures"
	goldenpkg "github.com/kubectl-ambient/kubectl-ambient/internal/testing/golden"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
)

// The captures in testdata/pcap were made by the real-traffic test
// (pkg/diag/mtls TestRealTraffic with HBONE_WRITE_FIXTURES): real HBONE-like
// mTLS, plaintext and TLS between two network namespaces.
var pcapDir = fixtures.Rel("pcap")

func runVerify(t *testing.T, stdin []byte, args ...string) (string, string, error) {
	t.Helper()
	streams, in, out, errOut := genericiooptions.NewTestIOStreams()
	in.Write(stdin)
	root := NewRootCmd(streams)
	root.SetArgs(append([]string{"verify-mtls"}, args...))
	err := root.Execute()
	return out.String(), errOut.String(), err
}

// golden compares with testdata/verify-mtls/<name>.golden; -update rewrites it.
func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenpkg.AssertString(t, filepath.Join("testdata", "verify-mtls", name+".golden"), got)
}

func TestVerifyMTLSTable(t *testing.T) {
	pods := filepath.Join(pcapDir, "pods.yaml")
	tests := []struct {
		name     string
		file     string
		logs     bool
		dumps    []string
		noPods   bool
		wantCode int
	}{
		{name: "good-sll2-with-identities", file: "good-any-sll2.pcap", logs: true, wantCode: 0},
		{name: "good-afpacket", file: "good-afpacket.pcap", wantCode: 0},
		{name: "bad-afpacket", file: "bad-afpacket.pcap", wantCode: 1},
		// config_dump alone maps the addresses (no --pods, no cluster) and
		// gives identities and certificates.
		{name: "good-sll2-config-dump", file: "good-any-sll2.pcap", dumps: []string{filepath.Join(pcapDir, "ztunnel-config_dump.json")}, noPods: true, wantCode: 0},
		{name: "bad-sll2-config-dump-and-logs", file: "bad-any-sll2.pcap", logs: true, dumps: []string{filepath.Join(pcapDir, "ztunnel-config_dump.json")}, wantCode: 1},
		// An older (address-keyed) dump without the server and with an
		// unavailable client certificate: flagged, the verdict still passes.
		{name: "good-sll2-config-dump-problems", file: "good-any-sll2.pcap", dumps: []string{filepath.Join("testdata", "verify-mtls", "config_dump-problems.json")}, wantCode: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"--pcap", filepath.Join(pcapDir, tt.file)}
			if !tt.noPods {
				args = append(args, "--pods", pods)
			}
			if tt.logs {
				args = append(args, "--logs", filepath.Join(pcapDir, "ztunnel-access.log"))
			}
			for _, d := range tt.dumps {
				args = append(args, "--config-dump", d)
			}
			out, errOut, err := runVerify(t, nil, args...)
			if code := ExitCode(err); code != tt.wantCode {
				t.Fatalf("exit code %d (%v), want %d; stderr %q", code, err, tt.wantCode, errOut)
			}
			if err != nil && !errors.As(err, new(SilentError)) {
				t.Fatalf("a failed verdict must be a SilentError after the table, got %v", err)
			}
			if errOut != "" {
				t.Errorf("stderr = %q", errOut)
			}
			golden(t, tt.name, out)
		})
	}
}

func TestVerifyMTLSStructuredAndStdin(t *testing.T) {
	bad, err := os.ReadFile(filepath.Join(pcapDir, "bad-any-sll2.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"json", "yaml"} {
		t.Run(format, func(t *testing.T) {
			out, _, err := runVerify(t, bad, "--pcap", "-", "--pods", filepath.Join(pcapDir, "pods.yaml"), "-o", format)
			if ExitCode(err) != 1 {
				t.Fatalf("exit code %d, want 1 for the negative control", ExitCode(err))
			}
			var rep mtls.Report
			if format == "json" {
				err = json.Unmarshal([]byte(out), &rep)
			} else {
				err = yaml.Unmarshal([]byte(out), &rep)
			}
			if err != nil {
				t.Fatalf("not %s: %v", format, err)
			}
			if rep.Passed || rep.Summary.Fail != 1 || rep.Stats.Packets == 0 || rep.Pairs[0].Rows[0].Verdict != mtls.Fail {
				t.Errorf("report = %+v", rep)
			}
		})
	}
}

func TestVerifyMTLSErrors(t *testing.T) {
	dir := t.TempDir()
	notPcap := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notPcap, []byte("hello, not a capture"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"live flags with pcap", []string{"--pcap", "x", "--from", "a"}, ExitUsage, "belong to live capture"},
		{"bad duration", []string{"--duration", "0s"}, ExitUsage, "--duration must be positive"},
		{"bad output", []string{"--pcap", "x", "-o", "wide"}, ExitUsage, "unknown output format"},
		{"missing file", []string{"--pcap", filepath.Join(dir, "nope.pcap"), "--pods", filepath.Join(pcapDir, "pods.yaml")}, ExitFailure, "open capture"},
		{"not a capture", []string{"--pcap", notPcap, "--pods", filepath.Join(pcapDir, "pods.yaml")}, ExitFailure, "not a pcap or pcapng capture"},
		{"bad pods file", []string{"--pcap", filepath.Join(pcapDir, "good-afpacket.pcap"), "--pods", notPcap}, ExitFailure, "pod mapping"},
		{"unreachable cluster", []string{"--pcap", filepath.Join(pcapDir, "good-afpacket.pcap"), "--server", "https://127.0.0.1:1", "--request-timeout-pods", "2s"}, ExitFailure, "no cluster reachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runVerify(t, nil, tt.args...)
			if ExitCode(err) != tt.code || err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v (exit %d), want exit %d containing %q", err, ExitCode(err), tt.code, tt.msg)
			}
			if msg := err.Error(); strings.HasSuffix(msg, ".") || strings.Contains(msg, "\n") {
				t.Errorf("error %q is not one line without a trailing period", msg)
			}
		})
	}
}

func TestVerifyMTLSWarnsWithoutMeshTraffic(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "pods.yaml")
	if err := os.WriteFile(empty, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runVerify(t, nil, "--pcap", filepath.Join(pcapDir, "bad-afpacket.pcap"), "--pods", empty)
	if err != nil {
		t.Fatalf("unknown addresses are not judged, want exit 0: %v", err)
	}
	if !strings.Contains(errOut, "no traffic between mesh workloads") || !bytes.Contains([]byte(out), []byte("not known pods")) {
		t.Errorf("stdout %q stderr %q", out, errOut)
	}
}

func TestVerifyMTLSConfigDumpJSON(t *testing.T) {
	out, errOut, err := runVerify(t, nil, "--pcap", filepath.Join(pcapDir, "good-afpacket.pcap"),
		"--config-dump", filepath.Join(pcapDir, "ztunnel-config_dump.json"), "-o", "json")
	if err != nil {
		t.Fatalf("exit %d: %v; stderr %q", ExitCode(err), err, errOut)
	}
	var rep mtls.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	var hb *mtls.Row
	for i := range rep.Pairs {
		for j := range rep.Pairs[i].Rows {
			if r := &rep.Pairs[i].Rows[j]; r.Port == 15008 {
				hb = r
			}
		}
	}
	if hb == nil || hb.Client.Name != "a/client" || hb.ClientIdentity != "spiffe://cluster.local/ns/a/sa/x" || hb.ServerIdentity != "spiffe://cluster.local/ns/b/sa/y" || hb.ZtunnelConnections != 1 {
		t.Errorf("HBONE row = %+v", hb)
	}
	if len(rep.Certificates) != 2 || rep.Certificates[0].Status != mtls.CertOK || rep.Certificates[0].Expiration == nil || rep.Certificates[0].Serial != "0x65" {
		t.Errorf("certificates = %+v", rep.Certificates)
	}
	for _, bad := range []string{filepath.Join(pcapDir, "pods.yaml"), filepath.Join(t.TempDir(), "missing.json")} {
		_, _, err := runVerify(t, nil, "--pcap", filepath.Join(pcapDir, "good-afpacket.pcap"), "--config-dump", bad)
		if ExitCode(err) != ExitFailure || !strings.Contains(err.Error(), "config_dump") {
			t.Errorf("--config-dump %s: %v", bad, err)
		}
	}
}
