package mtls

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/hbonesim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
)

// requireTools skips (locally) or fails (CI=true) when the real-traffic test
// cannot run here.
func requireTools(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("real-traffic test creates network namespaces (root); skipped with -short")
	}
	var missing []string
	if why := hbonesim.Available(); why != "" {
		missing = append(missing, why)
	}
	for _, tool := range []string{"tcpdump", "tshark"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool+" not installed (apt-get install -y tcpdump tshark)")
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "real-traffic test needs: " + strings.Join(missing, "; ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

type capturedPhase struct {
	name      string
	afpacket  string // Ethernet frames from AF_PACKET on B's veth
	tcpdumpSL string // SLL2 frames from tcpdump -i any in A
}

// capturePhase captures traffic() twice at once, with AF_PACKET in B and
// tcpdump -i any (SLL2) in A.
func capturePhase(t *testing.T, topo *hbonesim.Topology, dir, name string, traffic func(ctx context.Context) error) capturedPhase {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := capturedPhase{name: name, afpacket: filepath.Join(dir, name+"-afpacket.pcap"), tcpdumpSL: filepath.Join(dir, name+"-any-sll2.pcap")}
	capt, err := hbonesim.CaptureAFPacket(topo.B, topo.VethB, p.afpacket)
	if err != nil {
		t.Fatal(err)
	}
	td, err := hbonesim.StartTcpdump(ctx, topo.A, "any", p.tcpdumpSL, "-y", "LINUX_SLL2")
	if err != nil {
		_, _ = capt.Stop()
		t.Fatal(err)
	}
	terr := traffic(ctx)
	n, cerr := capt.Stop()
	out, derr := td.Stop()
	if terr != nil {
		t.Fatalf("%s traffic: %v", name, terr)
	}
	if cerr != nil || n == 0 {
		t.Fatalf("afpacket capture: %d packets, %v", n, cerr)
	}
	if derr != nil {
		t.Fatalf("tcpdump: %v: %s", derr, out)
	}
	t.Logf("%s: afpacket %d packets; tcpdump: %s", name, n, strings.TrimSpace(out))
	for _, f := range []string{p.afpacket, p.tcpdumpSL} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, captures must be 0600", f, st.Mode().Perm())
		}
	}
	return p
}

func decodeFile(t *testing.T, path string) ([]pcap.Flow, pcap.Stats) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := pcap.NewDecoder()
	if err := d.ReadAll(context.Background(), f); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return d.Flows(), d.Stats()
}

type tsharkHello struct {
	client, server netip.AddrPort
	alpn           []string
	version        string
	sni            string
}

var tlsVersionNames = map[string]string{"0x0301": "1.0", "0x0302": "1.1", "0x0303": "1.2", "0x0304": "1.3"}

// tsharkHellos asks tshark for every ClientHello (type 1) or ServerHello
// (type 2) in the file: the independent oracle for the decoder.
func tsharkHellos(t *testing.T, path string, hsType int) []tsharkHello {
	t.Helper()
	out, err := exec.Command("tshark", "-n", "-r", path,
		"-d", "tcp.port==15008,tls", "-d", fmt.Sprintf("tcp.port==%d,tls", hbonesim.TLSPort),
		"-Y", fmt.Sprintf("tls.handshake.type==%d", hsType),
		"-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,",
		"-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport",
		"-e", "tls.handshake.extensions_alpn_str", "-e", "tls.handshake.extensions.supported_version",
		"-e", "tls.handshake.extensions_server_name").Output()
	if err != nil {
		t.Fatalf("tshark on %s: %v", path, err)
	}
	var hs []tsharkHello
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) < 7 {
			t.Fatalf("tshark line %q", line)
		}
		h := tsharkHello{
			client: netip.MustParseAddrPort(f[0] + ":" + f[1]),
			server: netip.MustParseAddrPort(f[2] + ":" + f[3]),
			sni:    f[6],
		}
		if f[4] != "" {
			h.alpn = strings.Split(f[4], ",")
		}
		best := ""
		for _, v := range strings.Split(f[5], ",") {
			if n, ok := tlsVersionNames[v]; ok && n > best {
				best = n
			}
		}
		h.version = best
		hs = append(hs, h)
	}
	return hs
}

