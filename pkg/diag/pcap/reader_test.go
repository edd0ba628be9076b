package pcap

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// record is one read result, compared between the two readers.
type record struct {
	data    string
	ts      int64
	capLen  int
	length  int
	lt      layers.LinkType
	errText string
}

// readRecords reads a classic pcap through NewSource (the in-place path).
func readRecords(b []byte) ([]record, error) {
	src, err := NewSource(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	var out []record
	for len(out) < 1<<20 {
		data, ci, lt, err := src.Next()
		if err != nil {
			return append(out, record{errText: err.Error()}), nil
		}
		out = append(out, record{string(data), ci.Timestamp.UnixNano(), ci.CaptureLength, ci.Length, lt, ""})
	}
	return out, errors.New("no end")
}

// readRecordsPcapgo reads the same bytes with pcapgo alone.
func readRecordsPcapgo(b []byte) ([]record, error) {
	r, err := pcapgo.NewReader(bufio.NewReaderSize(bytes.NewReader(b), ReadBufferSize))
	if err != nil {
		return nil, err
	}
	var out []record
	for len(out) < 1<<20 {
		data, ci, err := r.ZeroCopyReadPacketData()
		if err != nil {
			return append(out, record{errText: err.Error()}), nil
		}
		out = append(out, record{string(data), ci.Timestamp.UnixNano(), ci.CaptureLength, ci.Length, r.LinkType(), ""})
	}
	return out, errors.New("no end")
}

// reencode rewrites a little-endian pcap (what the test writers produce) as
// big-endian and/or nanosecond or microsecond.
func reencode(t *testing.T, b []byte, big, nano bool) []byte {
	t.Helper()
	var inNano bool
	switch binary.LittleEndian.Uint32(b) {
	case 0xA1B2C3D4:
	case 0xA1B23C4D:
		inNano = true
	default:
		t.Fatalf("reencode wants a little-endian pcap, magic %x", b[:4])
	}
	var order binary.AppendByteOrder = binary.LittleEndian
	if big {
		order = binary.BigEndian
	}
	out := make([]byte, 0, len(b))
	magic := uint32(0xA1B2C3D4)
	if nano {
		magic = 0xA1B23C4D
	}
	out = order.AppendUint32(out, magic)
	for i := 4; i < 24; i += 4 {
		if i == 4 {
			out = order.AppendUint16(out, binary.LittleEndian.Uint16(b[4:]))
			out = order.AppendUint16(out, binary.LittleEndian.Uint16(b[6:]))
			continue
		}
		out = order.AppendUint32(out, binary.LittleEndian.Uint32(b[i:]))
	}
	for p := 24; p+16 <= len(b); {
		sec, usec := binary.LittleEndian.Uint32(b[p:]), binary.LittleEndian.Uint32(b[p+4:])
		capLen, length := binary.LittleEndian.Uint32(b[p+8:]), binary.LittleEndian.Uint32(b[p+12:])
		switch {
		case nano && !inNano:
			usec = usec*1000 + 7 // a digit the microsecond form cannot carry
		case !nano && inNano:
			usec /= 1000
		}
		for _, v := range []uint32{sec, usec, capLen, length} {
			out = order.AppendUint32(out, v)
		}
		end := min(p+16+int(capLen), len(b))
		out = append(out, b[p+16:end]...)
		p = end
	}
	return out
}

// checkSameRecords requires NewSource and pcapgo to return the same packets,
// capture infos, link types and final error for b.
func checkSameRecords(t *testing.T, name string, b []byte) int {
	t.Helper()
	got, gerr := readRecords(b)
	want, werr := readRecordsPcapgo(b)
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("%s: header: NewSource %v, pcapgo %v", name, gerr, werr)
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, pcapgo %d (last %+v vs %+v)", name, len(got), len(want), last(got), last(want))
	}
	for i := range got {
		if got[i] != want[i] {
			g, w := got[i], want[i]
			g.data, w.data = fmt.Sprintf("%d bytes", len(g.data)), fmt.Sprintf("%d bytes", len(w.data))
			t.Fatalf("%s: record %d differs: %+v, pcapgo %+v (data equal: %v)", name, i, g, w, got[i].data == want[i].data)
		}
	}
	return len(got)
}

// checkSameDecode decodes b with ReadAll and with pcapgo plus Packet.
func checkSameDecode(t *testing.T, name string, b []byte) {
	t.Helper()
	got := NewDecoder()
	if err := got.ReadAll(context.Background(), bytes.NewReader(b)); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	want := NewDecoder()
	r, err := pcapgo.NewReader(bufio.NewReaderSize(bytes.NewReader(b), ReadBufferSize))
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, ci, err := r.ZeroCopyReadPacketData()
		if err != nil {
			break
		}
		want.Packet(r.LinkType(), data, ci)
	}
	gs, ws := got.Stats(), want.Stats()
	gs.InputError, ws.InputError = "", ""
	if !reflect.DeepEqual(gs, ws) {
		t.Fatalf("%s: stats %+v, through Packet %+v", name, gs, ws)
	}
	gf, wf := got.Flows(), want.Flows()
	if len(gf) == 0 || !reflect.DeepEqual(gf, wf) {
		t.Fatalf("%s: %d flows differ from %d through Packet", name, len(gf), len(wf))
	}
}

