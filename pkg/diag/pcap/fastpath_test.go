package pcap

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// decoderPair is a decoder with the hand-written header parser and one that
// sends every packet through gopacket; both must end with the same flows.
type decoderPair struct{ fast, slow *Decoder }

func newDecoderPair(strict bool) decoderPair {
	p := decoderPair{fast: NewDecoder(), slow: NewDecoder()}
	p.slow.noFast = true
	p.fast.strict, p.slow.strict = strict, strict
	return p
}

func (p decoderPair) packet(lt layers.LinkType, data []byte, ci gopacket.CaptureInfo) {
	p.fast.Packet(lt, data, ci)
	p.slow.Packet(lt, data, ci)
}

// readAll decodes a whole capture with both decoders; the errors must agree.
func (p decoderPair) readAll(t testing.TB, b []byte) error {
	t.Helper()
	errFast := p.fast.ReadAll(context.Background(), bytes.NewReader(b))
	errSlow := p.slow.ReadAll(context.Background(), bytes.NewReader(b))
	if (errFast == nil) != (errSlow == nil) || errFast != nil && errFast.Error() != errSlow.Error() {
		t.Fatalf("fast path error %v, gopacket path error %v", errFast, errSlow)
	}
	return errFast
}

// same fails t unless both decoders report the same flows and counters.
func (p decoderPair) same(t testing.TB) []Flow {
	t.Helper()
	ff, fs := p.fast.Flows(), p.slow.Flows()
	if !reflect.DeepEqual(ff, fs) {
		t.Fatalf("flows differ:\nfast path: %+v\ngopacket:  %+v", ff, fs)
	}
	sf, ss := p.fast.Stats(), p.slow.Stats()
	if !reflect.DeepEqual(sf, ss) {
		t.Fatalf("stats differ:\nfast path: %+v\ngopacket:  %+v", sf, ss)
	}
	return ff
}

// feedPacketList decodes the FuzzPackets input format:
// [link type index][length:2][bytes], repeated. It returns the packet count.
func feedPacketList(in []byte, packet func(layers.LinkType, []byte, gopacket.CaptureInfo)) int {
	lts := []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2, layers.LinkTypeRaw, layers.LinkTypeNull, layers.LinkTypeIPv6, 147}
	n := 0
	for len(in) >= 3 {
		lt := lts[int(in[0])%len(lts)]
		ln := min(int(in[1])<<8|int(in[2]), len(in)-3)
		data := in[3 : 3+ln]
		in = in[3+ln:]
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(int64(n), 0), CaptureLength: len(data), Length: len(data) + n%3*50}
		packet(lt, data, ci)
		n++
	}
	return n
}

// readCorpus returns the inputs kept in testdata/fuzz/<name>.
func readCorpus(t *testing.T, name string) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", name, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no corpus in testdata/fuzz/%s", name)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
			t.Fatalf("%s: not a one-argument []byte corpus entry", f)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, []byte(s))
	}
	return out
}

// TestFastPathMatchesGopacket runs every kept capture through the
// hand-written header parser and through gopacket and requires the same
// flows, classes and counters.
func TestFastPathMatchesGopacket(t *testing.T) {
	recordings(t)
	t.Run("fuzz corpus FuzzReadAll", func(t *testing.T) {
		for _, in := range readCorpus(t, "FuzzReadAll") {
			p := newDecoderPair(false)
			if p.readAll(t, in) == nil {
				p.same(t)
			}
		}
	})
	t.Run("fuzz corpus FuzzPackets", func(t *testing.T) {
		for _, in := range readCorpus(t, "FuzzPackets") {
			p := newDecoderPair(false)
			feedPacketList(in, p.packet)
			p.same(t)
		}
	})
	t.Run("conversations", func(t *testing.T) {
		classes := map[Class]bool{}
		for _, lt := range []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL2, layers.LinkTypeRaw, layers.LinkTypeNull} {
			for _, vlan := range []uint16{0, 42} {
				if vlan != 0 && lt != layers.LinkTypeEthernet {
					continue
				}
				for _, ends := range [][2]netip.AddrPort{{cli4, srv4}, {cli6, srv6}, {cli4, app4}} {
					for _, c := range []struct {
						name string
						conv []byte
					}{
						{"hbone", writeConv(t, lt, vlan, ends[0], ends[1], recHBONE)},
						{"tls", writeConv(t, lt, vlan, ends[0], ends[1], recTLS)},
						{"plain", writeConv(t, lt, vlan, ends[0], ends[1], recPlain)},
						{"sni", writeConv(t, lt, vlan, ends[0], ends[1], recSNI15008)},
						{"istio", writeConv(t, lt, vlan, ends[0], ends[1], recIstioMTLS)},
					} {
						p := newDecoderPair(true)
						if err := p.readAll(t, c.conv); err != nil {
							t.Fatalf("%s %v: %v", c.name, lt, err)
						}
						for _, fl := range p.same(t) {
							classes[fl.Class] = true
						}
					}
				}
			}
		}
		for _, want := range []Class{ClassHBONE, ClassTLS, ClassPlaintext} {
			if !classes[want] {
				t.Errorf("no %s flow among the conversations: the comparison missed a class", want)
			}
		}
	})
	t.Run("synthetic generator", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "gen.pcap")
		n, err := writeBenchCaptureN(path, 300)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		p := newDecoderPair(true)
		if err := p.readAll(t, b); err != nil {
			t.Fatal(err)
		}
		flows := p.same(t)
		if len(flows) != 300 || p.fast.Stats().TCP != uint64(n) {
			t.Fatalf("got %d flows and %d TCP packets, want 300 and %d", len(flows), p.fast.Stats().TCP, n)
		}
		if fl := flows[0]; fl.Class != ClassHBONE {
			t.Fatalf("generated flow is %s, want hbone", fl.Class)
		}
	})
	t.Run("mutated headers", func(t *testing.T) {
		// Packets of every supported shape with header bytes flipped at
		// random: lengths, versions, offsets, flags and protocols the fast
		// path must either parse exactly as gopacket does or hand over.
		var pkts [][]byte
		var lts []layers.LinkType
		for _, lt := range []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL2, layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6} {
			ends := [2]netip.AddrPort{cli4, srv4}
			if lt == layers.LinkTypeIPv6 {
				ends = [2]netip.AddrPort{cli6, srv6}
			}
			if lt == layers.LinkTypeIPv4 || lt == layers.LinkTypeIPv6 {
				// The writer has no such link type: take raw IP packets.
				src, err := NewSource(bytes.NewReader(writeConv(t, layers.LinkTypeRaw, 0, ends[0], ends[1], recHBONE)))
				if err != nil {
					t.Fatal(err)
				}
				for {
					data, _, _, err := src.Next()
					if err != nil {
						break
					}
					pkts = append(pkts, append([]byte(nil), data...))
					lts = append(lts, lt)
				}
				continue
			}
			for _, e := range [][2]netip.AddrPort{ends, {cli6, srv6}} {
				src, err := NewSource(bytes.NewReader(writeConv(t, lt, 0, e[0], e[1], recHBONE)))
				if err != nil {
					t.Fatal(err)
				}
				for {
					data, _, _, err := src.Next()
					if err != nil {
						break
					}
					pkts = append(pkts, append([]byte(nil), data...))
					lts = append(lts, lt)
				}
			}
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for round := 0; round < 200; round++ {
			p := newDecoderPair(true)
			for i, orig := range pkts {
				data := append([]byte(nil), orig...)
				for range rng.IntN(3) {
					at := rng.IntN(min(len(data), 80))
					data[at] = byte(rng.Uint32())
				}
				if rng.IntN(8) == 0 {
					data = data[:rng.IntN(len(data)+1)]
				}
				ci := gopacket.CaptureInfo{Timestamp: time.Unix(int64(i), 0), CaptureLength: len(data), Length: len(orig)}
				p.packet(lts[i], data, ci)
			}
			p.same(t)
		}
	})
}

