// Package pcap decodes packet captures (pcap and pcapng, read with the pure-Go
// pcapgo) into TCP flows and classifies each flow by what crossed the wire:
// HBONE (ztunnel's mutual TLS tunnel on port 15008), other TLS, plaintext, or
// no payload. It has no Kubernetes imports; pkg/diag/mtls maps flows to
// workloads and judges them.
//
// The hot path is allocation free: common headers (Ethernet, Linux SLL2 or
// raw IP, then plain IPv4 or IPv6, then TCP) are parsed by hand from the
// zero-copy bytes, anything else by one DecodingLayerParser per first layer
// with preallocated layers and a reused decoded slice, zero-copy packet reads,
// and per-flow state that allocates only when a flow is created, when a hello
// spans several segments, or when segments arrive out of order.
package pcap

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"sort"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// HBONEPort is the port ztunnel accepts HBONE connections on.
const HBONEPort = 15008

// Class says what a flow carried.
type Class string

// Flow classes.
const (
	// ClassHBONE is a TLS 1.3 connection to port 15008 whose ClientHello
	// offers ALPN h2 without SNI, followed only by encrypted records.
	ClassHBONE Class = "hbone"
	// ClassTLS is any other TLS connection.
	ClassTLS Class = "tls"
	// ClassPlaintext is readable payload, or bytes that are not TLS records,
	// before any TLS.
	ClassPlaintext Class = "plaintext"
	// ClassNoPayload is a connection that carried no payload (handshake only,
	// refused, or idle).
	ClassNoPayload Class = "no-payload"
	// ClassUnknown is a flow captured mid-stream whose bytes could not be
	// placed: encrypted-looking, but no record boundary was found.
	ClassUnknown Class = "unknown"
)

// Flow is one TCP connection as seen in the capture.
type Flow struct {
	Client netip.AddrPort `json:"client"`
	Server netip.AddrPort `json:"server"`
	Class  Class          `json:"class"`
	// TLSVersion is the version the server selected, or the highest the
	// client offered when no ServerHello was seen ("1.3", "1.2", ...).
	TLSVersion string   `json:"tlsVersion,omitempty"`
	ALPN       []string `json:"alpn,omitempty"` // protocols the client offered
	SNI        string   `json:"sni,omitempty"`
	// ClientHellos and ServerHellos count the hellos seen (a retry makes two ClientHellos).
	ClientHellos int `json:"clientHellos"`
	ServerHellos int `json:"serverHellos"`
	// STUB (issue 12, judging branch): the decoder branch fills these in;
	// the lead keeps the decoder's definitions at merge.
	ServerHello       bool     `json:"serverHello,omitempty"`
	NegotiatedVersion uint16   `json:"negotiatedVersion,omitempty"`
	CipherSuite       uint16   `json:"cipherSuite,omitempty"`
	KeyShareGroup     uint16   `json:"keyShareGroup,omitempty"`
	OfferedGroups     []uint16 `json:"offeredGroups,omitempty"`
	Encap             string   `json:"encap,omitempty"`
	Preamble          string   `json:"preamble,omitempty"`
	// Evidence says what made a flow plaintext.
	Evidence string `json:"evidence,omitempty"`
	// Notes explain anything that weakens or qualifies the class.
	Notes []string `json:"notes,omitempty"`

	Packets         uint64    `json:"packets"`
	Bytes           uint64    `json:"bytes"`        // on the wire, both directions
	PayloadBytes    uint64    `json:"payloadBytes"` // TCP payload, both directions
	ClientPayload   uint64    `json:"clientPayload"`
	ServerPayload   uint64    `json:"serverPayload"`
	HandshakeSeen   bool      `json:"handshakeSeen"` // the TCP SYN was captured
	Retransmissions uint32    `json:"retransmissions,omitempty"`
	OutOfOrder      uint32    `json:"outOfOrder,omitempty"`
	First           time.Time `json:"first"`
	Last            time.Time `json:"last"`
}

