package pcap

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/hbonesim"
)

// realVXLANFixtures are the captures TestRealVXLAN keeps in testdata when
// KAMB_UPDATE_FIXTURES=1, so TestVXLANFixtures checks the decoder on real
// kernel VXLAN without root.
const (
	fixtureUnderlay = "testdata/vxlan-8472-underlay.pcap"
	fixtureAny      = "testdata/vxlan-8472-any-sll2.pcap"
)

// TestRealVXLAN makes real traffic between two network namespaces joined
// by kernel VXLAN devices (UDP 8472, Linux's default) over a veth underlay:
// real TLS 1.3 mutual-auth HBONE (h2 to 15008) and real plaintext HTTP
// between the overlay addresses. It captures the underlay with tcpdump (only
// VXLAN-wrapped packets) and, at the same time, tcpdump -i any in the client
// namespace (every packet twice: bare on the VXLAN device, wrapped on the
// veth), and checks both against tshark.
func TestRealVXLAN(t *testing.T) {
	hbonesim.Require(t, "real VXLAN test", "tcpdump", "tshark")
	pid := os.Getpid()
	topo, err := hbonesim.NewTopology(fmt.Sprintf("v%d", pid%10000), 150+pid%50)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(topo.Close)
	overlay, err := topo.VXLAN(42, 8472, 150+pid%50)
	if err != nil {
		if strings.Contains(err.Error(), "not supported") || strings.Contains(err.Error(), "Unknown device type") {
			msg := "this kernel has no vxlan module: " + err.Error()
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		t.Fatal(err)
	}
	sc, err := hbonesim.StartScenario(overlay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sc.Close)
	client, legacy := overlay.AddrA[0], overlay.AddrA[1]

	dir := t.TempDir()
	under, anyPath := filepath.Join(dir, "underlay.pcap"), filepath.Join(dir, "any.pcap")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tdU, err := hbonesim.StartTcpdumpFilter(ctx, topo.B, topo.VethB, under, "udp port 8472")
	if err != nil {
		t.Fatal(err)
	}
	tdA, err := hbonesim.StartTcpdumpFilter(ctx, topo.A, "any", anyPath, "tcp or udp port 8472", "-y", "LINUX_SLL2")
	if err != nil {
		_, _ = tdU.Stop()
		t.Fatal(err)
	}
	terr := sc.HBONE(ctx, client, 1, 2)
	if terr == nil {
		terr = sc.PlainHTTP(ctx, legacy)
	}
	outU, errU := tdU.Stop()
	outA, errA := tdA.Stop()
	if terr != nil {
		t.Fatalf("traffic through the VXLAN overlay: %v", terr)
	}
	if errU != nil || errA != nil {
		t.Fatalf("tcpdump: %v %s; %v %s", errU, outU, errA, outA)
	}
	if os.Getenv("KAMB_UPDATE_FIXTURES") == "1" {
		copyFile(t, under, fixtureUnderlay)
		copyFile(t, anyPath, fixtureAny)
	}
	hbone := netip.AddrPortFrom(netip.MustParseAddr(overlay.AddrB), hbonesim.Port).String()
	http := netip.AddrPortFrom(netip.MustParseAddr(overlay.AddrB), hbonesim.HTTPPort).String()
	checkVXLANCapture(t, under, false, client, legacy, hbone, http)
	checkVXLANCapture(t, anyPath, true, client, legacy, hbone, http)
}

// TestVXLANFixtures checks the decoder on the real VXLAN captures kept in
// testdata (made by TestRealVXLAN; see fixtureUnderlay).
func TestVXLANFixtures(t *testing.T) {
	requireTshark(t)
	for _, f := range []struct {
		path string
		any  bool
	}{{fixtureUnderlay, false}, {fixtureAny, true}} {
		if _, err := os.Stat(f.path); err != nil {
			t.Fatalf("fixture %s: %v (KAMB_UPDATE_FIXTURES=1 go test -run TestRealVXLAN ./pkg/diag/pcap writes it)", f.path, err)
		}
		// The fixture's overlay addresses: 10.98.<subnet>.1 (HBONE client),
		// .3 (plaintext client) and .2 (server), whatever subnet it was made with.
		flows := decodeFileT(t, f.path)
		var server netip.Addr
		for _, fl := range flows {
			if fl.Server.Port() == HBONEPort {
				server = fl.Server.Addr()
			}
		}
		if !server.IsValid() {
			t.Fatalf("%s: no flow to port %d: %+v", f.path, HBONEPort, flows)
		}
		b := server.As4()
		client := netip.AddrFrom4([4]byte{b[0], b[1], b[2], 1}).String()
		legacy := netip.AddrFrom4([4]byte{b[0], b[1], b[2], 3}).String()
		checkVXLANCapture(t, f.path, f.any, client, legacy,
			netip.AddrPortFrom(server, hbonesim.Port).String(), netip.AddrPortFrom(server, hbonesim.HTTPPort).String())
	}
}

func decodeFileT(t *testing.T, path string) []Flow {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, flows := decodeBytes(t, b)
	return flows
}

// checkVXLANCapture checks one capture of the scenario: one HBONE
// connection from client and one plaintext HTTP connection from legacy,
// both inside VXLAN, conversations and hellos as tshark reads them.
func checkVXLANCapture(t *testing.T, path string, twice bool, client, legacy, hbone, http string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder()
	if err := d.ReadAll(context.Background(), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	flows, st := d.Flows(), d.Stats()
	name := filepath.Base(path)
	t.Logf("%s: %d packets, %d TCP, %d encapsulated, %v", name, st.Packets, st.TCP, st.Encapsulated, st.Encapsulations)
	var sawHBONE, sawPlain bool
	for _, f := range flows {
		t.Logf("%s: %s -> %s %s encap %q packets %d duplicate views %d retransmissions %d suite %s group %s",
			name, f.Client, f.Server, f.Class, f.Encap, f.Packets, f.DuplicateViews, f.Retransmissions, CipherSuiteName(f.CipherSuite), GroupName(f.KeyShareGroup))
		switch {
		case f.Client.Addr().String() == client && f.Server.String() == hbone:
			sawHBONE = true
			if f.Class != ClassHBONE || !f.ServerHello || f.NegotiatedVersion != 0x0304 {
				t.Errorf("%s: HBONE flow %s, ServerHello %v, version %#04x (notes %q)", name, f.Class, f.ServerHello, f.NegotiatedVersion, f.Notes)
			}
			if !IsPostQuantum(f.KeyShareGroup) {
				t.Errorf("%s: Go's default key exchange is X25519MLKEM768, decoder read %s", name, GroupName(f.KeyShareGroup))
			}
		case f.Client.Addr().String() == legacy && f.Server.String() == http:
			sawPlain = true
			if f.Class != ClassPlaintext {
				t.Errorf("%s: plaintext HTTP flow classed %s", name, f.Class)
			}
		default:
			t.Errorf("%s: unexpected flow %s -> %s", name, f.Client, f.Server)
		}
		if f.Encap != "vxlan" {
			t.Errorf("%s: %s -> %s encap %q, want vxlan", name, f.Client, f.Server, f.Encap)
		}
		if twice && (f.DuplicateViews == 0 || f.Retransmissions != 0) {
			t.Errorf("%s: %s -> %s: %d duplicate views, %d retransmissions; every packet was seen on both devices", name, f.Client, f.Server, f.DuplicateViews, f.Retransmissions)
		}
	}
	if !sawHBONE || !sawPlain {
		t.Errorf("%s: HBONE flow seen %v, plaintext flow seen %v", name, sawHBONE, sawPlain)
	}
	if st.EncapUndecodable != 0 {
		t.Errorf("%s: %d encapsulated packets not opened", name, st.EncapUndecodable)
	}
	if got, want := flowConversations(flows), tsharkConversations(t, path); strings.Join(got, ";") != strings.Join(want, ";") {
		t.Errorf("%s: conversations: decoder %q, tshark %q", name, got, want)
	}
	checkServerHellos(t, path, flows)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
