package pcap

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/pcapgen"
)

// TestTLSAfterPreamble: a plaintext opening (HTTP CONNECT, SOCKS, STARTTLS)
// followed by a real TLS 1.3 handshake is plaintext on the wire, with the
// TLS details read after the preamble and checked against tshark.
func TestTLSAfterPreamble(t *testing.T) {
	recordings(t)
	requireTshark(t)
	cli := func(s string) pcapgen.Chunk { return pcapgen.Chunk{FromClient: true, Data: []byte(s)} }
	srv := func(s string) pcapgen.Chunk { return pcapgen.Chunk{Data: []byte(s)} }
	tests := []struct {
		name     string
		port     uint16
		preamble pcapgen.Conversation
		want     string
	}{
		{name: "http connect", port: 3128, want: "http-connect", preamble: pcapgen.Conversation{
			cli("CONNECT web.example.test:443 HTTP/1.1\r\nHost: web.example.test:443\r\n\r\n"),
			srv("HTTP/1.1 200 Connection established\r\n\r\n"),
		}},
		{name: "socks5", port: 1080, want: "socks5", preamble: pcapgen.Conversation{
			cli("\x05\x01\x00"), srv("\x05\x00"),
			cli("\x05\x01\x00\x01\x0a\x63\x00\x02\x01\xbb"), srv("\x05\x00\x00\x01\x0a\x63\x00\x02\x01\xbb"),
		}},
		{name: "socks4", port: 1080, want: "socks4", preamble: pcapgen.Conversation{
			cli("\x04\x01\x01\xbb\x0a\x63\x00\x02user\x00"), srv("\x00\x5a\x01\xbb\x0a\x63\x00\x02"),
		}},
		{name: "smtp starttls", port: 25, want: "starttls", preamble: pcapgen.Conversation{
			srv("220 mail.example.test ESMTP\r\n"), cli("EHLO client.example.test\r\n"),
			srv("250-mail.example.test\r\n250 STARTTLS\r\n"), cli("STARTTLS\r\n"), srv("220 2.0.0 Ready to start TLS\r\n"),
		}},
		{name: "postgres sslrequest", port: 5432, want: "starttls", preamble: pcapgen.Conversation{
			{FromClient: true, Data: []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}}, srv("S"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server := netip.AddrPortFrom(srv4.Addr(), tt.port)
			conv := append(append(pcapgen.Conversation{}, tt.preamble...), recTLS...)
			b := writeConv(t, layers.LinkTypeEthernet, 0, cli4, server, conv)
			_, flows := decodeBytes(t, b)
			f := oneFlow(t, flows)
			if f.Class != ClassPlaintext || f.Preamble != tt.want {
				t.Fatalf("class %s preamble %q, want plaintext %q (evidence %q, notes %q)", f.Class, f.Preamble, tt.want, f.Evidence, f.Notes)
			}
			if !strings.Contains(f.Evidence, "preamble") {
				t.Errorf("evidence %q does not name the preamble", f.Evidence)
			}
			if f.SNI != "web.example.test" || !f.ServerHello || f.NegotiatedVersion != 0x0304 || f.CipherSuite == 0 {
				t.Errorf("TLS after the preamble not read: SNI %q ServerHello %v version %#04x suite %#04x", f.SNI, f.ServerHello, f.NegotiatedVersion, f.CipherSuite)
			}
			path := writeTemp(t, "preamble.pcap", b)
			if n := checkServerHellos(t, path, flows); n != 1 {
				t.Errorf("tshark and the decoder agree on %d ServerHellos, want 1", n)
			}
		})
	}
	// The same openings without TLS after them stay plain plaintext.
	for _, tt := range tests {
		b := writeConv(t, layers.LinkTypeEthernet, 0, cli4, netip.AddrPortFrom(srv4.Addr(), tt.port), tt.preamble)
		_, flows := decodeBytes(t, b)
		if f := oneFlow(t, flows); f.Class != ClassPlaintext || f.Preamble != "" || f.ServerHello {
			t.Errorf("%s without TLS: class %s preamble %q ServerHello %v", tt.name, f.Class, f.Preamble, f.ServerHello)
		}
	}
}