// Stats counts what the decoder saw that is not a flow.
type Stats struct {
	Packets     uint64 `json:"packets"`
	Bytes       uint64 `json:"bytes"`
	TCP         uint64 `json:"tcp"`
	NonTCP      uint64 `json:"nonTCP"`    // IP packets of other protocols (UDP, ICMP, ...)
	NonIP       uint64 `json:"nonIP"`     // ARP, LLDP and other link-layer traffic
	Fragments   uint64 `json:"fragments"` // IP fragments (not reassembled)
	Undecodable uint64 `json:"undecodable"`
	Truncated   uint64 `json:"truncated"` // packets cut short by the snap length
	Flows       int    `json:"flows"`
	// LinkTypes lists the link types met, in order of appearance.
	LinkTypes []string `json:"linkTypes,omitempty"`
	// UnsupportedLinkType counts packets whose link type this decoder does not read.
	UnsupportedLinkType uint64 `json:"unsupportedLinkType,omitempty"`
	// InputError is set when the capture ended with a damaged or cut record;
	// the packets before it were decoded.
	InputError string `json:"inputError,omitempty"`
}

// flowKey is the canonical 5-tuple (TCP only): addresses as two 64-bit
// halves of their 16-byte form (IPv4 mapped into IPv6), the lower endpoint
// first. Integer fields keep comparison and hashing cheap.
type flowKey struct {
	a0, a1, b0, b1 uint64
	pa, pb         uint16
}

// hash mixes the key into 64 bits; the flow table is keyed by the hash
// (a map with a 64-bit key uses the runtime's fast path) with the full key
// compared on every hit.
func (k *flowKey) hash() uint64 {
	const m1, m2 = 0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F
	h := (k.a0 ^ bits.RotateLeft64(k.a1, 23)) * m1
	h ^= (k.b0 ^ bits.RotateLeft64(k.b1, 41)) * m2
	h ^= (uint64(k.pa)<<16 | uint64(k.pb)) * m1
	h ^= h >> 31
	h *= m2
	return h ^ h>>29
}

// canonicalKey orders the two endpoints, lower (address, port) first, and
// says whether the source was the higher one (dir 1). It has no branches
// on the order: packets of a flow alternate directions, so such a branch
// would be mispredicted about every other packet. v4 says both addresses
// are IPv4 (s0 and d0 zero, s1 and d1 below 2^48), which one subtraction
// orders. tcpPacket uses its inlinable parts directly.
func canonicalKey(s0, s1, d0, d1 uint64, sp, dp uint16, v4 bool) (flowKey, int) {
	var swap uint64
	if v4 {
		swap = endpointSwapV4(s1, d1, sp, dp)
	} else {
		swap = endpointSwap(s0, s1, d0, d1, sp, dp)
	}
	var k flowKey
	k.fill(s0, s1, d0, d1, sp, dp, swap)
	return k, int(swap)
}

// endpointSwap is 1 when the source (s0, s1, sp) sorts after the
// destination, else 0, computed from borrows.
func endpointSwap(s0, s1, d0, d1 uint64, sp, dp uint16) uint64 {
	_, lt0 := bits.Sub64(s0, d0, 0) // 1 when s0 < d0
	_, gt0 := bits.Sub64(d0, s0, 0) // 1 when s0 > d0
	_, lt1 := bits.Sub64(s1, d1, 0)
	_, gt1 := bits.Sub64(d1, s1, 0)
	_, gtp := bits.Sub64(uint64(dp), uint64(sp), 0)
	// The source is higher when it is on the first differing field.
	return gt0 | (1^lt0^gt0)&(gt1|(1^lt1^gt1)&gtp)
}

// endpointSwapV4 is endpointSwap for IPv4 endpoints: an IPv4-mapped low
// half is below 2^48, so address and port pack into one word.
func endpointSwapV4(s1, d1 uint64, sp, dp uint16) uint64 {
	_, gt := bits.Sub64(d1<<16|uint64(dp), s1<<16|uint64(sp), 0)
	return gt
}

// fill sets k to the endpoints, swapped when swap is 1.
func (k *flowKey) fill(s0, s1, d0, d1 uint64, sp, dp uint16, swap uint64) {
	m := -swap // all ones to swap
	x0, x1, xp := (s0^d0)&m, (s1^d1)&m, (sp^dp)&uint16(m)
	k.a0, k.a1, k.b0, k.b1, k.pa, k.pb = s0^x0, s1^x1, d0^x0, d1^x1, sp^xp, dp^xp
}