// checkOracle compares the decoder's hellos with tshark's on the same file.
func checkOracle(t *testing.T, path string, flows []pcap.Flow) {
	t.Helper()
	chs := tsharkHellos(t, path, 1)
	shs := tsharkHellos(t, path, 2)
	total := 0
	for _, f := range flows {
		total += f.ClientHellos
		var mine []tsharkHello
		for _, h := range chs {
			if h.client == f.Client && h.server == f.Server {
				mine = append(mine, h)
			}
		}
		if len(mine) != f.ClientHellos {
			t.Errorf("%s: flow %s -> %s: decoder saw %d ClientHellos, tshark %d", filepath.Base(path), f.Client, f.Server, f.ClientHellos, len(mine))
			continue
		}
		if len(mine) == 0 {
			continue
		}
		h := mine[0]
		if !slices.Equal(h.alpn, f.ALPN) {
			t.Errorf("%s: flow %s: ALPN decoder %q, tshark %q", filepath.Base(path), f.Client, f.ALPN, h.alpn)
		}
		if h.sni != f.SNI {
			t.Errorf("%s: flow %s: SNI decoder %q, tshark %q", filepath.Base(path), f.Client, f.SNI, h.sni)
		}
		want := h.version
		for _, s := range shs {
			if s.client == f.Server && s.server == f.Client {
				want = s.version // the version the server selected
			}
		}
		if want != f.TLSVersion {
			t.Errorf("%s: flow %s: TLS version decoder %q, tshark %q", filepath.Base(path), f.Client, f.TLSVersion, want)
		}
	}
	if total != len(chs) {
		t.Errorf("%s: decoder saw %d ClientHellos in all, tshark %d", filepath.Base(path), total, len(chs))
	}
}

func summarize(flows []pcap.Flow) string {
	var l []string
	for _, f := range flows {
		l = append(l, fmt.Sprintf("%s->%s %s %s %v %d", f.Client, f.Server, f.Class, f.TLSVersion, f.ALPN, f.ClientHellos))
	}
	slices.Sort(l)
	return strings.Join(l, "\n")
}

// checkDumpJoin joins the capture with config_dumps describing the
// workloads and certificates of the traffic: identities from config_dump
// alone agree with what the access log of the real mTLS tunnels says, and
// the certificates' states are reported.
func checkDumpJoin(t *testing.T, flows []pcap.Flow, pods PodMap, logs []AccessLogEntry, full, noServerCert ZtunnelDump, sc *hbonesim.Scenario) {
	t.Helper()
	now := time.Now()
	// config_dump alone, its workloads as the pod map.
	rep := Judge(flows, PodMapFromDumps([]ZtunnelDump{full}))
	JoinConfigDumps(rep, []ZtunnelDump{full}, now)
	FlagMissingIdentities(rep, true)
	hb := findRow(rep, "a/client", "b/server", pcap.HBONEPort)
	if hb == nil || hb.ClientIdentity != sc.ClientID || hb.ServerIdentity != sc.ServerID || len(hb.IdentityIssues) != 0 {
		t.Fatalf("HBONE row from config_dump = %+v", hb)
	}
	if !rep.Passed || len(rep.Certificates) != 2 || rep.Summary.CertificateProblems != 0 {
		t.Errorf("report from config_dump: passed %v, certificates %+v", rep.Passed, rep.Certificates)
	}
	for _, c := range rep.Certificates {
		if c.Status != CertOK || c.State != "Available" || c.Expiration == nil || c.Expiration.Before(now.Add(23*time.Hour)) {
			t.Errorf("certificate %+v", c)
		}
	}
	// Both joins: the access log of the real tunnels agrees with config_dump.
	rep = Judge(flows, pods)
	JoinIdentities(rep, logs)
	JoinConfigDumps(rep, []ZtunnelDump{noServerCert}, now)
	FlagMissingIdentities(rep, true)
	hb = findRow(rep, "a/client", "b/server", pcap.HBONEPort)
	if hb.ClientIdentity != sc.ClientID || hb.ServerIdentity != sc.ServerID || len(hb.IdentityIssues) != 0 {
		t.Errorf("HBONE row with both joins = %+v", hb)
	}
	byID := map[string]CertStatus{}
	for _, c := range rep.Certificates {
		byID[c.Identity] = c
	}
	if byID[sc.ClientID].Status != CertOK || byID[sc.ServerID].Status != CertMissing || rep.Summary.CertificateProblems != 1 || !rep.Passed {
		t.Errorf("certificates = %+v, summary %+v", rep.Certificates, rep.Summary)
	}
}

func findRow(rep *Report, client, server string, port uint16) *Row {
	for i := range rep.Pairs {
		for j := range rep.Pairs[i].Rows {
			r := &rep.Pairs[i].Rows[j]
			if r.Client.Name == client && r.Server.Name == server && r.Port == port {
				return r
			}
		}
	}
	return nil
}

