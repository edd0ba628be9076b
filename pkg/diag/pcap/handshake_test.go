package pcap

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/pcapgen"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/hbonesim"
)

// recordWith records one real TLS connection between two crypto/tls
// configurations derived from HBONE's (mutual TLS, SPIFFE identities).
func recordWith(t *testing.T, adjust func(cli, srv *tls.Config)) pcapgen.Conversation {
	t.Helper()
	ca, err := hbonesim.NewCA("cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	x, _ := ca.Issue("a", "x")
	y, _ := ca.Issue("b", "y")
	cli, srv := ca.ClientConfig(x, ca.SPIFFEID("b", "y")), ca.ServerConfig(y)
	adjust(cli, srv)
	return recordLoopback(t, cli, srv)
}

// tap records every write of one side of a connection.
type tap struct {
	net.Conn
	mu     *sync.Mutex
	out    *pcapgen.Conversation
	client bool
}

func (c *tap) Write(p []byte) (int, error) {
	c.mu.Lock()
	*c.out = append(*c.out, pcapgen.Chunk{FromClient: c.client, Data: append([]byte(nil), p...)})
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// recordLoopback runs a real TLS handshake and one echo over a loopback
// TCP connection (buffered, unlike net.Pipe, so both sides may write at
// once, as a HelloRetryRequest exchange does) and returns the writes.
func recordLoopback(t *testing.T, cli, srv *tls.Config) pcapgen.Conversation {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var (
		mu  sync.Mutex
		out pcapgen.Conversation
	)
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(&tap{Conn: c, mu: &mu, out: &out}, srv)
		buf := make([]byte, 5)
		if _, err := io.ReadFull(tc, buf); err != nil {
			done <- err
			return
		}
		_, err = tc.Write(buf)
		done <- err
	}()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(&tap{Conn: c, mu: &mu, out: &out, client: true}, cli)
	if _, err := tc.Write([]byte("hello")); err != nil {
		t.Fatalf("TLS client: %v", err)
	}
	if _, err := io.ReadFull(tc, make([]byte, 5)); err != nil {
		t.Fatalf("TLS client read: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("TLS server: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return out
}

// writeConvMSS is writeConv with a chosen segment size.
func writeConvMSS(t *testing.T, mss int, c pcapgen.Conversation) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapgen.NewWriter(&buf, layers.LinkTypeEthernet, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.MSS = mss
	if err := w.WriteConversation(pcapgen.NewConn(cli4, srv4), c); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestHandshakeTruth checks the negotiated version, suite and key-exchange
// group from real crypto/tls handshakes against tshark, apart from what the
// client offered.
func TestHandshakeTruth(t *testing.T) {
	recordings(t)
	requireTshark(t)
	x25519Only := recordWith(t, func(cli, _ *tls.Config) { cli.CurvePreferences = []tls.CurveID{tls.X25519} })
	tls12 := recordWith(t, func(cli, srv *tls.Config) {
		cli.MinVersion, cli.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		srv.MinVersion = tls.VersionTLS12
		cli.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}
	})
	// The client sends a key share for X25519 only; the server accepts
	// only P-256: a HelloRetryRequest, then a second ClientHello.
	retry := recordWith(t, func(cli, srv *tls.Config) {
		cli.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
		srv.CurvePreferences = []tls.CurveID{tls.CurveP256}
	})
	tests := []struct {
		name       string
		conv       pcapgen.Conversation
		mss        int
		pq         bool
		version    uint16
		group      uint16
		spansHello bool // the ClientHello needs more than one segment
		retry      bool // a HelloRetryRequest: two ClientHellos
	}{
		// Go's default key shares are X25519MLKEM768 and X25519: the hybrid
		// ClientHello is larger than one 1448-byte segment.
		{name: "post-quantum hybrid", conv: recHBONE, mss: 1448, pq: true, version: 0x0304, group: 0x11ec, spansHello: true},
		{name: "hellos in 100-byte segments", conv: recHBONE, mss: 100, pq: true, version: 0x0304, group: 0x11ec, spansHello: true},
		{name: "classical x25519", conv: x25519Only, mss: 1448, version: 0x0304, group: 0x001d},
		{name: "tls 1.2", conv: tls12, mss: 1448, version: 0x0303},
		{name: "hello retry request", conv: retry, mss: 1448, version: 0x0304, group: 0x0017, retry: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.spansHello != (len(tt.conv[0].Data) > tt.mss) {
				t.Fatalf("ClientHello is %d bytes: spans segments %v, want %v", len(tt.conv[0].Data), len(tt.conv[0].Data) > tt.mss, tt.spansHello)
			}
			b := writeConvMSS(t, tt.mss, tt.conv)
			path := writeTemp(t, "hs.pcap", b)
			_, flows := decodeBytes(t, b)
			f := oneFlow(t, flows)
			if checkServerHellos(t, path, flows) != 1 {
				t.Fatalf("want one ServerHello")
			}
			if want := map[bool]int{false: 1, true: 2}[tt.retry]; f.ClientHellos != want || f.ServerHellos != 1 {
				t.Errorf("hellos %d/%d, want %d/1", f.ClientHellos, f.ServerHellos, want)
			}
			if !f.ServerHello || f.NegotiatedVersion != tt.version || f.KeyShareGroup != tt.group {
				t.Errorf("ServerHello %v version %#04x group %#04x, want true %#04x %#04x", f.ServerHello, f.NegotiatedVersion, f.KeyShareGroup, tt.version, tt.group)
			}
			if IsPostQuantum(f.KeyShareGroup) != tt.pq {
				t.Errorf("IsPostQuantum(%s) = %v, want %v", GroupName(f.KeyShareGroup), !tt.pq, tt.pq)
			}
			if strings.HasPrefix(CipherSuiteName(f.CipherSuite), "0x") {
				t.Errorf("cipher suite %#04x has no name", f.CipherSuite)
			}
			// What the client offered stays apart from what was agreed.
			if !slices.Contains(f.OfferedGroups, 0x001d) || !slices.Contains(f.OfferedVersions, tt.version) {
				t.Errorf("offered groups %#04x, versions %#04x", f.OfferedGroups, f.OfferedVersions)
			}
			if tt.group != 0 && !slices.Contains(f.OfferedKeyShares, tt.group) {
				t.Errorf("offered key shares %#04x lack the negotiated %#04x", f.OfferedKeyShares, tt.group)
			}
			checkOfferedGroups(t, path, f)
		})
	}
}

// checkOfferedGroups compares the ClientHello's supported_groups with tshark's.
func checkOfferedGroups(t *testing.T, path string, f Flow) {
	t.Helper()
	args := append(tsharkArgs(path), "-Y", "tls.handshake.type==1", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-e", "tls.handshake.extensions_supported_group")
	rows := runTshark(t, args)
	if len(rows) != f.ClientHellos {
		t.Fatalf("tshark saw %d ClientHellos, the decoder %d", len(rows), f.ClientHellos)
	}
	rows = rows[len(rows)-1:] // the decoder keeps the last (after a retry)
	var want []uint16
	for _, v := range strings.Split(rows[0][0], ",") {
		if g := parseHex16(t, v); !isGREASE(g) {
			want = append(want, g)
		}
	}
	if !slices.Equal(f.OfferedGroups, want) {
		t.Errorf("offered groups: decoder %#04x, tshark %#04x", f.OfferedGroups, want)
	}
}

// TestServerHelloMissing: a ClientHello alone proves no handshake.
func TestServerHelloMissing(t *testing.T) {
	recordings(t)
	b := writeConvMSS(t, 1448, recHBONE[:1])
	_, flows := decodeBytes(t, b)
	f := oneFlow(t, flows)
	if f.ServerHello || f.CipherSuite != 0 || f.KeyShareGroup != 0 || f.NegotiatedVersion != 0 {
		t.Errorf("negotiated fields without a ServerHello: %+v", f)
	}
	if !slices.Contains(f.OfferedKeyShares, 0x11ec) {
		t.Errorf("offered key shares %#04x, want X25519MLKEM768 among them", f.OfferedKeyShares)
	}
	if !strings.Contains(strings.Join(f.Notes, ";"), "no ServerHello") {
		t.Errorf("notes %q do not say the ServerHello is missing", f.Notes)
	}
}

func TestNames(t *testing.T) {
	for _, tt := range []struct {
		id         uint16
		suite, grp string
		pq         bool
	}{
		{0x1302, "TLS_AES_256_GCM_SHA384", "secp384r1", false},
		{0x11ec, "0x11EC", "X25519MLKEM768", true},
		{0x001d, "0x001D", "x25519", false},
		{0x0201, "0x0201", "MLKEM768", true},
		{0, "", "", false},
	} {
		grp := tt.grp
		if tt.id == 0x1302 {
			grp = "0x1302"
		}
		if CipherSuiteName(tt.id) != tt.suite || GroupName(tt.id) != grp || IsPostQuantum(tt.id) != tt.pq {
			t.Errorf("%#04x: %q %q %v", tt.id, CipherSuiteName(tt.id), GroupName(tt.id), IsPostQuantum(tt.id))
		}
	}
}