// eq compares two keys field by field (inlined; the compiler's struct
// equality is a call). The low halves, which differ most, go first.
func (k *flowKey) eq(o *flowKey) bool {
	return k.a1 == o.a1 && k.b1 == o.b1 && k.pa == o.pa && k.pb == o.pb && k.a0 == o.a0 && k.b0 == o.b0
}

const flowCacheSize = 4096 // direct-mapped cache of recently used flows

type flowState struct {
	chain    *flowState // next flow with the same hash
	key      flowKey
	v4       bool
	client   int8 // index of the client half, -1 until a SYN says
	firstDir int8
	dirs     [2]half
	first    int64
	last     int64
}

// first layers the decoder starts from.
const (
	firstEthernet = iota
	firstSLL
	firstSLL2
	firstLoopback
	firstIPv4
	firstIPv6
	numFirst
)

// Decoder turns packets into classified flows. It is not safe for
// concurrent use.
type Decoder struct {
	eth  layers.Ethernet
	sll  layers.LinuxSLL
	sll2 layers.LinuxSLL2
	lo   layers.Loopback
	vlan layers.Dot1Q
	ip4  layers.IPv4
	ip6  layers.IPv6
	tcp  layers.TCP

	parsers [numFirst]*gopacket.DecodingLayerParser
	decoded []gopacket.LayerType

	flows   map[uint64]*flowState
	cache   [flowCacheSize]*flowState
	order   []*flowState
	slab    []flowState
	last    *flowState
	lastLT  layers.LinkType
	ltKnown bool
	stats   Stats
	shared  shared

	// seg is the TCP segment being handled, filled by either decode path.
	seg tcpSeg
	// noFast turns off the hand-written header parser, so every packet goes
	// through gopacket (tests compare the two paths).
	noFast bool

	// strict lets panics through (fuzz tests), so they are seen, not counted.
	strict bool
	// recovered counts packets whose decoding panicked (counted undecodable).
	recovered uint64

	// Progress, when set, is called from ReadAll/ReadSource with the packet
	// count every 8 packets and at the end (live counts while capturing).
	Progress func(packets uint64)
}

// NewDecoder returns an empty decoder.
func NewDecoder() *Decoder {
	d := &Decoder{
		decoded: make([]gopacket.LayerType, 0, 16),
		flows:   make(map[uint64]*flowState, 1024),
	}
	firstTypes := [numFirst]gopacket.LayerType{
		layers.LayerTypeEthernet, layers.LayerTypeLinuxSLL, layers.LayerTypeLinuxSLL2,
		layers.LayerTypeLoopback, layers.LayerTypeIPv4, layers.LayerTypeIPv6,
	}
	for i, t := range firstTypes {
		p := gopacket.NewDecodingLayerParser(t)
		p.SetDecodingLayerContainer(gopacket.DecodingLayerSparse(nil))
		p.AddDecodingLayer(&d.eth)
		p.AddDecodingLayer(&d.sll)
		p.AddDecodingLayer(&d.sll2)
		p.AddDecodingLayer(&d.lo)
		p.AddDecodingLayer(&d.vlan)
		p.AddDecodingLayer(&d.ip4)
		p.AddDecodingLayer(&d.ip6)
		// Anything past IP (or an unknown EtherType) just ends the walk.
		p.IgnoreUnsupported = true
		// Panics from malformed input are recovered once per read loop
		// (ReadSource) or per call (Packet), not with a defer per layer walk.
		p.IgnorePanic = true
		d.parsers[i] = p
	}
	return d
}

// parser picks the first layer from the link type; raw IP captures say
// the IP version only in each packet's first nibble.
func (d *Decoder) parser(lt layers.LinkType, data []byte) *gopacket.DecodingLayerParser {
	switch lt {
	case layers.LinkTypeEthernet:
		return d.parsers[firstEthernet]
	case layers.LinkTypeLinuxSLL:
		return d.parsers[firstSLL]
	case layers.LinkTypeLinuxSLL2:
		return d.parsers[firstSLL2]
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		return d.parsers[firstLoopback]
	case layers.LinkTypeIPv4:
		return d.parsers[firstIPv4]
	case layers.LinkTypeIPv6:
		return d.parsers[firstIPv6]
	case layers.LinkTypeRaw, 12, 14: // 12 and 14 are raw IP on some BSDs
		if len(data) > 0 && data[0]>>4 == 6 {
			return d.parsers[firstIPv6]
		}
		return d.parsers[firstIPv4]
	}
	return nil
}