// checkNegotiatedOracle compares the row's negotiated cipher suite and
// key-exchange group with what tshark reads from the ServerHellos to 15008.
func checkNegotiatedOracle(t *testing.T, file string, hb *Row) {
	t.Helper()
	out, err := exec.Command("tshark", "-n", "-r", file, "-Y", "tls.handshake.type == 2 && tcp.srcport == 15008",
		"-T", "fields", "-e", "tls.handshake.ciphersuite", "-e", "tls.handshake.extensions_key_share_group").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	lines := strings.Fields(strings.TrimSpace(string(out)))
	if len(lines) < 2 {
		t.Fatalf("tshark saw no ServerHello from 15008: %q", out)
	}
	// tshark prints the suite in hex and the group in decimal.
	cipher, err1 := strconv.ParseUint(lines[0], 0, 16)
	group, err2 := strconv.ParseUint(lines[1], 0, 16)
	if err1 != nil || err2 != nil {
		t.Fatalf("tshark fields %q: %v %v", lines, err1, err2)
	}
	n := hb.Negotiated
	if n == nil || n.CipherSuite == "" || n.Group == "" {
		t.Fatalf("decoder reports no negotiated cipher/group; tshark: cipher 0x%04x, group 0x%04x", cipher, group)
	}
	if n.CipherSuite != pcap.CipherSuiteName(uint16(cipher)) || n.Group != pcap.GroupName(uint16(group)) || n.PostQuantum != pcap.IsPostQuantum(uint16(group)) {
		t.Errorf("negotiated %+v, tshark: cipher 0x%04x group 0x%04x", n, cipher, group)
	}
}

