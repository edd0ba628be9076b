package pcap

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/pcapgen"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/hbonesim"
)

// recorded conversations are made once per test binary: real TLS 1.3
// handshakes from crypto/tls, real HTTP/2 CONNECT frames.
var (
	recOnce                                 sync.Once
	recErr                                  error
	recHBONE, recTLS, recPlain, recSNI15008 pcapgen.Conversation
	recIstioMTLS                            pcapgen.Conversation
)

func conv(chunks []hbonesim.Chunk) pcapgen.Conversation {
	out := make(pcapgen.Conversation, len(chunks))
	for i, c := range chunks {
		out[i] = pcapgen.Chunk{FromClient: c.FromClient, Data: c.Data}
	}
	return out
}

func recordings(t testing.TB) {
	t.Helper()
	recOnce.Do(func() {
		ca, err := hbonesim.NewCA("cluster.local")
		if err != nil {
			recErr = err
			return
		}
		x, _ := ca.Issue("a", "x")
		y, _ := ca.Issue("b", "y")
		web, _ := ca.IssueDNS("web.example.test")
		c, err := hbonesim.RecordHBONE(ca, x, y, ca.SPIFFEID("b", "y"), "10.99.0.2:8080", []byte("hello through the tunnel"))
		if err != nil {
			recErr = err
			return
		}
		recHBONE = conv(c)
		cli := &tls.Config{ServerName: "web.example.test", RootCAs: ca.Pool, NextProtos: []string{"http/1.1"}}
		c, err = hbonesim.RecordTLS(cli, &tls.Config{Certificates: []tls.Certificate{web}, NextProtos: []string{"http/1.1"}}, []byte("GET / HTTP/1.1\r\n\r\n"))
		if err != nil {
			recErr = err
			return
		}
		recTLS = conv(c)
		// An HBONE-looking client that sends SNI: not what ztunnel does.
		cfg := ca.ClientConfig(x, ca.SPIFFEID("b", "y"))
		cfg.ServerName = "sneaky.example.test"
		c, err = hbonesim.RecordTLS(cfg, ca.ServerConfig(y), []byte("x"))
		if err != nil {
			recErr = err
			return
		}
		recSNI15008 = conv(c)
		// Sidecar mTLS: TLS on the app port with Istio ALPN.
		scli := ca.ClientConfig(x, ca.SPIFFEID("b", "y"))
		scli.NextProtos = []string{"istio-peer-exchange", "istio"}
		ssrv := ca.ServerConfig(y)
		ssrv.NextProtos = []string{"istio"}
		c, err = hbonesim.RecordTLS(scli, ssrv, []byte("app bytes"))
		if err != nil {
			recErr = err
			return
		}
		recIstioMTLS = conv(c)
		c, err = hbonesim.RecordPlain("10.99.0.2:8080", "/")
		if err != nil {
			recErr = err
			return
		}
		recPlain = conv(c)
	})
	if recErr != nil {
		t.Fatalf("record conversations: %v", recErr)
	}
}

var (
	cli4 = netip.MustParseAddrPort("10.99.0.1:40001")
	srv4 = netip.MustParseAddrPort("10.99.0.2:15008")
	app4 = netip.MustParseAddrPort("10.99.0.2:8080")
	cli6 = netip.MustParseAddrPort("[fd00:99::1]:40002")
	srv6 = netip.MustParseAddrPort("[fd00:99::2]:15008")
)

func decodeBytes(t testing.TB, b []byte) (*Decoder, []Flow) {
	t.Helper()
	d := NewDecoder()
	if err := d.ReadAll(context.Background(), bytes.NewReader(b)); err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	return d, d.Flows()
}