// TestCanonicalKey compares the branch-free endpoint order with the plain
// comparison on random and edge-case endpoints.
func TestCanonicalKey(t *testing.T) {
	plain := func(s0, s1, d0, d1 uint64, sp, dp uint16) (flowKey, int) {
		if s0 < d0 || s0 == d0 && (s1 < d1 || s1 == d1 && sp <= dp) {
			return flowKey{a0: s0, a1: s1, b0: d0, b1: d1, pa: sp, pb: dp}, 0
		}
		return flowKey{a0: d0, a1: d1, b0: s0, b1: s1, pa: dp, pb: sp}, 1
	}
	rng := rand.New(rand.NewPCG(5, 6))
	vals := []uint64{0, 1, 2, 1 << 63, 1<<64 - 1, 0xffff << 32, 0xffff<<32 | 0x0a000001}
	pick := func() uint64 {
		if rng.IntN(2) == 0 {
			return vals[rng.IntN(len(vals))]
		}
		return rng.Uint64()
	}
	ports := []uint16{0, 1, 15008, 65535}
	port := func() uint16 {
		if rng.IntN(2) == 0 {
			return ports[rng.IntN(len(ports))]
		}
		return uint16(rng.Uint32())
	}
	swaps, swaps4 := 0, 0
	for i := 0; i < 200000; i++ {
		s0, s1, d0, d1, sp, dp := pick(), pick(), pick(), pick(), port(), port()
		switch rng.IntN(4) { // equal high halves (IPv4) and equal addresses are common
		case 0:
			d0 = s0
		case 1:
			d0, d1 = s0, s1
		}
		gk, gd := canonicalKey(s0, s1, d0, d1, sp, dp, false)
		wk, wd := plain(s0, s1, d0, d1, sp, dp)
		if gk != wk || gd != wd {
			t.Fatalf("canonicalKey(%x,%x,%x,%x,%d,%d) = %+v,%d; want %+v,%d", s0, s1, d0, d1, sp, dp, gk, gd, wk, wd)
		}
		swaps += gd
		// The same endpoints as IPv4-mapped addresses, through the IPv4 order.
		v4s, v4d := 0xffff<<32|s1&0xffffffff, 0xffff<<32|d1&0xffffffff
		if rng.IntN(4) == 0 {
			v4d = v4s
		}
		gk, gd = canonicalKey(0, v4s, 0, v4d, sp, dp, true)
		wk, wd = plain(0, v4s, 0, v4d, sp, dp)
		if gk != wk || gd != wd {
			t.Fatalf("IPv4 canonicalKey(%x,%x,%d,%d) = %+v,%d; want %+v,%d", v4s, v4d, sp, dp, gk, gd, wk, wd)
		}
		swaps4 += gd
	}
	if swaps < 50000 || swaps > 150000 || swaps4 < 50000 || swaps4 > 150000 {
		t.Fatalf("%d and %d (IPv4) swaps in 200000: inputs not varied enough", swaps, swaps4)
	}
}
