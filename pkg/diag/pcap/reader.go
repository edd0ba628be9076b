package pcap

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

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

type pcapSource struct{ r *pcapgo.Reader }

func (s pcapSource) Next() ([]byte, gopacket.CaptureInfo, layers.LinkType, error) {
	data, ci, err := s.r.ZeroCopyReadPacketData()
	return data, ci, s.r.LinkType(), err
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
	switch binary.LittleEndian.Uint32(magic) {
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
		return pcapSource{r: pr}, nil
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
