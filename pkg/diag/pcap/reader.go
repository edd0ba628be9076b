package pcap

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// ReadBufferSize is the read buffer in front of the capture: large reads keep
// system calls out of the per-packet cost.
const ReadBufferSize = 1 << 20

// ErrNotCapture means the input is neither pcap nor pcapng.
var ErrNotCapture = errors.New("not a pcap or pcapng capture")

// Source yields packets with their link type; the data is valid until the
// next call.
type Source interface {
	Next() (data []byte, ci gopacket.CaptureInfo, lt layers.LinkType, err error)
}

// pcapSource reads classic pcap records. pcapgo validated the file header;
// records that lie whole inside the buffered window are then read in place
// (no copy, no system call, one bounds check), and every other record (one
// that crosses the end of the input, exceeds the snap length or the packet
// length, or is larger than the buffer) is left to pcapgo after the bufio
// position is brought up to date, so errors and edge cases are pcapgo's.
type pcapSource struct {
	r       *pcapgo.Reader
	br      *bufio.Reader
	lt      layers.LinkType
	big     bool  // big-endian record headers
	nanoMul int64 // 1 for nanosecond captures, 1000 for microsecond ones
	snaplen int

	// win is the buffered input (br.Peek), off the bytes of it already
	// returned but not yet discarded from br.
	win []byte
	off int
}

func newPcapSource(pr *pcapgo.Reader, br *bufio.Reader, magic uint32) *pcapSource {
	s := &pcapSource{r: pr, br: br, lt: pr.LinkType(), snaplen: int(pr.Snaplen()), nanoMul: 1000}
	switch magic {
	case 0xD4C3B2A1, 0x4D3CB2A1:
		s.big = true
	}
	if pr.Resolution() == gopacket.TimestampResolutionNanosecond {
		s.nanoMul = 1
	}
	return s
}

// header decodes a record header.
func (s *pcapSource) header(h []byte) (sec, frac, capLen, length uint32) {
	if s.big {
		return binary.BigEndian.Uint32(h[0:4]), binary.BigEndian.Uint32(h[4:8]), binary.BigEndian.Uint32(h[8:12]), binary.BigEndian.Uint32(h[12:16])
	}
	return binary.LittleEndian.Uint32(h[0:4]), binary.LittleEndian.Uint32(h[4:8]), binary.LittleEndian.Uint32(h[8:12]), binary.LittleEndian.Uint32(h[12:16])
}

// next returns the record at the window's offset when it is whole and
// pcapgo would accept it; need is how many bytes it takes (0: unknown).
func (s *pcapSource) next() (rec []byte, ci gopacket.CaptureInfo, need int, ok bool) {
	rec, sec, nsec, capLen, length, need, ok := s.nextRaw()
	if ok {
		ci = gopacket.CaptureInfo{Timestamp: time.Unix(sec, nsec).UTC(), CaptureLength: capLen, Length: length}
	}
	return rec, ci, need, ok
}

// nextRaw is next without building a CaptureInfo (the decoder's read loop
// takes the fields as they are).
func (s *pcapSource) nextRaw() (rec []byte, sec, nsec int64, capLen, length, need int, ok bool) {
	w := s.win[s.off:]
	if len(w) < 16 {
		return nil, 0, 0, 0, 0, 16, false
	}
	sec32, frac, cl, ln := s.header(w)
	if int(cl) > s.snaplen || cl > ln || int(cl) > ReadBufferSize-16 {
		return nil, 0, 0, 0, 0, 0, false
	}
	end := 16 + int(cl)
	if len(w) < end {
		return nil, 0, 0, 0, 0, end, false
	}
	s.off += end
	// As pcapgo: the fraction times the factor, in 32 bits.
	return w[16:end:end], int64(sec32), int64(frac * uint32(s.nanoMul)), int(cl), int(ln), 0, true
}

// sync discards the bytes already returned from br.
func (s *pcapSource) sync() {
	if s.off > 0 {
		_, _ = s.br.Discard(s.off)
	}
	s.win, s.off = nil, 0
}

func (s *pcapSource) Next() ([]byte, gopacket.CaptureInfo, layers.LinkType, error) {
	rec, ci, need, ok := s.next()
	if ok {
		return rec, ci, s.lt, nil
	}
	if need > 0 {
		// The record is cut by the window's end: refill (the records
		// returned before are no longer needed) and look again.
		s.sync()
		_, _ = s.br.Peek(need)
		s.win, _ = s.br.Peek(s.br.Buffered())
		if rec, ci, _, ok = s.next(); ok {
			return rec, ci, s.lt, nil
		}
	}
	s.sync()
	data, ci, err := s.r.ZeroCopyReadPacketData()
	return data, ci, s.lt, err
}

type ngSource struct {
	r      *pcapgo.NgReader
	ifaces []layers.LinkType
}

