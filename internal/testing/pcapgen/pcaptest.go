// Package pcapgen writes synthetic but valid captures for tests and
// benchmarks: real Ethernet/SLL2/raw-IP framing, IPv4 or IPv6, correct TCP
// sequence numbers and checksums, with payload bytes supplied by the caller
// (usually recorded from a real TLS or HTTP conversation). Test-only.
package pcapgen

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Writer writes TCP conversations to a pcap stream.
type Writer struct {
	w       *pcapgo.Writer
	lt      layers.LinkType
	snaplen int
	ts      time.Time
	buf     gopacket.SerializeBuffer
	Step    time.Duration // time between packets
	MSS     int           // largest payload per segment
	VLAN    uint16        // when set (Ethernet only), packets carry an 802.1Q tag
	// QinQ, when set with VLAN (Ethernet only), is an outer 802.1ad service tag.
	QinQ uint16
	// Tunnel, when set, wraps every packet in an encapsulation between two
	// underlay hosts; with Twice each packet is written bare and then
	// wrapped, as tcpdump -i any sees it on a pod's veth and on the NIC.
	Tunnel   *Tunnel
	Twice    bool
	inner    gopacket.SerializeBuffer
	seq      uint32 // GRE sequence numbers of ERSPAN
	Packets  int
	noChecks bool
}

// NewWriter writes a pcap header for lt (Ethernet, LinuxSLL2, Null or Raw) and
// returns a writer. snaplen 0 means 262144.
func NewWriter(w io.Writer, lt layers.LinkType, snaplen int) (*Writer, error) {
	if snaplen == 0 {
		snaplen = 262144
	}
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(uint32(snaplen), lt); err != nil {
		return nil, err
	}
	return &Writer{
		w: pw, lt: lt, snaplen: snaplen,
		ts:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		buf:  gopacket.NewSerializeBuffer(),
		Step: 10 * time.Microsecond,
		MSS:  1448,
	}, nil
}

// SkipChecksums makes later packets carry zero checksums (faster to write;
// decoders ignore checksums).
func (w *Writer) SkipChecksums() { w.noChecks = true }

// Conn is one TCP connection's state.
type Conn struct {
	Client, Server netip.AddrPort
	cseq, sseq     uint32
}

// NewConn returns a connection with fixed initial sequence numbers.
func NewConn(client, server netip.AddrPort) *Conn {
	return &Conn{Client: client, Server: server, cseq: 1000, sseq: 5000}
}

// Seq returns the next sequence number of one side.
func (c *Conn) Seq(fromClient bool) uint32 {
	if fromClient {
		return c.cseq
	}
	return c.sseq
}

// Advance moves one side's sequence number by n bytes that are not written
// (bytes sent before the capture started, or written with Segment).
func Advance(c *Conn, fromClient bool, n int) {
	if fromClient {
		c.cseq += uint32(n)
	} else {
		c.sseq += uint32(n)
	}
}

// Handshake writes SYN, SYN-ACK, ACK.
func (w *Writer) Handshake(c *Conn) error {
	if err := w.Segment(c, true, c.cseq, Flags{SYN: true}, nil, 0); err != nil {
		return err
	}
	c.cseq++
	if err := w.Segment(c, false, c.sseq, Flags{SYN: true, ACK: true}, nil, 0); err != nil {
		return err
	}
	c.sseq++
	return w.Segment(c, true, c.cseq, Flags{ACK: true}, nil, 0)
}

// Send writes payload from one side in MSS-sized segments and advances its sequence.
func (w *Writer) Send(c *Conn, fromClient bool, payload []byte) error {
	for len(payload) > 0 {
		n := min(len(payload), w.MSS)
		seq := c.Seq(fromClient)
		if err := w.Segment(c, fromClient, seq, Flags{ACK: true, PSH: n == len(payload)}, payload[:n], 0); err != nil {
			return err
		}
		if fromClient {
			c.cseq += uint32(n)
		} else {
			c.sseq += uint32(n)
		}
		payload = payload[n:]
	}
	return nil
}

// Close writes FIN from the client, FIN-ACK, ACK.
func (w *Writer) Close(c *Conn) error {
	if err := w.Segment(c, true, c.cseq, Flags{FIN: true, ACK: true}, nil, 0); err != nil {
		return err
	}
	c.cseq++
	if err := w.Segment(c, false, c.sseq, Flags{FIN: true, ACK: true}, nil, 0); err != nil {
		return err
	}
	c.sseq++
	return w.Segment(c, true, c.cseq, Flags{ACK: true}, nil, 0)
}

// Flags are TCP flags.
type Flags struct{ SYN, ACK, FIN, RST, PSH bool }