func writeConv(t testing.TB, lt layers.LinkType, vlan uint16, client, server netip.AddrPort, c pcapgen.Conversation) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapgen.NewWriter(&buf, lt, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.VLAN = vlan
	if err := w.WriteConversation(pcapgen.NewConn(client, server), c); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func oneFlow(t *testing.T, flows []Flow) Flow {
	t.Helper()
	if len(flows) != 1 {
		t.Fatalf("got %d flows, want 1: %+v", len(flows), flows)
	}
	return flows[0]
}

func TestClassifyRecordedConversations(t *testing.T) {
	recordings(t)
	tests := []struct {
		name           string
		lt             layers.LinkType
		vlan           uint16
		client, server netip.AddrPort
		conv           func() pcapgen.Conversation
		class          Class
		version        string
		alpn           []string
		sni            string
		evidence       string
		note           string
	}{
		{name: "hbone ethernet ipv4", lt: layers.LinkTypeEthernet, client: cli4, server: srv4, conv: func() pcapgen.Conversation { return recHBONE }, class: ClassHBONE, version: "1.3", alpn: []string{"h2"}},
		{name: "hbone sll2 ipv6", lt: layers.LinkTypeLinuxSLL2, client: cli6, server: srv6, conv: func() pcapgen.Conversation { return recHBONE }, class: ClassHBONE, version: "1.3", alpn: []string{"h2"}},
		{name: "hbone raw ipv4", lt: layers.LinkTypeRaw, client: cli4, server: srv4, conv: func() pcapgen.Conversation { return recHBONE }, class: ClassHBONE, version: "1.3", alpn: []string{"h2"}},
		{name: "hbone raw ipv6", lt: layers.LinkTypeRaw, client: cli6, server: srv6, conv: func() pcapgen.Conversation { return recHBONE }, class: ClassHBONE, version: "1.3", alpn: []string{"h2"}},
		{name: "hbone vlan", lt: layers.LinkTypeEthernet, vlan: 42, client: cli4, server: srv4, conv: func() pcapgen.Conversation { return recHBONE }, class: ClassHBONE, version: "1.3", alpn: []string{"h2"}},
		{name: "hbone bsd loopback", lt: layers.LinkTypeNull, client: cli6, server: srv6, conv: func() pcapgen.Conversation { return recHBONE }, class: ClassHBONE, version: "1.3", alpn: []string{"h2"}},
		{name: "plain tls with sni", lt: layers.LinkTypeEthernet, client: cli4, server: netip.MustParseAddrPort("10.99.0.2:8443"), conv: func() pcapgen.Conversation { return recTLS }, class: ClassTLS, version: "1.3", alpn: []string{"http/1.1"}, sni: "web.example.test"},
		{name: "sni on 15008 is not hbone", lt: layers.LinkTypeEthernet, client: cli4, server: srv4, conv: func() pcapgen.Conversation { return recSNI15008 }, class: ClassTLS, version: "1.3", alpn: []string{"h2"}, sni: "sneaky.example.test", note: "carries SNI"},
		{name: "hbone bytes on an app port are tls", lt: layers.LinkTypeEthernet, client: cli4, server: app4, conv: func() pcapgen.Conversation { return recHBONE }, class: ClassTLS, version: "1.3", alpn: []string{"h2"}},
		{name: "sidecar istio mtls", lt: layers.LinkTypeEthernet, client: cli4, server: app4, conv: func() pcapgen.Conversation { return recIstioMTLS }, class: ClassTLS, version: "1.3", alpn: []string{"istio-peer-exchange", "istio"}},
		{name: "plaintext http", lt: layers.LinkTypeLinuxSLL2, client: cli4, server: app4, conv: func() pcapgen.Conversation { return recPlain }, class: ClassPlaintext, evidence: "client sent HTTP/1 request or response"},
		{name: "plaintext on 15008", lt: layers.LinkTypeEthernet, client: cli4, server: srv4, conv: func() pcapgen.Conversation { return recPlain }, class: ClassPlaintext, evidence: "HTTP/1"},
		{name: "h2 preface", lt: layers.LinkTypeEthernet, client: cli4, server: app4, conv: func() pcapgen.Conversation {
			return pcapgen.Conversation{{FromClient: true, Data: []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")}}
		}, class: ClassPlaintext, evidence: "HTTP/2 connection preface"},
		{name: "binary non-tls", lt: layers.LinkTypeEthernet, client: cli4, server: app4, conv: func() pcapgen.Conversation {
			return pcapgen.Conversation{{FromClient: true, Data: []byte{0, 0, 0, 8, 4, 210, 22, 47}}}
		}, class: ClassPlaintext, evidence: "not a TLS record"},
		{name: "server speaks first", lt: layers.LinkTypeEthernet, client: cli4, server: netip.MustParseAddrPort("10.99.0.2:25"), conv: func() pcapgen.Conversation {
			return pcapgen.Conversation{{FromClient: false, Data: []byte("220 mail ESMTP ready\r\n")}}
		}, class: ClassPlaintext, evidence: "server sent"},
		{name: "no payload", lt: layers.LinkTypeEthernet, client: cli4, server: srv4, conv: func() pcapgen.Conversation { return nil }, class: ClassNoPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := writeConv(t, tt.lt, tt.vlan, tt.client, tt.server, tt.conv())
			d, flows := decodeBytes(t, b)
			f := oneFlow(t, flows)
			if f.Class != tt.class {
				t.Fatalf("class = %s, want %s (notes %v, evidence %q)", f.Class, tt.class, f.Notes, f.Evidence)
			}
			if f.Client != tt.client || f.Server != tt.server {
				t.Errorf("direction = %s -> %s, want %s -> %s", f.Client, f.Server, tt.client, tt.server)
			}
			if f.TLSVersion != tt.version {
				t.Errorf("TLS version = %q, want %q", f.TLSVersion, tt.version)
			}
			if !slices.Equal(f.ALPN, tt.alpn) {
				t.Errorf("ALPN = %q, want %q", f.ALPN, tt.alpn)
			}
			if f.SNI != tt.sni {
				t.Errorf("SNI = %q, want %q", f.SNI, tt.sni)
			}
			if !strings.Contains(f.Evidence, tt.evidence) {
				t.Errorf("evidence = %q, want it to contain %q", f.Evidence, tt.evidence)
			}
			if tt.note != "" && !strings.Contains(strings.Join(f.Notes, ";"), tt.note) {
				t.Errorf("notes = %q, want one containing %q", f.Notes, tt.note)
			}
			if tt.class == ClassHBONE || tt.class == ClassTLS {
				if f.ClientHellos != 1 || f.ServerHellos != 1 {
					t.Errorf("hellos = %d/%d, want 1/1", f.ClientHellos, f.ServerHellos)
				}
			}
			st := d.Stats()
			if st.Undecodable != 0 || st.TCP != st.Packets || int(f.Packets) != int(st.Packets) {
				t.Errorf("stats = %+v, flow packets %d: every packet should be decoded TCP of this flow", st, f.Packets)
			}
			if !f.HandshakeSeen {
				t.Errorf("HandshakeSeen = false, the SYN is in the capture")
			}
		})
	}
}

// writeSegments writes the conversation with custom segmentation: the first
// client chunk (the ClientHello) is cut into pieces written in order, with a
// duplicate and a reordering, and an optional snaplen on every packet.
func writeSegments(t *testing.T, c pcapgen.Conversation, pieces []int, order []int, snap int, lt layers.LinkType) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapgen.NewWriter(&buf, lt, 0)
	if err != nil {
		t.Fatal(err)
	}
	cn := pcapgen.NewConn(cli4, srv4)
	if err := w.Handshake(cn); err != nil {
		t.Fatal(err)
	}
	ch := c[0].Data
	type seg struct {
		off, n int
	}
	var segs []seg
	off := 0
	for _, p := range pieces {
		segs = append(segs, seg{off, min(p, len(ch)-off)})
		off += p
	}
	if off < len(ch) {
		segs = append(segs, seg{off, len(ch) - off})
	}
	base := cn.Seq(true)
	for _, i := range order {
		s := segs[i]
		err := w.Segment(cn, true, base+uint32(s.off), pcapgen.Flags{ACK: true}, ch[s.off:s.off+s.n], snap)
		if err != nil {
			t.Fatal(err)
		}
	}
	// Advance the connection past the hello, then send the rest normally.
	pcapgen.Advance(cn, true, len(ch))
	for _, x := range c[1:] {
		if err := w.Send(cn, x.FromClient, x.Data); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestSplitReorderedAndTruncatedHello(t *testing.T) {
	recordings(t)
	chLen := len(recHBONE[0].Data)
	if chLen < 1200 {
		t.Logf("ClientHello is %d bytes (no post-quantum key share?)", chLen)
	}
	tests := []struct {
		name    string
		pieces  []int
		order   []int
		snap    int
		class   Class
		retrans bool
		ooo     bool
		note    string
	}{
		{name: "split in three", pieces: []int{3, 500}, order: []int{0, 1, 2}, class: ClassHBONE},
		{name: "header split", pieces: []int{2, 3}, order: []int{0, 1, 2}, class: ClassHBONE},
		{name: "reordered", pieces: []int{400, 400}, order: []int{2, 0, 1}, class: ClassHBONE, ooo: true},
		{name: "reordered and duplicated", pieces: []int{400, 400}, order: []int{1, 0, 1, 2, 0}, class: ClassHBONE, ooo: true, retrans: true},
		{name: "retransmitted", pieces: []int{600}, order: []int{0, 0, 1, 1}, class: ClassHBONE, retrans: true},
		{name: "small snaplen", pieces: []int{1448}, order: []int{0, 1}, snap: 14 + 20 + 32 + 120, class: ClassTLS, note: "cut short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := writeSegments(t, recHBONE, tt.pieces, tt.order, tt.snap, layers.LinkTypeEthernet)
			d, flows := decodeBytes(t, b)
			f := oneFlow(t, flows)
			if f.Class != tt.class {
				t.Fatalf("class = %s, want %s (notes %v)", f.Class, tt.class, f.Notes)
			}
			if tt.class == ClassHBONE && (f.ClientHellos != 1 || !slices.Equal(f.ALPN, []string{"h2"}) || f.TLSVersion != "1.3") {
				t.Errorf("hello = %d %q %q, want 1 [h2] 1.3", f.ClientHellos, f.ALPN, f.TLSVersion)
			}
			if tt.retrans != (f.Retransmissions > 0) {
				t.Errorf("retransmissions = %d, want >0: %v", f.Retransmissions, tt.retrans)
			}
			if tt.ooo != (f.OutOfOrder > 0) {
				t.Errorf("out of order = %d, want >0: %v", f.OutOfOrder, tt.ooo)
			}
			if tt.note != "" && !strings.Contains(strings.Join(f.Notes, ";"), tt.note) {
				t.Errorf("notes = %q, want %q", f.Notes, tt.note)
			}
			if tt.snap > 0 && d.Stats().Truncated == 0 {
				t.Errorf("no packet counted as truncated")
			}
		})
	}
}

func TestMidStreamCapture(t *testing.T) {
	recordings(t)
	for _, tc := range []struct {
		name  string
		c     pcapgen.Conversation
		class Class
	}{
		{name: "tls application data", c: recHBONE, class: ClassTLS},
		{name: "plaintext", c: recPlain, class: ClassPlaintext},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := pcapgen.NewWriter(&buf, layers.LinkTypeEthernet, 0)
			if err != nil {
				t.Fatal(err)
			}
			cn := pcapgen.NewConn(cli4, srv4)
			// The handshake happened before the capture started.
			pcapgen.Advance(cn, true, 1)
			pcapgen.Advance(cn, false, 1)
			skip := 0
			if tc.class == ClassTLS {
				// Skip the hellos: the capture starts at application data.
				skip = 3
			}
			for i, x := range tc.c {
				if i < skip {
					pcapgen.Advance(cn, x.FromClient, len(x.Data))
					continue
				}
				if err := w.Send(cn, x.FromClient, x.Data); err != nil {
					t.Fatal(err)
				}
			}
			_, flows := decodeBytes(t, buf.Bytes())
			f := oneFlow(t, flows)
			if f.Class != tc.class {
				t.Fatalf("class = %s, want %s (notes %v)", f.Class, tc.class, f.Notes)
			}
			if f.HandshakeSeen {
				t.Errorf("HandshakeSeen = true without a SYN")
			}
			// No SYN: the lower port (15008) is taken as the server.
			if f.Server != srv4 {
				t.Errorf("server = %s, want %s", f.Server, srv4)
			}
		})
	}
}