// TestRealTraffic makes real HBONE-like, plaintext and TLS traffic between
// two network namespaces, captures it with AF_PACKET and with tcpdump -i any,
// and checks the decoder against tshark and the verdicts against the rules.
func TestRealTraffic(t *testing.T) {
	requireTools(t)
	pid := os.Getpid()
	topo, err := hbonesim.NewTopology(fmt.Sprintf("%d", pid%100000), 100+pid%100)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(topo.Close)
	sc, err := hbonesim.StartScenario(topo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sc.Close)
	client, legacy := topo.AddrA[0], topo.AddrA[1]
	pods := PodMap{
		netip.MustParseAddr(client):     {Namespace: "a", Pod: "client", Enrolled: true},
		netip.MustParseAddr(legacy):     {Namespace: "a", Pod: "legacy"},
		netip.MustParseAddr(topo.AddrB): {Namespace: "b", Pod: "server", Enrolled: true},
	}
	dir := t.TempDir()

	good := capturePhase(t, topo, dir, "good", func(ctx context.Context) error {
		if err := sc.HBONE(ctx, client, 2, 2); err != nil {
			return err
		}
		if err := sc.PlainHTTP(ctx, legacy); err != nil {
			return err
		}
		return sc.PlainTLS(ctx, legacy)
	})
	bad := capturePhase(t, topo, dir, "bad", func(ctx context.Context) error {
		if err := sc.HBONE(ctx, client, 1, 1); err != nil {
			return err
		}
		// The negative control: an enrolled client reaching the app port in
		// plaintext, as if ztunnel had not captured it.
		return sc.PlainHTTP(ctx, client)
	})
	logs, err := ParseAccessLog(bytes.NewReader(sc.AccessLog()))
	if err != nil || len(logs) != 5 {
		t.Fatalf("access log: %d entries, %v; want 5 tunnels", len(logs), err)
	}
	// ztunnel's config_dump for these workloads, with certificates from the
	// same CA that authenticated the tunnels; the server's node ztunnel
	// lost its certificate in the second dump.
	dumpWorkloads := []hbonesim.DumpWorkload{
		{IP: client, Namespace: "a", Name: "client", ServiceAccount: "x", Protocol: "HBONE", Cert: true},
		{IP: legacy, Namespace: "a", Name: "legacy", ServiceAccount: "default", Protocol: "TCP"},
		{IP: topo.AddrB, Namespace: "b", Name: "server", ServiceAccount: "y", Protocol: "HBONE", Cert: true},
	}
	caDump := func() ZtunnelDump {
		b, err := sc.CA.ConfigDump(dumpWorkloads)
		if err != nil {
			t.Fatal(err)
		}
		return parseDump(t, "ztunnel", b)
	}
	fullDump := caDump()
	dumpWorkloads[2].Cert = false
	noServerCert := caDump()

	for _, file := range []string{good.afpacket, good.tcpdumpSL} {
		t.Run("good/"+filepath.Base(file), func(t *testing.T) {
			flows, stats := decodeFile(t, file)
			if stats.Undecodable != 0 {
				t.Errorf("undecodable packets: %+v", stats)
			}
			checkOracle(t, file, flows)
			rep := Judge(flows, pods)
			JoinIdentities(rep, logs)
			if !rep.Passed {
				t.Errorf("verdict failed on good traffic: %+v", rep.Pairs)
			}
			hb := findRow(rep, "a/client", "b/server", pcap.HBONEPort)
			if hb == nil || hb.Class != pcap.ClassHBONE || hb.Verdict != Pass || hb.Flows != 2 || hb.ClientHellos != 2 || hb.TLSVersion != "1.3" || !slices.Equal(hb.ALPN, []string{"h2"}) {
				t.Fatalf("HBONE row = %+v", hb)
			}
			if rep.Verdict != OutcomePass || hb.Handshake != HandshakeNegotiated || hb.Negotiated == nil || hb.Negotiated.Version != "1.3" {
				t.Errorf("verdict %s (%q), HBONE handshake %q negotiated %+v: want PASS on the server's TLS 1.3 ServerHello", rep.Verdict, rep.Reasons, hb.Handshake, hb.Negotiated)
			}
			checkNegotiatedOracle(t, file, hb)
			wantID := "spiffe://cluster.local/ns/a/sa/x -> spiffe://cluster.local/ns/b/sa/y"
			if !slices.Equal(hb.Identities, []string{wantID}) {
				t.Errorf("identities = %q, want %q", hb.Identities, wantID)
			}
			checkDumpJoin(t, flows, pods, logs, fullDump, noServerCert, sc)
			if r := findRow(rep, "a/legacy", "b/server", hbonesim.HTTPPort); r == nil || r.Class != pcap.ClassPlaintext || r.Verdict != Info {
				t.Errorf("plaintext row from outside the mesh = %+v", r)
			}
			if r := findRow(rep, "a/legacy", "b/server", hbonesim.TLSPort); r == nil || r.Class != pcap.ClassTLS || r.SNI != hbonesim.TLSServer {
				t.Errorf("TLS row = %+v", r)
			}
			if findRow(rep, "a/client", "b/server", hbonesim.EchoPort) != nil {
				t.Errorf("the app port appeared on the wire between enrolled pods")
			}
		})
	}
	for _, file := range []string{bad.afpacket, bad.tcpdumpSL} {
		t.Run("bad/"+filepath.Base(file), func(t *testing.T) {
			flows, _ := decodeFile(t, file)
			checkOracle(t, file, flows)
			rep := Judge(flows, pods)
			if rep.Passed {
				t.Fatalf("negative control passed: %+v", rep.Pairs)
			}
			r := findRow(rep, "a/client", "b/server", hbonesim.HTTPPort)
			if r == nil || r.Verdict != Fail || r.Class != pcap.ClassPlaintext {
				t.Fatalf("plaintext row = %+v", r)
			}
			if hb := findRow(rep, "a/client", "b/server", pcap.HBONEPort); hb == nil || hb.Verdict != Pass {
				t.Errorf("HBONE row = %+v", hb)
			}
		})
	}
	// Both capture methods see the same connections with the same classes.
	fa, _ := decodeFile(t, good.afpacket)
	fb, _ := decodeFile(t, good.tcpdumpSL)
	if summarize(fa) != summarize(fb) {
		t.Errorf("afpacket and tcpdump -i any disagree:\n%s\n%s", summarize(fa), summarize(fb))
	}
	// The same capture rewritten by tshark as pcapng decodes the same way.
	ng := filepath.Join(dir, "good.pcapng")
	if out, err := exec.Command("tshark", "-r", good.tcpdumpSL, "-F", "pcapng", "-w", ng).CombinedOutput(); err != nil {
		t.Fatalf("tshark -F pcapng: %v: %s", err, out)
	}
	if fn, _ := decodeFile(t, ng); summarize(fn) != summarize(fb) {
		t.Errorf("pcapng from tshark decodes differently:\n%s\n%s", summarize(fn), summarize(fb))
	}

	if out := os.Getenv("HBONE_WRITE_FIXTURES"); out != "" {
		// Regenerate the checked-in fixtures: HBONE_WRITE_FIXTURES=$PWD/../../../internal/testing/fixtures/testdata/pcap
		for _, f := range []string{good.afpacket, good.tcpdumpSL, bad.afpacket, bad.tcpdumpSL} {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(out, filepath.Base(f)), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(out, "ztunnel-access.log"), sc.AccessLog(), 0o600); err != nil {
			t.Fatal(err)
		}
		podsYAML := fmt.Sprintf("# pod mapping for the captures in this directory (made by TestRealTraffic)\n%s: {namespace: a, pod: client, enrolled: true}\n%s: {namespace: a, pod: legacy}\n%s: {namespace: b, pod: server, enrolled: true}\n", client, legacy, topo.AddrB)
		if err := os.WriteFile(filepath.Join(out, "pods.yaml"), []byte(podsYAML), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Logf("fixtures written to %s (addresses 10.99.%d.0/24)", out, 100+pid%100)
	}
}