// Packet decodes one captured packet of the given link type. data is only
// read during the call, so zero-copy buffers may be reused afterwards.
// Malformed packets are counted as undecodable, never a panic.
func (d *Decoder) Packet(lt layers.LinkType, data []byte, ci gopacket.CaptureInfo) {
	if !d.strict {
		defer d.recoverPacket()
	}
	d.packet(lt, data, &ci)
}

// recoverPacket turns a panic while decoding one packet into a count.
func (d *Decoder) recoverPacket() {
	if r := recover(); r != nil {
		d.recovered++
		d.stats.Undecodable++
	}
}

func (d *Decoder) packet(lt layers.LinkType, data []byte, ci *gopacket.CaptureInfo) {
	d.raw(lt, data, ci.Timestamp.UnixNano(), ci.CaptureLength, ci.Length)
}

// raw decodes one packet given its timestamp (Unix nanoseconds) and its
// captured and original lengths.
func (d *Decoder) raw(lt layers.LinkType, data []byte, ts int64, capLen, length int) {
	d.stats.Packets++
	d.stats.Bytes += uint64(length)
	if !d.ltKnown || lt != d.lastLT {
		d.noteLinkType(lt)
	}
	if capLen < length {
		d.stats.Truncated++
	}
	if !d.noFast && d.fast(lt, data, ts, length) {
		return
	}
	p := d.parser(lt, data)
	if p == nil {
		d.stats.UnsupportedLinkType++
		d.stats.Undecodable++
		return
	}
	err := p.DecodeLayers(data, &d.decoded)
	var isV4, isV6 bool
	for _, t := range d.decoded {
		switch t {
		case layers.LayerTypeIPv4:
			isV4, isV6 = true, false
		case layers.LayerTypeIPv6:
			isV6, isV4 = true, false
		}
	}
	// The parser stops after IP; TCP is decoded here, into the same
	// preallocated layer. That skips gopacket's port-to-protocol lookup
	// for the payload, which this decoder does not use.
	var seg []byte
	switch {
	case isV4:
		switch {
		case d.ip4.Flags&layers.IPv4MoreFragments != 0 || d.ip4.FragOffset != 0:
			d.stats.Fragments++
			return
		case d.ip4.Protocol != layers.IPProtocolTCP:
			d.stats.NonTCP++
			return
		}
		seg = d.ip4.Payload
	case isV6:
		proto := d.ip6.NextHeader
		if d.ip6.HopByHop != nil {
			proto = d.ip6.HopByHop.NextHeader
		}
		if proto != layers.IPProtocolTCP {
			d.stats.NonTCP++
			return
		}
		seg = d.ip6.Payload
	case err != nil:
		d.stats.Undecodable++
		return
	default:
		d.stats.NonIP++
		return
	}
	if err := d.tcp.DecodeFromBytes(seg, gopacket.NilDecodeFeedback); err != nil {
		d.stats.Undecodable++
		return
	}
	d.stats.TCP++
	s := &d.seg
	t := &d.tcp
	s.v4 = isV4
	s.segLen = 0
	if isV4 {
		s.s0, s.d0 = 0, 0
		s.s1 = 0xffff<<32 | uint64(binary.BigEndian.Uint32(d.ip4.SrcIP.To4()))
		s.d1 = 0xffff<<32 | uint64(binary.BigEndian.Uint32(d.ip4.DstIP.To4()))
		s.segLen = int(d.ip4.Length) - int(d.ip4.IHL)*4
	} else {
		s.s0, s.s1 = binary.BigEndian.Uint64(d.ip6.SrcIP[:8]), binary.BigEndian.Uint64(d.ip6.SrcIP[8:16])
		s.d0, s.d1 = binary.BigEndian.Uint64(d.ip6.DstIP[:8]), binary.BigEndian.Uint64(d.ip6.DstIP[8:16])
		if d.ip6.Length != 0 {
			s.segLen = int(d.ip6.Length)
			if d.ip6.HopByHop != nil {
				s.segLen -= d.ip6.HopByHop.ActualLength
			}
		}
	}
	s.sp, s.dp = uint16(t.SrcPort), uint16(t.DstPort)
	s.seq = t.Seq
	s.syn, s.ack, s.rst = t.SYN, t.ACK, t.RST
	s.hdrLen = int(t.DataOffset) * 4
	s.payload = t.Payload
	d.tcpPacket(ts, length)
}

