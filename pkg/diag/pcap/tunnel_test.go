package pcap

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/pcapgen"
)

var (
	underA  = netip.MustParseAddr("192.168.50.1")
	underB  = netip.MustParseAddr("192.168.50.2")
	under6A = netip.MustParseAddr("fd00:50::1")
	under6B = netip.MustParseAddr("fd00:50::2")
	plain4  = netip.MustParseAddrPort("10.99.0.3:40003")
	plain6  = netip.MustParseAddrPort("[fd00:99::3]:40004")
	app6    = netip.MustParseAddrPort("[fd00:99::2]:8080")
)

// tunnelCase is one synthetic capture: an HBONE connection and a plaintext
// HTTP connection between two pods, carried in an encapsulation.
type tunnelCase struct {
	name       string
	tunnel     *pcapgen.Tunnel
	vlan, qinq uint16
	v6         bool // inner IPv6
	twice      bool // each packet also bare (tcpdump -i any)
	encap      string
	opts       Options
	fixture    string // kept in testdata when set
}

func tunnelCases() []tunnelCase {
	tun := func(k pcapgen.TunnelKind, port uint16) *pcapgen.Tunnel {
		return &pcapgen.Tunnel{Kind: k, Client: underA, Server: underB, Port: port, VNI: 42}
	}
	return []tunnelCase{
		{name: "vxlan 4789", tunnel: tun(pcapgen.VXLAN, 0), encap: "vxlan", fixture: "testdata/tunnel-vxlan4789.pcap"},
		{name: "vxlan 8472 ipv6 inside", tunnel: tun(pcapgen.VXLAN, 8472), v6: true, encap: "vxlan"},
		{name: "vxlan on an extra port", tunnel: tun(pcapgen.VXLAN, testExtraVXLANPort), encap: "vxlan", opts: Options{VXLANPorts: []uint16{testExtraVXLANPort}}},
		{name: "vxlan in a vlan", tunnel: tun(pcapgen.VXLAN, 0), vlan: 7, encap: "vlan+vxlan"},
		{name: "geneve", tunnel: tun(pcapgen.Geneve, 0), encap: "geneve", fixture: "testdata/tunnel-geneve.pcap"},
		{name: "gre ipv4", tunnel: tun(pcapgen.GRE, 0), encap: "gre", fixture: "testdata/tunnel-gre.pcap"},
		{name: "gre ipv6", tunnel: tun(pcapgen.GRE, 0), v6: true, encap: "gre"},
		{name: "gre ethernet", tunnel: tun(pcapgen.GRETEB, 0), encap: "gre"},
		{name: "erspan i", tunnel: tun(pcapgen.ERSPANI, 0), encap: "erspan", fixture: "testdata/tunnel-erspan1.pcap"},
		{name: "geneve ipv4 inside", tunnel: tun(pcapgen.GeneveIP, 0), encap: "geneve", fixture: "testdata/tunnel-geneve-ip.pcap"},
		{name: "geneve ipv6 inside", tunnel: tun(pcapgen.GeneveIP, 0), v6: true, encap: "geneve"},
		{name: "geneve ipv4 inside over an ipv6 underlay", tunnel: &pcapgen.Tunnel{Kind: pcapgen.GeneveIP, Client: under6A, Server: under6B, VNI: 5}, encap: "geneve"},
		{name: "erspan ii", tunnel: tun(pcapgen.ERSPANII, 0), encap: "erspan", fixture: "testdata/tunnel-erspan2.pcap"},
		{name: "erspan iii", tunnel: tun(pcapgen.ERSPANIII, 0), encap: "erspan", fixture: "testdata/tunnel-erspan3.pcap"},
		{name: "ipip", tunnel: tun(pcapgen.IPIP, 0), encap: "ipip", fixture: "testdata/tunnel-ipip.pcap"},
		{name: "6in4", tunnel: tun(pcapgen.SixInFour, 0), v6: true, encap: "6in4", fixture: "testdata/tunnel-6in4.pcap"},
		{name: "vlan", vlan: 100, encap: "vlan"},
		{name: "qinq", vlan: 100, qinq: 200, encap: "vlan+vlan", fixture: "testdata/tunnel-qinq.pcap"},
		{name: "vxlan over an ipv6 underlay", tunnel: &pcapgen.Tunnel{Kind: pcapgen.VXLAN, Client: under6A, Server: under6B, VNI: 5}, encap: "vxlan"},
		{name: "gre over an ipv6 underlay", tunnel: &pcapgen.Tunnel{Kind: pcapgen.GRE, Client: under6A, Server: under6B, VNI: 5}, v6: true, encap: "gre"},
		{name: "4in6", tunnel: &pcapgen.Tunnel{Kind: pcapgen.IPIP, Client: under6A, Server: under6B}, encap: "4in6"},
		{name: "ip6ip6", tunnel: &pcapgen.Tunnel{Kind: pcapgen.SixInFour, Client: under6A, Server: under6B}, v6: true, encap: "ip6ip6"},
		{name: "vxlan seen twice", tunnel: tun(pcapgen.VXLAN, 8472), twice: true, encap: "vxlan"},
	}
}

