package pcap

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// requireTshark skips (locally) or fails (CI=true) when tshark, the oracle,
// is not installed.
func requireTshark(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		msg := "tshark not installed (apt-get install -y tshark): it is the oracle for this test"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// writeTemp writes a capture to a file of the test's temporary directory.
func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tsharkArgs are the options every oracle call uses: no name resolution,
// port 15008 and the test ports read as TLS, VXLAN on 8472 and the extra test
// port as well as tshark's default 4789.
func tsharkArgs(path string) []string {
	return []string{
		"-n", "-r", path,
		"-d", "tcp.port==15008,tls", "-d", "tcp.port==8443,tls", "-d", "tcp.port==8080,http",
		"-d", "udp.port==8472,vxlan", "-d", fmt.Sprintf("udp.port==%d,vxlan", testExtraVXLANPort),
	}
}

// testExtraVXLANPort is a VXLAN port neither default covers.
const testExtraVXLANPort = 48879

// tsharkFields runs tshark with a display filter and returns one row per
// packet of the named fields (the last occurrence of each: the innermost
// header when a packet carries several).
func tsharkFields(t *testing.T, path, filter string, fields ...string) [][]string {
	t.Helper()
	args := append(tsharkArgs(path), "-Y", filter, "-T", "fields", "-E", "separator=|", "-E", "occurrence=l")
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	return runTshark(t, args)
}

// runTshark runs tshark and splits its field output into rows.
func runTshark(t *testing.T, args []string) [][]string {
	t.Helper()
	path := args[2]
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark on %s: %v", path, err)
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		rows = append(rows, strings.Split(line, "|"))
	}
	return rows
}

// oracleHello is one ServerHello as tshark reads it.
type oracleHello struct {
	client, server netip.AddrPort // the flow's client and server (the hello goes server -> client)
	cipher, group  uint16
	version        uint16
}

// helloRetryFilter leaves out HelloRetryRequests (their random is fixed).
const helloRetryFilter = "tls.handshake.type==2 && !(tls.handshake.random == cf:21:ad:74:e5:9a:61:11:be:1d:8c:02:1e:65:b8:91:c2:a2:11:16:7a:bb:8c:5e:07:9e:09:e2:c8:a8:33:9c)"

// tsharkServerHellos lists every ServerHello that is not a retry request.
func tsharkServerHellos(t *testing.T, path string) []oracleHello {
	t.Helper()
	// The Source and Destination columns hold the innermost IP header's
	// addresses (each IP layer overwrites them).
	rows := tsharkFields(t, path, helloRetryFilter,
		"_ws.col.Source", "tcp.srcport", "_ws.col.Destination", "tcp.dstport",
		"tls.handshake.ciphersuite", "tls.handshake.extensions_key_share_group", "tls.handshake.extensions.supported_version")
	var out []oracleHello
	for _, r := range rows {
		if len(r) < 7 {
			t.Fatalf("tshark row %q", r)
		}
		h := oracleHello{
			server:  netip.MustParseAddrPort(joinHostPort(r[0], r[1])),
			client:  netip.MustParseAddrPort(joinHostPort(r[2], r[3])),
			cipher:  parseHex16(t, r[4]),
			group:   parseHex16(t, r[5]),
			version: parseHex16(t, r[6]),
		}
		out = append(out, h)
	}
	return out
}

func joinHostPort(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

func parseHex16(t *testing.T, s string) uint16 {
	t.Helper()
	if s == "" {
		return 0
	}
	s = strings.Split(s, ",")[0]
	// tshark prints some fields in hex ("0x1301"), others in decimal ("4588").
	v, err := strconv.ParseUint(s, 0, 16)
	if err != nil {
		t.Fatalf("tshark value %q: %v", s, err)
	}
	return uint16(v)
}

// checkServerHellos compares the decoder's negotiated fields with tshark's
// for every flow; it returns how many flows had a ServerHello.
func checkServerHellos(t *testing.T, path string, flows []Flow) int {
	t.Helper()
	shs := tsharkServerHellos(t, path)
	n := 0
	for _, f := range flows {
		var mine []oracleHello
		for _, h := range shs {
			if h.client == f.Client && h.server == f.Server {
				mine = append(mine, h)
			}
		}
		if f.ServerHello != (len(mine) > 0) {
			t.Errorf("%s -> %s: decoder ServerHello %v, tshark saw %d", f.Client, f.Server, f.ServerHello, len(mine))
			continue
		}
		if len(mine) == 0 {
			continue
		}
		n++
		h := mine[len(mine)-1]
		if h.version == 0 {
			h.version = 0x0303 // no supported_versions: TLS 1.2 (the legacy field)
		}
		if f.CipherSuite != h.cipher || f.KeyShareGroup != h.group || f.NegotiatedVersion != h.version {
			t.Errorf("%s -> %s: decoder suite %#04x group %#04x version %#04x, tshark %#04x %#04x %#04x",
				f.Client, f.Server, f.CipherSuite, f.KeyShareGroup, f.NegotiatedVersion, h.cipher, h.group, h.version)
		}
	}
	if n != len(shs) {
		t.Errorf("decoder matched %d ServerHellos, tshark saw %d", n, len(shs))
	}
	return n
}