// tcpSeg is one decoded TCP segment: what tcpPacket needs from the IP and
// TCP headers, whichever path parsed them.
type tcpSeg struct {
	s0, s1, d0, d1 uint64 // addresses as in flowKey
	v4             bool
	segLen         int // TCP header and payload as sent, 0 when unknown
	sp, dp         uint16
	seq            uint32
	syn, ack, rst  bool
	hdrLen         int // TCP header length in bytes
	payload        []byte
}

// fast parses the common case straight from the bytes: Ethernet, Linux
// SLL2 or raw IP, then IPv4 without options or fragmentation, or IPv6
// without extension headers, then TCP. It reports false, having changed
// nothing but d.seg, for anything else (VLAN tags, IP options, fragments,
// other protocols, malformed or cut headers), which gopacket then decodes;
// for what it accepts it gives the same result as the gopacket path.
func (d *Decoder) fast(lt layers.LinkType, data []byte, ts int64, length int) bool {
	var ip []byte
	v6 := false
	switch lt {
	case layers.LinkTypeEthernet:
		if len(data) < 14 {
			return false
		}
		switch binary.BigEndian.Uint16(data[12:14]) {
		case 0x0800:
		case 0x86dd:
			v6 = true
		default:
			return false
		}
		ip = data[14:]
	case layers.LinkTypeLinuxSLL2:
		if len(data) < 20 || data[11] > 8 {
			return false
		}
		switch binary.BigEndian.Uint16(data[0:2]) {
		case 0x0800:
		case 0x86dd:
			v6 = true
		default:
			return false
		}
		ip = data[20:]
	case layers.LinkTypeIPv4:
		ip = data
	case layers.LinkTypeIPv6:
		ip, v6 = data, true
	case layers.LinkTypeRaw, 12, 14:
		ip = data
		v6 = len(data) > 0 && data[0]>>4 == 6
	default:
		return false
	}
	s := &d.seg
	var seg []byte
	if !v6 {
		if len(ip) < 20 || ip[0] != 0x45 || ip[9] != 6 || binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
			return false
		}
		length := int(binary.BigEndian.Uint16(ip[2:4]))
		if length < 20 {
			return false
		}
		if length < len(ip) {
			ip = ip[:length]
		}
		seg = ip[20:]
		s.v4 = true
		s.s0, s.d0 = 0, 0
		s.s1 = 0xffff<<32 | uint64(binary.BigEndian.Uint32(ip[12:16]))
		s.d1 = 0xffff<<32 | uint64(binary.BigEndian.Uint32(ip[16:20]))
		s.segLen = length - 20
	} else {
		if len(ip) < 40 || ip[0]>>4 != 6 || ip[6] != 6 {
			return false
		}
		length := int(binary.BigEndian.Uint16(ip[4:6]))
		if length == 0 {
			return false
		}
		seg = ip[40:]
		if length < len(seg) {
			seg = seg[:length]
		}
		s.v4 = false
		s.s0, s.s1 = binary.BigEndian.Uint64(ip[8:16]), binary.BigEndian.Uint64(ip[16:24])
		s.d0, s.d1 = binary.BigEndian.Uint64(ip[24:32]), binary.BigEndian.Uint64(ip[32:40])
		s.segLen = length
	}
	if len(seg) < 20 {
		return false
	}
	hl := int(seg[12]>>4) * 4
	if hl < 20 || hl > len(seg) {
		return false
	}
	s.sp, s.dp = binary.BigEndian.Uint16(seg[0:2]), binary.BigEndian.Uint16(seg[2:4])
	s.seq = binary.BigEndian.Uint32(seg[4:8])
	fl := seg[13]
	s.syn, s.ack, s.rst = fl&0x02 != 0, fl&0x10 != 0, fl&0x04 != 0
	s.hdrLen = hl
	s.payload = seg[hl:]
	d.stats.TCP++
	d.tcpPacket(ts, length)
	return true
}

func (d *Decoder) noteLinkType(lt layers.LinkType) {
	d.ltKnown = true
	d.lastLT = lt
	name := lt.String()
	for _, n := range d.stats.LinkTypes {
		if n == name {
			return
		}
	}
	d.stats.LinkTypes = append(d.stats.LinkTypes, name)
}

