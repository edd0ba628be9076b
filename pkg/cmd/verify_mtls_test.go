package cmd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/fixtures"
	goldenpkg "github.com/kubectl-ambient/kubectl-ambient/internal/testing/golden"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/pcapgen"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/hbonesim"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
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
		// good-any-sll2.pcap holds a second connection to 15008 whose
		// ClientHello the server never answered in the capture (tshark:
		// tcp.stream 1 has handshake type 1 only): HBONE attempted,
		// handshake not captured, so nothing more than INCONCLUSIVE.
		{name: "good-sll2-with-identities", file: "good-any-sll2.pcap", logs: true, wantCode: ExitInconclusive},
		{name: "good-afpacket", file: "good-afpacket.pcap", wantCode: 0},
		{name: "bad-afpacket", file: "bad-afpacket.pcap", wantCode: 1},
		// config_dump alone maps the addresses (no --pods, no cluster) and
		// gives identities and certificates.
		{name: "good-sll2-config-dump", file: "good-any-sll2.pcap", dumps: []string{filepath.Join(pcapDir, "ztunnel-config_dump.json")}, noPods: true, wantCode: ExitInconclusive},
		{name: "bad-sll2-config-dump-and-logs", file: "bad-any-sll2.pcap", logs: true, dumps: []string{filepath.Join(pcapDir, "ztunnel-config_dump.json")}, wantCode: 1},
		// An older (address-keyed) dump without the server and with an
		// unavailable client certificate: flagged, the verdict still passes.
		{name: "good-sll2-config-dump-problems", file: "good-any-sll2.pcap", dumps: []string{filepath.Join("testdata", "verify-mtls", "config_dump-problems.json")}, wantCode: ExitInconclusive},
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
			if rep.Passed || rep.Verdict != mtls.OutcomeFail || rep.Summary.Fail != 1 || rep.Stats.Packets == 0 || rep.Pairs[0].Rows[0].Verdict != mtls.Fail {
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

// emptyEvidence writes the captures that prove nothing: an empty pcapng,
// a real TLS exchange with a server outside the mesh, and a capture whose
// addresses map to no pod. It returns the capture and its pods file.
func emptyEvidence(t *testing.T) map[string][2]string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var ng bytes.Buffer
	w, err := pcapgo.NewNgWriter(&ng, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	empty := write("empty.pcapng", ng.String())

	// Real TLS 1.3 bytes between a mesh pod and a server outside the cluster.
	ca, err := hbonesim.NewCA("cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueDNS("example.test")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	leaf, err := x509.ParseCertificate(cert.Certificate[len(cert.Certificate)-1])
	if err != nil {
		t.Fatal(err)
	}
	pool.AddCert(leaf)
	chunks, err := hbonesim.RecordTLS(&tls.Config{ServerName: "example.test", RootCAs: pool, MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}, //nolint:gosec // G402: test traffic in memory; only the bytes matter
		&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	var conv pcapgen.Conversation
	for _, c := range chunks {
		conv = append(conv, pcapgen.Chunk{FromClient: c.FromClient, Data: c.Data})
	}
	var tlsCap bytes.Buffer
	pw, err := pcapgen.NewWriter(&tlsCap, layers.LinkTypeEthernet, 65535)
	if err != nil {
		t.Fatal(err)
	}
	if err := pw.WriteConversation(pcapgen.NewConn(netip.MustParseAddrPort("10.99.163.1:41000"), netip.MustParseAddrPort("203.0.113.7:443")), conv); err != nil {
		t.Fatal(err)
	}
	unrelated := write("unrelated-tls.pcap", tlsCap.String())
	pods := filepath.Join(pcapDir, "pods.yaml")
	return map[string][2]string{
		"holds no packets":                                     {empty, pods},
		"no two mesh workloads talked":                         {unrelated, pods},
		"none of the 2 addresses in the capture maps to a pod": {filepath.Join(pcapDir, "bad-afpacket.pcap"), write("no-pods.yaml", "{}\n")},
	}
}

// Captures that prove nothing are INCONCLUSIVE, exit 3, with the reason in
// the table, the JSON and the JUnit file; never exit 0.
func TestVerifyMTLSEmptyEvidenceIsInconclusive(t *testing.T) {
	for reason, in := range emptyEvidence(t) {
		t.Run(reason, func(t *testing.T) {
			out, errOut, err := runVerify(t, nil, "--pcap", in[0], "--pods", in[1])
			if ExitCode(err) != ExitInconclusive {
				t.Fatalf("exit %d (%v), want %d; stderr %q", ExitCode(err), err, ExitInconclusive, errOut)
			}
			if !strings.Contains(out, "INCONCLUSIVE: no mesh pair") || !strings.Contains(out, reason) {
				t.Errorf("table does not say INCONCLUSIVE with %q:\n%s", reason, out)
			}
			junit := filepath.Join(t.TempDir(), "out.xml")
			out, _, err = runVerify(t, nil, "--pcap", in[0], "--pods", in[1], "-o", "json", "--junit", junit)
			if ExitCode(err) != ExitInconclusive {
				t.Fatalf("-o json: exit %d, want %d", ExitCode(err), ExitInconclusive)
			}
			var rep struct {
				Verdict string   `json:"verdict"`
				Reasons []string `json:"reasons"`
				Passed  *bool    `json:"passed"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Verdict != "INCONCLUSIVE" || rep.Passed == nil || *rep.Passed || !strings.Contains(strings.Join(rep.Reasons, " "), reason) {
				t.Errorf("json verdict %q passed %v reasons %q", rep.Verdict, rep.Passed, rep.Reasons)
			}
			assertJUnit(t, junit, "INCONCLUSIVE")
		})
	}
}

// assertJUnit checks the file is private JUnit XML whose verdict testcase
// failed with want ("" for passed).
func assertJUnit(t *testing.T, path, want string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v, want 0600", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Type    string `xml:"type,attr"`
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("junit is not XML: %v\n%s", err, b)
	}
	if len(doc.Suites) != 1 || len(doc.Suites[0].Cases) == 0 {
		t.Fatalf("junit = %s", b)
	}
	cases := doc.Suites[0].Cases
	last := cases[len(cases)-1]
	got := ""
	if last.Failure != nil {
		got = last.Failure.Type
	}
	if last.Name != "verdict" || got != want || doc.Tests != len(cases) {
		t.Errorf("verdict testcase %+v (failure %q), want %q; %d tests for %d cases", last, got, want, doc.Tests, len(cases))
	}
}

func TestVerifyMTLSExpectAndJUnit(t *testing.T) {
	good := filepath.Join(pcapDir, "good-afpacket.pcap")
	pods := filepath.Join(pcapDir, "pods.yaml")
	junit := filepath.Join(t.TempDir(), "good.xml")
	out, _, err := runVerify(t, nil, "--pcap", good, "--pods", pods, "--expect", "a/client->b/server", "--junit", junit)
	if err != nil {
		t.Fatalf("exit %d: %v\n%s", ExitCode(err), err, out)
	}
	if !strings.Contains(out, "PASS  a/client->b/server: seen and passed") {
		t.Errorf("table lacks the expectation:\n%s", out)
	}
	assertJUnit(t, junit, "")
	out, _, err = runVerify(t, nil, "--pcap", good, "--pods", pods, "--expect", "a/client->b/server", "--expect", "b/server->a/client", "--junit", junit)
	if ExitCode(err) != ExitFailure || !strings.Contains(out, "expected pair b/server->a/client is missing") {
		t.Errorf("exit %d, want 1 naming the missing pair:\n%s", ExitCode(err), out)
	}
	assertJUnit(t, junit, "FAIL")
	if _, _, err := runVerify(t, nil, "--pcap", good, "--pods", pods, "--expect", "a/client"); ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), "FROM->TO") {
		t.Errorf("--expect without ->: %v", err)
	}
}

func TestVerifyMTLSHelpDocumentsTheVerdict(t *testing.T) {
	out, _, err := runVerify(t, nil, "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"INCONCLUSIVE", "3 INCONCLUSIVE", "--junit", "--require-pqc", "--expect", "--capture-namespace", "handshake not captured", "fd16:9254:7127:1337:ffff:ffff:ffff:ffff", "plaintext preamble"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
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

// The streamed JSON is byte for byte what the plain encoder writes.
func TestVerifyMTLSStreamedJSON(t *testing.T) {
	for _, file := range []string{"good-afpacket.pcap", "bad-any-sll2.pcap"} {
		rep, err := mtls.Verify(context.Background(), mtls.Deps{}, mtls.Config{Pcap: filepath.Join(pcapDir, file), PodsFile: filepath.Join(pcapDir, "pods.yaml"),
			Rules: mtls.Rules{Expect: []mtls.Expectation{{From: "a/client", To: "b/server"}}}})
		if err != nil {
			t.Fatal(err)
		}
		var plain, streamed bytes.Buffer
		if err := PrintStructured(&plain, OutputJSON, rep); err != nil {
			t.Fatal(err)
		}
		if err := (mtlsReport{rep}).WriteJSON(&streamed); err != nil {
			t.Fatal(err)
		}
		if plain.String() != streamed.String() || len(rep.Pairs) == 0 {
			t.Errorf("%s: streamed JSON differs from the encoder's:\n%s\nwant\n%s", file, streamed.String(), plain.String())
		}
	}
}

// The table shows the encapsulation, what was offered apart from what was
// negotiated, the cipher suite and the group, post-quantum marked.
func TestVerifyMTLSTableHandshakeColumns(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	pods := mtls.PodMap{a: {Namespace: "a", Pod: "client", Enrolled: true}, b: {Namespace: "b", Pod: "server", Enrolled: true}}
	hbone := pcap.Flow{Client: netip.AddrPortFrom(a, 40000), Server: netip.AddrPortFrom(b, 15008), Class: pcap.ClassHBONE, ALPN: []string{"h2"},
		ClientHellos: 1, ServerHellos: 1, ServerHello: true, TLSVersion: "1.3", NegotiatedVersion: 0x0304, CipherSuite: 0x1302, KeyShareGroup: 0x11ec,
		OfferedGroups: []uint16{0x11ec, 0x001d}, Encap: "vxlan", PayloadBytes: 900, Packets: 12, Bytes: 2000}
	attempted := hbone
	attempted.Client = netip.AddrPortFrom(a, 40001)
	attempted.ServerHellos, attempted.ServerHello, attempted.NegotiatedVersion, attempted.CipherSuite, attempted.KeyShareGroup = 0, false, 0, 0, 0
	rep := mtls.JudgeCapture([]pcap.Flow{hbone, attempted}, pcap.Stats{Packets: 24, TCP: 24, Flows: 2}, pods, mtls.Rules{})
	var buf bytes.Buffer
	if err := printMTLSTable(&buf, rep); err != nil {
		t.Fatal(err)
	}
	golden(t, "handshake-columns", buf.String())
}