// Segment writes one TCP segment with an explicit sequence number; snap, when
// above zero, cuts the recorded packet to that many bytes (as a small
// snaplen would).
func (w *Writer) Segment(c *Conn, fromClient bool, seq uint32, fl Flags, payload []byte, snap int) error {
	src, dst := c.Client, c.Server
	ack := c.sseq
	if !fromClient {
		src, dst = dst, src
		ack = c.cseq
	}
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()),
		Seq: seq, Ack: ack, SYN: fl.SYN, ACK: fl.ACK, FIN: fl.FIN, RST: fl.RST, PSH: fl.PSH,
		Window: 64240,
	}
	if !fl.ACK {
		tcp.Ack = 0
	}
	var ls []gopacket.SerializableLayer
	var netLayer gopacket.NetworkLayer
	ethType := layers.EthernetTypeIPv4
	if src.Addr().Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice(), Flags: layers.IPv4DontFragment}
		netLayer = ip
		ls = append(ls, ip)
	} else {
		ethType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		netLayer = ip
		ls = append(ls, ip)
	}
	if err := tcp.SetNetworkLayerForChecksum(netLayer); err != nil {
		return err
	}
	ls = append(ls, tcp, gopacket.Payload(payload))
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: !w.noChecks}
	if w.Tunnel != nil && w.Twice {
		if err := w.write(ls, ethType, opts, snap); err != nil {
			return err
		}
	}
	if w.Tunnel != nil {
		var err error
		if ls, ethType, err = w.wrap(ls, ethType, fromClient, opts); err != nil {
			return err
		}
	}
	return w.write(ls, ethType, opts, snap)
}

// write adds the link layer to ls and writes the packet.
func (w *Writer) write(ls []gopacket.SerializableLayer, ethType layers.EthernetType, opts gopacket.SerializeOptions, snap int) error {
	switch w.lt {
	case layers.LinkTypeEthernet:
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: ethType}
		switch {
		case w.VLAN != 0 && w.QinQ != 0:
			eth.EthernetType = layers.EthernetTypeQinQ
			ls = append([]gopacket.SerializableLayer{eth,
				&layers.Dot1Q{VLANIdentifier: w.QinQ, Type: layers.EthernetTypeDot1Q},
				&layers.Dot1Q{VLANIdentifier: w.VLAN, Type: ethType}}, ls...)
		case w.VLAN != 0:
			eth.EthernetType = layers.EthernetTypeDot1Q
			ls = append([]gopacket.SerializableLayer{eth, &layers.Dot1Q{VLANIdentifier: w.VLAN, Type: ethType}}, ls...)
		default:
			ls = append([]gopacket.SerializableLayer{eth}, ls...)
		}
	case layers.LinkTypeLinuxSLL2:
		ls = append([]gopacket.SerializableLayer{sll2Header(ethType)}, ls...)
	case layers.LinkTypeNull:
		// BSD loopback: the address family in host (here little-endian) order.
		fam := []byte{2, 0, 0, 0}
		if ethType == layers.EthernetTypeIPv6 {
			fam[0] = 24
		}
		ls = append([]gopacket.SerializableLayer{gopacket.Payload(fam)}, ls...)
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6:
	default:
		return fmt.Errorf("pcapgen: link type %v not supported", w.lt)
	}
	if err := gopacket.SerializeLayers(w.buf, opts, ls...); err != nil {
		return err
	}
	data := w.buf.Bytes()
	ci := gopacket.CaptureInfo{Timestamp: w.ts, Length: len(data), CaptureLength: len(data)}
	if snap > 0 && snap < len(data) {
		data = data[:snap]
		ci.CaptureLength = snap
	}
	if ci.CaptureLength > w.snaplen {
		data = data[:w.snaplen]
		ci.CaptureLength = w.snaplen
	}
	w.ts = w.ts.Add(w.Step)
	w.Packets++
	return w.w.WritePacket(ci, data)
}

// sll2Header is a raw SLL2 header (gopacket's LinuxSLL2 cannot serialize).
func sll2Header(ethType layers.EthernetType) gopacket.Payload {
	h := make([]byte, 20)
	h[0], h[1] = byte(ethType>>8), byte(ethType)
	h[7] = 2          // interface index
	h[8], h[9] = 0, 1 // ARPHRD_ETHER
	h[10] = 0         // packet to us
	h[11] = 6         // address length
	copy(h[12:], []byte{2, 0, 0, 0, 0, 9})
	return gopacket.Payload(h)
}

// Conversation is a recorded two-way byte stream: each chunk is one write
// by one side, in the order they happened.
type Conversation []Chunk

// Chunk is one write.
type Chunk struct {
	FromClient bool
	Data       []byte
}

// WriteConversation writes a whole connection: handshake, the chunks, close.
func (w *Writer) WriteConversation(c *Conn, conv Conversation) error {
	if err := w.Handshake(c); err != nil {
		return err
	}
	for _, ch := range conv {
		if err := w.Send(c, ch.FromClient, ch.Data); err != nil {
			return err
		}
	}
	return w.Close(c)
}