func (d *Decoder) tcpPacket(ts int64, length int) {
	t := &d.seg
	s0, s1, d0, d1 := t.s0, t.s1, t.d0, t.d1
	isV4 := t.v4
	segLen := t.segLen
	payload := t.payload
	missing := 0
	if segLen > 0 {
		missing = segLen - t.hdrLen - len(payload)
		if missing < 0 || missing > 1<<16 {
			missing = 0
		}
	}

	var swap uint64
	if isV4 {
		swap = endpointSwapV4(s1, d1, t.sp, t.dp)
	} else {
		swap = endpointSwap(s0, s1, d0, d1, t.sp, t.dp)
	}
	var key flowKey
	key.fill(s0, s1, d0, d1, t.sp, t.dp, swap)
	dir := int(swap)
	f := d.last
	if f == nil || !f.key.eq(&key) {
		h := key.hash()
		slot := &d.cache[h&(flowCacheSize-1)]
		f = *slot
		if f == nil || !f.key.eq(&key) {
			f = d.flows[h]
			for f != nil && !f.key.eq(&key) {
				f = f.chain
			}
			if f == nil {
				f = d.newFlow(key, h, isV4, dir)
			}
			*slot = f
		}
		d.last = f
	}
	if ts < f.first {
		f.first = ts
	}
	if ts > f.last {
		f.last = ts
	}
	h := &f.dirs[dir]
	h.packets++
	h.bytes += uint64(length)
	h.payloadBytes += uint64(len(payload) + missing)

	seq := t.seq
	if t.syn {
		if !h.synSeen {
			h.synSeen = true
			h.seqSet = true
			h.next = seq + 1
		}
		switch {
		case !t.ack:
			f.client = int8(dir)
		case f.client < 0:
			f.client = int8(1 - dir)
		}
		seq++ // data on a SYN (TCP Fast Open) starts after it
	}
	if t.rst {
		// Payload on a reset is diagnostic text, not stream data.
		return
	}
	if len(payload) > 0 || missing > 0 {
		hrr := h.helloHRR
		h.segment(seq, payload, missing)
		if h.helloHRR != hrr {
			// A HelloRetryRequest: the peer sends a second ClientHello.
			f.dirs[1-dir].reopenHello()
		}
	}
}

func (d *Decoder) newFlow(key flowKey, h uint64, v4 bool, dir int) *flowState {
	if len(d.slab) == 0 {
		// Flows are allocated in blocks: memory grows with flows, not packets,
		// and the allocation count stays far below one per flow.
		d.slab = make([]flowState, 256)
	}
	f := &d.slab[0]
	d.slab = d.slab[1:]
	f.key = key
	f.v4 = v4
	f.dirs[0].sh = &d.shared
	f.dirs[1].sh = &d.shared
	f.client = -1
	f.firstDir = int8(dir)
	f.first = 1<<63 - 1
	f.chain = d.flows[h]
	d.flows[h] = f
	d.order = append(d.order, f)
	return f
}

// Stats returns the counters so far.
func (d *Decoder) Stats() Stats {
	s := d.stats
	s.Flows = len(d.order)
	s.LinkTypes = append([]string(nil), d.stats.LinkTypes...)
	return s
}

// Flows finishes the flows seen so far (out-of-order bytes still waiting for
// a gap are handled as if the gap was lost) and returns them classified,
// ordered by first packet.
func (d *Decoder) Flows() []Flow {
	out := make([]Flow, 0, len(d.order))
	for _, f := range d.order {
		f.dirs[0].flushStash()
		f.dirs[1].flushStash()
		out = append(out, f.result())
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].First.Before(out[j].First) })
	return out
}

func addrFrom(hi, lo uint64, v4 bool) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	a := netip.AddrFrom16(b)
	if v4 {
		return a.Unmap()
	}
	return a
}

