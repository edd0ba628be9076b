package pcap

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
)

// FuzzReadAll feeds arbitrary bytes as a capture file. The decoder must
// return (an error or flows) quickly and never panic; the kept corpus is in
// testdata/fuzz/FuzzReadAll. Run: go test -fuzz FuzzReadAll ./pkg/diag/pcap
func FuzzReadAll(f *testing.F) {
	recordings(f)
	f.Add(writeConv(f, layers.LinkTypeEthernet, 0, cli4, srv4, recHBONE[:3]))
	f.Add(writeConv(f, layers.LinkTypeLinuxSLL2, 0, cli6, srv6, recPlain))
	f.Add(writeConv(f, layers.LinkTypeRaw, 0, cli4, app4, recTLS[:2]))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := newDecoderPair(true) // a panic must fail the fuzz, not be counted
		errc := make(chan error, 1)
		go func() {
			errc <- p.fast.ReadAll(context.Background(), bytes.NewReader(b))
		}()
		select {
		case err := <-errc:
			if err != nil {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("decoder did not finish %d bytes in 5s", len(b))
		}
		if err := p.slow.ReadAll(context.Background(), bytes.NewReader(b)); err != nil {
			t.Fatalf("the gopacket path failed where the fast path did not: %v", err)
		}
		// The hand-written header parser and gopacket must agree.
		flows := p.same(t)
		st := p.fast.Stats()
		if uint64(len(flows)) > st.TCP {
			t.Fatalf("%d flows from %d TCP packets", len(flows), st.TCP)
		}
		var pk uint64
		for _, fl := range flows {
			pk += fl.Packets + fl.DuplicateViews
			if fl.Class == "" {
				t.Fatalf("flow without class: %+v", fl)
			}
		}
		if pk != st.TCP {
			t.Fatalf("flow packets %d != TCP packets %d", pk, st.TCP)
		}
	})
}

// FuzzPackets feeds arbitrary packets of every supported link type into one
// decoder, so state carried between packets (flows, reassembly, hellos) is
// fuzzed too. The input is a list of [link type index][length:2][bytes].
func FuzzPackets(f *testing.F) {
	recordings(f)
	seed := writeConv(f, layers.LinkTypeEthernet, 0, cli4, srv4, recHBONE[:4])
	src, err := NewSource(bytes.NewReader(seed))
	if err != nil {
		f.Fatal(err)
	}
	var all []byte
	for {
		data, _, _, err := src.Next()
		if err != nil {
			break
		}
		all = append(all, 0, byte(len(data)>>8), byte(len(data)))
		all = append(all, data...)
	}
	f.Add(all)
	// Tunnel seeds: the first packets of each encapsulation, and a capture
	// that sees every packet twice (bare and in VXLAN).
	for _, tc := range tunnelCases() {
		f.Add(packetList(f, writeTunnelCapture(f, tc, 400), 8))
	}
	f.Add([]byte{3, 0, 20, 0x45, 0, 0, 40, 0, 0, 0x20, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2})
	f.Fuzz(func(t *testing.T, in []byte) {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				panic("decoder did not finish in 5s")
			}
		}()
		p := newDecoderPair(true)
		d := p.fast
		n := feedPacketList(in, p.packet)
		// The hand-written header parser and gopacket must agree.
		p.same(t)
		var pk uint64
		for _, fl := range d.Flows() {
			pk += fl.Packets + fl.DuplicateViews
		}
		if st := d.Stats(); st.Packets != uint64(n) || pk != st.TCP {
			t.Fatalf("stats %+v after %d packets, flow packets %d", st, n, pk)
		}
	})
}

// packetList turns the first n packets of a capture into FuzzPackets input.
func packetList(t testing.TB, capture []byte, n int) []byte {
	t.Helper()
	src, err := NewSource(bytes.NewReader(capture))
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for i := 0; i < n; i++ {
		data, _, _, err := src.Next()
		if err != nil {
			break
		}
		out = append(out, 0, byte(len(data)>>8), byte(len(data)))
		out = append(out, data...)
	}
	return out
}

// TestTunnelMutations is a deterministic stand-in for fuzzing the tunnel
// layers in the normal suite: the tunnel seeds with random bytes changed,
// cut or repeated must decode without a panic, and both header parsers
// must agree.
func TestTunnelMutations(t *testing.T) {
	recordings(t)
	rng := rand.New(rand.NewPCG(12, 34))
	rounds := 300
	if testing.Short() {
		rounds = 60
	}
	for _, tc := range tunnelCases() {
		seed := packetList(t, writeTunnelCapture(t, tc, 400), 12)
		for i := 0; i < rounds; i++ {
			in := append([]byte(nil), seed...)
			for j := rng.IntN(8) + 1; j > 0; j-- {
				switch k := rng.IntN(len(in)); rng.IntN(3) {
				case 0:
					in[k] = byte(rng.IntN(256))
				case 1:
					in = in[:k]
				default:
					in = append(in[:k:k], append(in[k:min(len(in), k+40)], in[k:]...)...)
				}
				if len(in) == 0 {
					break
				}
			}
			p := newDecoderPair(true)
			n := feedPacketList(in, p.packet)
			flows := p.same(t)
			var pk uint64
			for _, fl := range flows {
				pk += fl.Packets + fl.DuplicateViews
			}
			if st := p.fast.Stats(); st.Packets != uint64(n) || pk != st.TCP {
				t.Fatalf("%s round %d: stats %+v after %d packets, flow packets %d", tc.name, i, st, n, pk)
			}
		}
	}
}