// writeTunnelCapture writes the HBONE and the plaintext connection.
func writeTunnelCapture(t testing.TB, tc tunnelCase, mss int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapgen.NewWriter(&buf, layers.LinkTypeEthernet, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.VLAN, w.QinQ, w.Tunnel, w.Twice = tc.vlan, tc.qinq, tc.tunnel, tc.twice
	if mss > 0 {
		w.MSS = mss
	}
	cli, srv, pc, app := cli4, srv4, plain4, app4
	if tc.v6 {
		cli, srv, pc, app = cli6, srv6, plain6, app6
	}
	if err := w.WriteConversation(pcapgen.NewConn(cli, srv), recHBONE); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteConversation(pcapgen.NewConn(pc, app), recPlain); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestTunnels decodes HBONE and plaintext inside every encapsulation and
// checks conversations and hellos against tshark.
func TestTunnels(t *testing.T) {
	recordings(t)
	requireTshark(t)
	for _, tc := range tunnelCases() {
		t.Run(tc.name, func(t *testing.T) {
			b := writeTunnelCapture(t, tc, 0)
			if tc.fixture != "" && os.Getenv("KAMB_UPDATE_FIXTURES") == "1" {
				if err := os.WriteFile(tc.fixture, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			checkTunnelCapture(t, tc, b)
		})
	}
}

// TestTunnelFixtures checks the synthetic tunnel captures kept in testdata
// (written by TestTunnels with KAMB_UPDATE_FIXTURES=1) for tools and
// commands that read capture files.
func TestTunnelFixtures(t *testing.T) {
	requireTshark(t)
	for _, tc := range tunnelCases() {
		if tc.fixture == "" {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			b, err := os.ReadFile(tc.fixture)
			if err != nil {
				t.Fatalf("fixture: %v (KAMB_UPDATE_FIXTURES=1 go test -run TestTunnels ./pkg/diag/pcap writes it)", err)
			}
			checkTunnelCapture(t, tc, b)
		})
	}
}

// checkTunnelCapture decodes a capture of one HBONE and one plaintext
// connection inside tc's encapsulation and checks it against tshark.
func checkTunnelCapture(t *testing.T, tc tunnelCase, b []byte) {
	t.Helper()
	path := writeTemp(t, "tunnel.pcap", b)
	d := NewDecoderWith(tc.opts)
	if err := d.ReadAll(t.Context(), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	flows := d.Flows()
	st := d.Stats()
	if len(flows) != 2 {
		t.Fatalf("%d flows, want 2 (stats %+v): %+v", len(flows), st, flows)
	}
	hb, pl := flows[0], flows[1]
	if hb.Class != ClassHBONE || pl.Class != ClassPlaintext {
		t.Errorf("classes %s and %s, want hbone and plaintext (notes %q %q)", hb.Class, pl.Class, hb.Notes, pl.Notes)
	}
	for _, f := range flows {
		if f.Encap != tc.encap {
			t.Errorf("%s -> %s: encap %q, want %q", f.Client, f.Server, f.Encap, tc.encap)
		}
		if f.Retransmissions != 0 {
			t.Errorf("%s -> %s: %d retransmissions, want 0 (the second view is not one)", f.Client, f.Server, f.Retransmissions)
		}
		if tc.twice && f.DuplicateViews != f.Packets {
			t.Errorf("%s -> %s: %d duplicate views of %d packets, want every packet seen twice", f.Client, f.Server, f.DuplicateViews, f.Packets)
		}
	}
	if !hb.ServerHello || hb.KeyShareGroup != 0x11ec {
		t.Errorf("hbone flow: ServerHello %v group %s", hb.ServerHello, GroupName(hb.KeyShareGroup))
	}
	if st.NonTCP != 0 || st.Undecodable != 0 || st.EncapUndecodable != 0 {
		t.Errorf("stats %+v: every packet should open", st)
	}
	if !slices.Contains(st.Encapsulations, tc.encap) {
		t.Errorf("stats encapsulations %q lack %q", st.Encapsulations, tc.encap)
	}
	// The oracle: tshark's TCP conversations and ServerHellos.
	if got, want := flowConversations(flows), tsharkConversations(t, path); !slices.Equal(got, want) {
		t.Errorf("conversations: decoder %q, tshark %q", got, want)
	}
	checkServerHellos(t, path, flows)
}

// flowConversations lists flows as tshark's conversation table names them.
func flowConversations(flows []Flow) []string {
	var out []string
	for _, f := range flows {
		// tshark writes IPv6 endpoints without brackets.
		a := f.Client.Addr().String() + ":" + strconv.Itoa(int(f.Client.Port()))
		b := f.Server.Addr().String() + ":" + strconv.Itoa(int(f.Server.Port()))
		if b < a {
			a, b = b, a
		}
		out = append(out, a+" <-> "+b)
	}
	slices.Sort(out)
	return out
}

// tsharkConversations reads `tshark -z conv,tcp`: one "a <-> b" per TCP
// conversation, endpoints in string order.
func tsharkConversations(t *testing.T, path string) []string {
	t.Helper()
	args := append(tsharkArgs(path), "-q", "-z", "conv,tcp")
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark -z conv,tcp on %s: %v", path, err)
	}
	var convs []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[1] != "<->" {
			continue
		}
		a, b := f[0], f[2]
		if b < a {
			a, b = b, a
		}
		convs = append(convs, a+" <-> "+b)
	}
	slices.Sort(convs)
	return convs
}

// TestVXLANOnAnUnknownPort: VXLAN on a port the decoder was not told about
// is not opened, but the stats name the port so a report can say which
// option to add.
func TestVXLANOnAnUnknownPort(t *testing.T) {
	recordings(t)
	tc := tunnelCase{tunnel: &pcapgen.Tunnel{Kind: pcapgen.VXLAN, Client: underA, Server: underB, Port: testExtraVXLANPort, VNI: 9}}
	b := writeTunnelCapture(t, tc, 0)
	d, flows := decodeBytes(t, b)
	st := d.Stats()
	if len(flows) != 0 || st.TCP != 0 || st.NonTCP != st.Packets {
		t.Fatalf("%d flows, stats %+v: nothing should be opened", len(flows), st)
	}
	if st.VXLANLike != st.Packets || !slices.Equal(st.VXLANLikePorts, []uint16{testExtraVXLANPort}) {
		t.Errorf("VXLAN-like %d of %d packets, ports %v; want all, on [%d]", st.VXLANLike, st.Packets, st.VXLANLikePorts, testExtraVXLANPort)
	}
	// Geneve is opened as Geneve, never counted as VXLAN-like.
	d2, _ := decodeBytes(t, writeTunnelCapture(t, tunnelCase{tunnel: &pcapgen.Tunnel{Kind: pcapgen.Geneve, Client: underA, Server: underB}}, 0))
	if st := d2.Stats(); st.VXLANLike != 0 {
		t.Errorf("Geneve counted as VXLAN-like: %+v", st)
	}
}

// TestRetransmissionSeenTwice: with every packet seen bare and in VXLAN, a
// real retransmission (the same segment sent again) is one retransmission,
// and each second view is dropped, not counted as one.
func TestRetransmissionSeenTwice(t *testing.T) {
	recordings(t)
	var buf bytes.Buffer
	w, err := pcapgen.NewWriter(&buf, layers.LinkTypeEthernet, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Tunnel = &pcapgen.Tunnel{Kind: pcapgen.VXLAN, Client: underA, Server: underB, Port: 8472, VNI: 3}
	w.Twice = true
	c := pcapgen.NewConn(plain4, app4)
	if err := w.Handshake(c); err != nil {
		t.Fatal(err)
	}
	req := recPlain[0].Data
	seq := c.Seq(true)
	if err := w.Send(c, true, req); err != nil {
		t.Fatal(err)
	}
	// The same bytes again, as a retransmission timer would send them.
	if err := w.Segment(c, true, seq, pcapgen.Flags{ACK: true, PSH: true}, req, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(c); err != nil {
		t.Fatal(err)
	}
	d, flows := decodeBytes(t, buf.Bytes())
	f := oneFlow(t, flows)
	if f.Retransmissions != 1 || f.DuplicateViews != f.Packets || f.Packets != 8 {
		t.Errorf("retransmissions %d, duplicate views %d of %d packets; want 1, all, 8 (stats %+v)", f.Retransmissions, f.DuplicateViews, f.Packets, d.Stats())
	}
	if f.Class != ClassPlaintext || f.Encap != "vxlan" || !strings.Contains(strings.Join(f.Notes, ";"), "both unencapsulated and inside vxlan") {
		t.Errorf("class %s encap %q notes %q", f.Class, f.Encap, f.Notes)
	}
}