func (f *flowState) result() Flow {
	ci := int(f.client)
	if ci < 0 {
		// No SYN captured: the lower port is the server's (well-known or
		// service port against an ephemeral one); on a tie, the first sender
		// is the client.
		switch {
		case f.key.pa < f.key.pb:
			ci = 1
		case f.key.pa > f.key.pb:
			ci = 0
		default:
			ci = int(f.firstDir)
		}
	}
	ends := [2]netip.AddrPort{
		netip.AddrPortFrom(addrFrom(f.key.a0, f.key.a1, f.v4), f.key.pa),
		netip.AddrPortFrom(addrFrom(f.key.b0, f.key.b1, f.v4), f.key.pb),
	}
	c, s := &f.dirs[ci], &f.dirs[1-ci]
	fl := Flow{
		Client:          ends[ci],
		Server:          ends[1-ci],
		Packets:         c.packets + s.packets,
		Bytes:           c.bytes + s.bytes,
		PayloadBytes:    c.payloadBytes + s.payloadBytes,
		ClientPayload:   c.payloadBytes,
		ServerPayload:   s.payloadBytes,
		HandshakeSeen:   c.synSeen,
		Retransmissions: c.retrans + s.retrans,
		OutOfOrder:      c.outOfOrder + s.outOfOrder,
		First:           time.Unix(0, f.first).UTC(),
		Last:            time.Unix(0, f.last).UTC(),
	}
	classify(&fl, c, s)
	return fl
}

// classify decides the class from the two halves.
func classify(fl *Flow, c, s *half) {
	ch, sh := &c.hello, &s.hello
	fl.ClientHellos = c.hellos
	if ch.seen && c.hellos == 0 {
		fl.ClientHellos = 1
	}
	fl.ServerHellos = s.hellos
	if ch.seen {
		if ch.nALPN > 0 {
			fl.ALPN = append([]string(nil), ch.alpn[:ch.nALPN]...)
		}
		fl.SNI = ch.sni
		fl.TLSVersion = tlsVersionName(ch.version)
	}
	if sh.seen && !sh.hrr {
		fl.TLSVersion = tlsVersionName(sh.version)
	}
	switch {
	case c.kind == kindPlain:
		fl.Class = ClassPlaintext
		fl.Evidence = "client sent " + c.evidence
		return
	case s.kind == kindPlain:
		fl.Class = ClassPlaintext
		fl.Evidence = "server sent " + s.evidence
		return
	case c.kind == kindNone && s.kind == kindNone:
		fl.Class = ClassNoPayload
		return
	case c.kind != kindTLS && s.kind != kindTLS:
		fl.Class = ClassUnknown
		fl.Notes = append(fl.Notes, "captured mid-stream: no TLS record boundary or readable text found")
		return
	}
	fl.Class = ClassTLS
	if c.kind == kindUnsynced || s.kind == kindUnsynced {
		fl.Notes = append(fl.Notes, "one direction was captured mid-stream")
	}
	if c.badRecord || s.badRecord {
		fl.Notes = append(fl.Notes, "bytes that are not TLS records followed the TLS start")
	}
	if c.hsCut || ch.truncated {
		fl.Notes = append(fl.Notes, "ClientHello cut short (snap length or lost segments)")
	}
	if !ch.seen {
		if c.kind == kindTLS && c.synSeen {
			fl.Notes = append(fl.Notes, "client did not start with a ClientHello")
		} else {
			fl.Notes = append(fl.Notes, "no ClientHello captured")
		}
	}
	if fl.Server.Port() != HBONEPort {
		return
	}
	// HBONE needs every property; the notes say which one is missing.
	hbone := ch.seen && !ch.truncated && !c.hsCut && !c.badRecord && !s.badRecord
	if ch.seen && ch.version != 0x0304 {
		hbone = false
		fl.Notes = append(fl.Notes, "port 15008 but the client did not offer TLS 1.3")
	}
	if sh.seen && !sh.hrr && sh.version != 0x0304 {
		hbone = false
		fl.Notes = append(fl.Notes, "port 15008 but the server did not select TLS 1.3")
	}
	if ch.seen && !containsString(ch.alpn[:ch.nALPN], "h2") {
		hbone = false
		fl.Notes = append(fl.Notes, "port 15008 but ALPN h2 was not offered")
	}
	if ch.hasSNI {
		hbone = false
		fl.Notes = append(fl.Notes, "port 15008 but the ClientHello carries SNI")
	}
	if c.lateHS > 0 || s.lateHS > 0 {
		hbone = false
		fl.Notes = append(fl.Notes, "cleartext handshake records after the hellos (not TLS 1.3)")
	}
	if hbone {
		fl.Class = ClassHBONE
	}
}

func containsString(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}