func (s *ngSource) Next() ([]byte, gopacket.CaptureInfo, layers.LinkType, error) {
	data, ci, err := s.r.ZeroCopyReadPacketData()
	if err != nil {
		return data, ci, 0, err
	}
	// Interfaces may be declared between packets and sections may redefine
	// them, so the cache is refreshed whenever the interface count changes.
	if n := s.r.NInterfaces(); n != len(s.ifaces) || ci.InterfaceIndex >= len(s.ifaces) {
		s.ifaces = s.ifaces[:0]
		for i := 0; i < n; i++ {
			iface, ierr := s.r.Interface(i)
			if ierr != nil {
				break
			}
			s.ifaces = append(s.ifaces, iface.LinkType)
		}
	}
	if ci.InterfaceIndex < 0 || ci.InterfaceIndex >= len(s.ifaces) {
		return data, ci, 0xffff, nil
	}
	return data, ci, s.ifaces[ci.InterfaceIndex], nil
}

// NewSource reads the capture header from r (pcap in either byte order and
// either timestamp resolution, pcapng with any number of interfaces and
// sections, optionally gzip-compressed) and returns a packet source.
func NewSource(r io.Reader) (Source, error) {
	br := bufio.NewReaderSize(r, ReadBufferSize)
	magic, err := br.Peek(4)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read capture header: %w: the input is empty or shorter than a header", ErrNotCapture)
		}
		return nil, fmt.Errorf("read capture header: %w", err)
	}
	if magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read gzip capture: %w", err)
		}
		return NewSource(zr)
	}
	m := binary.LittleEndian.Uint32(magic)
	switch m {
	case 0x0A0D0D0A:
		nr, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true, SkipUnknownVersion: true})
		if err != nil {
			return nil, fmt.Errorf("read pcapng header: %w", err)
		}
		return &ngSource{r: nr}, nil
	case 0xA1B2C3D4, 0xD4C3B2A1, 0xA1B23C4D, 0x4D3CB2A1:
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read pcap header: %w", err)
		}
		return newPcapSource(pr, br, m), nil
	}
	return nil, fmt.Errorf("read capture header: %w (magic %#08x); write captures with tcpdump -w or tshark -w", ErrNotCapture, binary.BigEndian.Uint32(magic))
}

// ReadAll feeds every packet of r into d until the end of the input or ctx
// ends. A damaged or cut record after the header ends the read without an
// error: the packets before it count, and Stats.InputError says what
// happened. Only an unreadable header (or ctx) returns an error.
func (d *Decoder) ReadAll(ctx context.Context, r io.Reader) error {
	src, err := NewSource(r)
	if err != nil {
		return err
	}
	return d.ReadSource(ctx, src)
}

// ReadSource feeds packets from src into d, like ReadAll.
func (d *Decoder) ReadSource(ctx context.Context, src Source) error {
	if d.Progress != nil {
		defer func() { d.Progress(d.stats.Packets) }()
	}
	for {
		done, err := d.readLoop(ctx, src)
		if done {
			return err
		}
		// A packet panicked inside the decoder: it was counted; go on.
	}
}

// readLoop decodes until the input ends (done) or a packet panics (not done).
// The recover sits here, once per loop, instead of once per packet.
func (d *Decoder) readLoop(ctx context.Context, src Source) (done bool, err error) {
	inPacket := false
	if !d.strict {
		defer func() {
			r := recover()
			switch {
			case r == nil:
			case inPacket:
				d.recovered++
				d.stats.Undecodable++
				done, err = false, nil
			default:
				// The source itself failed: retrying could spin forever.
				done, err = true, fmt.Errorf("read capture: the packet reader failed: %v", r)
			}
		}()
	}
	cancelled := ctx.Done()
	ps, _ := src.(*pcapSource)
	for i := 0; ; i++ {
		if i&1023 == 0 && cancelled != nil {
			select {
			case <-cancelled:
				return true, ctx.Err()
			default:
			}
		}
		if i&7 == 0 && i > 0 && d.Progress != nil {
			d.Progress(d.stats.Packets)
		}
		if ps != nil {
			// Classic pcap records inside the read window skip the
			// interface call and the CaptureInfo.
			if rec, sec, nsec, capLen, length, _, ok := ps.nextRaw(); ok {
				inPacket = true
				d.raw(ps.lt, rec, sec*1e9+nsec, capLen, length)
				inPacket = false
				continue
			}
		}
		data, ci, lt, err := src.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return true, nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				d.stats.InputError = "capture ends inside a packet record (cut file or capture still being written)"
				return true, nil
			}
			d.stats.InputError = err.Error()
			return true, nil
		}
		inPacket = true
		d.packet(lt, data, &ci)
		inPacket = false
	}
}