// toBigEndianMicro rewrites a little-endian nanosecond pcap as a big-endian
// microsecond one (what some capture tools on big-endian hosts write).
func toBigEndianMicro(t *testing.T, le []byte) []byte {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(le))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	hdr := make([]byte, 24)
	binary.BigEndian.PutUint32(hdr[0:], 0xA1B2C3D4)
	binary.BigEndian.PutUint16(hdr[4:], 2)
	binary.BigEndian.PutUint16(hdr[6:], 4)
	binary.BigEndian.PutUint32(hdr[16:], r.Snaplen())
	binary.BigEndian.PutUint32(hdr[20:], uint32(r.LinkType()))
	out.Write(hdr)
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		ph := make([]byte, 16)
		binary.BigEndian.PutUint32(ph[0:], uint32(ci.Timestamp.Unix()))
		binary.BigEndian.PutUint32(ph[4:], uint32(ci.Timestamp.Nanosecond()/1000))
		binary.BigEndian.PutUint32(ph[8:], uint32(ci.CaptureLength))
		binary.BigEndian.PutUint32(ph[12:], uint32(ci.Length))
		out.Write(ph)
		out.Write(data)
	}
	return out.Bytes()
}

func TestFileFormats(t *testing.T) {
	recordings(t)
	eth := writeConv(t, layers.LinkTypeEthernet, 0, cli4, srv4, recHBONE)
	sll2 := writeConv(t, layers.LinkTypeLinuxSLL2, 0, netip.MustParseAddrPort("10.99.0.3:40003"), app4, recPlain)

	t.Run("big-endian microseconds", func(t *testing.T) {
		_, flows := decodeBytes(t, toBigEndianMicro(t, eth))
		f := oneFlow(t, flows)
		if f.Class != ClassHBONE {
			t.Fatalf("class = %s", f.Class)
		}
		want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		if !f.First.Equal(want) {
			t.Errorf("first = %s, want %s", f.First, want)
		}
	})

	t.Run("pcapng two interfaces nanoseconds", func(t *testing.T) {
		var buf bytes.Buffer
		ng, err := pcapgo.NewNgWriterInterface(&buf, pcapgo.NgInterface{Name: "eth0", LinkType: layers.LinkTypeEthernet, SnapLength: 262144, TimestampResolution: 9}, pcapgo.DefaultNgWriterOptions)
		if err != nil {
			t.Fatal(err)
		}
		id, err := ng.AddInterface(pcapgo.NgInterface{Name: "any", LinkType: layers.LinkTypeLinuxSLL2, SnapLength: 262144, TimestampResolution: 9})
		if err != nil {
			t.Fatal(err)
		}
		r1, _ := pcapgo.NewReader(bytes.NewReader(eth))
		r2, _ := pcapgo.NewReader(bytes.NewReader(sll2))
		for done1, done2 := false, false; !done1 || !done2; {
			if !done1 {
				data, ci, err := r1.ReadPacketData()
				if err != nil {
					done1 = true
				} else {
					ci.InterfaceIndex = 0
					ci.Timestamp = ci.Timestamp.Add(7 * time.Nanosecond)
					if err := ng.WritePacket(ci, data); err != nil {
						t.Fatal(err)
					}
				}
			}
			if !done2 {
				data, ci, err := r2.ReadPacketData()
				if err != nil {
					done2 = true
				} else {
					ci.InterfaceIndex = id
					if err := ng.WritePacket(ci, data); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if err := ng.Flush(); err != nil {
			t.Fatal(err)
		}
		d, flows := decodeBytes(t, buf.Bytes())
		if len(flows) != 2 {
			t.Fatalf("flows = %d, want 2", len(flows))
		}
		classes := map[Class]Flow{}
		for _, f := range flows {
			classes[f.Class] = f
		}
		hb, ok := classes[ClassHBONE]
		if !ok || classes[ClassPlaintext].Server != app4 {
			t.Fatalf("classes = %v", flows)
		}
		if hb.First.Nanosecond() != 7 {
			t.Errorf("nanosecond timestamp lost: %s", hb.First)
		}
		if st := d.Stats(); !slices.Contains(st.LinkTypes, "Ethernet") || !slices.Contains(st.LinkTypes, "Linux SLL2") || st.Undecodable != 0 {
			t.Errorf("stats = %+v", st)
		}
	})

	t.Run("gzip", func(t *testing.T) {
		gz := gzipBytes(t, eth)
		_, flows := decodeBytes(t, gz)
		if oneFlow(t, flows).Class != ClassHBONE {
			t.Fatal("gzip capture not decoded")
		}
	})
}

func TestBadInput(t *testing.T) {
	recordings(t)
	good := writeConv(t, layers.LinkTypeEthernet, 0, cli4, srv4, recHBONE)
	t.Run("not a capture", func(t *testing.T) {
		d := NewDecoder()
		err := d.ReadAll(context.Background(), strings.NewReader("this is not a capture file at all"))
		if !errors.Is(err, ErrNotCapture) {
			t.Fatalf("err = %v, want ErrNotCapture", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		d := NewDecoder()
		if err := d.ReadAll(context.Background(), bytes.NewReader(nil)); !errors.Is(err, ErrNotCapture) {
			t.Fatalf("err = %v, want ErrNotCapture", err)
		}
	})
	t.Run("cut mid packet", func(t *testing.T) {
		d, flows := decodeBytes(t, good[:len(good)/2+7])
		if d.Stats().InputError == "" || len(flows) != 1 || d.Stats().Packets == 0 {
			t.Fatalf("stats = %+v flows=%d: want decoded packets and an input error", d.Stats(), len(flows))
		}
	})
	t.Run("unknown link type", func(t *testing.T) {
		b := append([]byte(nil), good...)
		binary.LittleEndian.PutUint32(b[20:], 147) // USER0
		d, flows := decodeBytes(t, b)
		st := d.Stats()
		if len(flows) != 0 || st.UnsupportedLinkType != st.Packets || st.Packets == 0 {
			t.Fatalf("stats = %+v flows=%d", st, len(flows))
		}
	})
	t.Run("zero and huge snaplen", func(t *testing.T) {
		for _, snap := range []uint32{0, 0xffffffff} {
			b := append([]byte(nil), good...)
			binary.LittleEndian.PutUint32(b[16:], snap)
			_, flows := decodeBytes(t, b)
			if oneFlow(t, flows).Class != ClassHBONE {
				t.Fatalf("snaplen %d: not decoded", snap)
			}
		}
	})
	t.Run("garbage packets", func(t *testing.T) {
		var buf bytes.Buffer
		w := pcapgo.NewWriter(&buf)
		_ = w.WriteFileHeader(65535, layers.LinkTypeEthernet)
		junk := [][]byte{
			{},
			{1, 2, 3},
			bytes.Repeat([]byte{0xff}, 60),
			append(make([]byte, 12), 0x08, 0x00, 0x45, 0, 0, 10), // IPv4 with a length below its header
			append(make([]byte, 12), 0x08, 0x00, 0x4f, 0, 0xff, 0xff, 0, 0, 0, 0, 64, 6),
			append(make([]byte, 12), 0x86, 0xdd, 0x60, 0, 0, 0, 0, 20, 6, 64),
		}
		for _, j := range junk {
			_ = w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: len(j), Length: len(j)}, j)
		}
		d, flows := decodeBytes(t, buf.Bytes())
		st := d.Stats()
		if len(flows) != 0 || st.Packets != uint64(len(junk)) || st.Undecodable+st.NonIP == 0 {
			t.Fatalf("stats = %+v flows = %v", st, flows)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := NewDecoder().ReadAll(ctx, bytes.NewReader(good)); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
}

type panickySource struct{ n int }

func (p *panickySource) Next() ([]byte, gopacket.CaptureInfo, layers.LinkType, error) {
	p.n++
	if p.n > 3 {
		panic("broken reader")
	}
	return []byte{1, 2, 3}, gopacket.CaptureInfo{CaptureLength: 3, Length: 3}, layers.LinkTypeEthernet, nil
}

func TestPanickingSourceEndsWithError(t *testing.T) {
	d := NewDecoder()
	done := make(chan error, 1)
	go func() { done <- d.ReadSource(context.Background(), &panickySource{}) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "packet reader failed") {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadSource spins on a panicking source")
	}
	if st := d.Stats(); st.Packets != 3 || st.Undecodable != 3 {
		t.Fatalf("stats = %+v, want 3 undecodable packets before the failure", st)
	}
}