func last(r []record) record {
	if len(r) == 0 {
		return record{}
	}
	return r[len(r)-1]
}

// TestPcapSourceMatchesPcapgo: the in-place record reader returns exactly
// what pcapgo returns, on both byte orders and timestamp resolutions,
// on files cut anywhere, with damaged record headers, with records larger
// than the read buffer, and on the whole fuzz corpus.
func TestPcapSourceMatchesPcapgo(t *testing.T) {
	recordings(t)
	var inputs [][]byte
	for _, lt := range []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL2, layers.LinkTypeRaw} {
		inputs = append(inputs, writeConv(t, lt, 0, cli4, srv4, recHBONE), writeConv(t, lt, 0, cli6, srv6, recPlain))
	}
	path := filepath.Join(t.TempDir(), "gen.pcap")
	if _, err := writeBenchCaptureN(path, 50); err != nil {
		t.Fatal(err)
	}
	gen, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	inputs = append(inputs, gen)

	records := 0
	for i, in := range inputs {
		for _, v := range []struct{ big, nano bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
			b := reencode(t, in, v.big, v.nano)
			name := fmt.Sprintf("input %d big=%v nano=%v", i, v.big, v.nano)
			records += checkSameRecords(t, name, b)
			// Cut anywhere: inside a header, inside a record, on a boundary.
			for _, cut := range []int{24, 25, 39, 40, 41, len(b) / 2, len(b) - 17, len(b) - 16, len(b) - 15, len(b) - 1} {
				if cut > 0 && cut <= len(b) {
					checkSameRecords(t, fmt.Sprintf("%s cut at %d", name, cut), b[:cut])
				}
			}
		}
	}
	if records < 1000 {
		t.Fatalf("only %d records compared", records)
	}

	t.Run("decoded through the read loop", func(t *testing.T) {
		// ReadAll takes in-window records straight from the buffer (no
		// CaptureInfo); pcapgo's records fed one by one through Packet
		// must give the same flows and counters.
		for i, in := range inputs {
			for _, v := range []struct{ big, nano bool }{{false, false}, {true, true}} {
				b := reencode(t, in, v.big, v.nano)
				for _, cut := range []int{len(b), len(b) - 9, len(b) / 3} {
					checkSameDecode(t, fmt.Sprintf("input %d big=%v nano=%v cut %d", i, v.big, v.nano, cut), b[:cut])
				}
			}
		}
	})

	t.Run("damaged record headers", func(t *testing.T) {
		base := inputs[0]
		rng := rand.New(rand.NewPCG(3, 4))
		for round := 0; round < 300; round++ {
			b := append([]byte(nil), base...)
			// Flip bytes in the length fields of the first records.
			for range 1 + rng.IntN(3) {
				p := 24
				for k := rng.IntN(6); k > 0 && p+16 <= len(b); k-- {
					p += 16 + int(binary.LittleEndian.Uint32(b[p+8:]))
				}
				if p+16 > len(b) {
					continue
				}
				b[p+8+rng.IntN(8)] = byte(rng.Uint32())
			}
			checkSameRecords(t, fmt.Sprintf("round %d", round), b)
		}
	})

	t.Run("record larger than the read buffer", func(t *testing.T) {
		var buf bytes.Buffer
		w := pcapgo.NewWriterNanos(&buf)
		if err := w.WriteFileHeader(1<<22, layers.LinkTypeRaw); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		for _, n := range []int{60, ReadBufferSize + 100, 60, ReadBufferSize - 16, 60} {
			rec := make([]byte, 16+n)
			binary.LittleEndian.PutUint32(rec[8:], uint32(n))
			binary.LittleEndian.PutUint32(rec[12:], uint32(n))
			for i := 16; i < len(rec); i++ {
				rec[i] = byte(i)
			}
			b = append(b, rec...)
		}
		if n := checkSameRecords(t, "large", b); n != 6 {
			t.Fatalf("%d results, want 5 records and the end", n)
		}
	})

	t.Run("fuzz corpus FuzzReadAll", func(t *testing.T) {
		for i, in := range readCorpus(t, "FuzzReadAll") {
			if len(in) >= 4 && binary.LittleEndian.Uint32(in) == 0x0A0D0D0A || len(in) >= 2 && in[0] == 0x1f && in[1] == 0x8b {
				continue // pcapng and gzip take other paths
			}
			got, gerr := readRecords(in)
			want, werr := readRecordsPcapgo(in)
			if gerr != nil || werr != nil {
				continue // not a classic pcap header: no records either way
			}
			if len(got) != len(want) {
				t.Fatalf("corpus %d: %d records, pcapgo %d", i, len(got), len(want))
			}
			for j := range got {
				if got[j] != want[j] {
					t.Fatalf("corpus %d record %d differs", i, j)
				}
			}
		}
	})
}
