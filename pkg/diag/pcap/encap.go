package pcap

import (
	"encoding/binary"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Encapsulation codes, one 4-bit nibble per layer in Decoder.encap.
const (
	encNone = iota
	encVLAN
	encVXLAN
	encGeneve
	encGRE
	encERSPAN
	encIPIP   // IPv4 in IPv4
	enc6in4   // IPv6 in IPv4
	enc4in6   // IPv4 in IPv6
	encIP6IP6 // IPv6 in IPv6
	numEnc

	// maxEncap is how many layers fit in the 32-bit code.
	maxEncap = 8
)

var encNames = [numEnc]string{"", "vlan", "vxlan", "geneve", "gre", "erspan", "ipip", "6in4", "4in6", "ip6ip6"}

// Well-known tunnel ports and protocol numbers.
const (
	portVXLAN      = 4789 // IANA
	portVXLANLinux = 8472 // Linux's default, Flannel and Cilium
	portGeneve     = 6081

	greERSPANII  = 0x88be // also type I when the GRE header has no sequence number
	greERSPANIII = 0x22eb
)

// pushEncap adds one layer to the current packet's encapsulation; false
// when the packet nests deeper than the code holds.
func (d *Decoder) pushEncap(e uint32) bool {
	if d.encap>>((maxEncap-1)*4) != 0 {
		return false
	}
	d.encap = d.encap<<4 | e
	return true
}

// ipInIP names an IP header carried directly in another.
func ipInIP(outerV4, innerV4 bool) uint32 {
	switch {
	case outerV4 && innerV4:
		return encIPIP
	case outerV4:
		return enc6in4
	case innerV4:
		return enc4in6
	}
	return encIP6IP6
}

// encapName spells a code outermost first: "vxlan", "vlan+gre".
func encapName(code uint32) string {
	if code == 0 {
		return ""
	}
	var parts [maxEncap]string
	n := 0
	for ; code != 0; code >>= 4 {
		e := code & 0xf
		if e >= numEnc {
			e = encNone
		}
		parts[n] = encNames[e]
		n++
	}
	// Collected innermost first; reverse.
	for i, j := 0, n-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts[:n], "+")
}

// noteEncapName lists each encapsulation kind met in the stats.
func (d *Decoder) noteEncapName() {
	d.lastEncap = d.encap
	name := encapName(d.encap)
	for _, n := range d.stats.Encapsulations {
		if n == name {
			return
		}
	}
	d.stats.Encapsulations = append(d.stats.Encapsulations, name)
}

// noteEncap records a packet whose encapsulation differs from the flow's.
func (f *flowState) noteEncap(e uint32) {
	switch {
	case e == 0:
		f.bare = true
	case f.encap == 0:
		f.encap = e
	default:
		f.encapMixed = true
	}
}

// vxlanPort says whether UDP port p carries VXLAN.
func (d *Decoder) vxlanPort(p uint16) bool {
	if p == portVXLAN || p == portVXLANLinux {
		return true
	}
	for _, x := range d.opts.VXLANPorts {
		if p == x {
			return true
		}
	}
	return false
}

// tunnel opens an IP payload of protocol proto when it is an encapsulation
// this decoder reads (VXLAN or Geneve over UDP, GRE with IP, Ethernet or
// ERSPAN inside) and decodes the inner packet. False when b is not a
// tunnel (the caller counts a non-TCP packet). IP in IP needs nothing here:
// the layer parser walks it.
func (d *Decoder) tunnel(proto layers.IPProtocol, b []byte, ts int64, length, depth int) bool {
	var (
		inner   []byte
		innerLT layers.LinkType
		kind    uint32
	)
	switch proto {
	case layers.IPProtocolUDP:
		if len(b) < 8 {
			return false
		}
		sp, dp := binary.BigEndian.Uint16(b[0:2]), binary.BigEndian.Uint16(b[2:4])
		payload := b[8:]
		if ul := int(binary.BigEndian.Uint16(b[4:6])); ul >= 8 && ul-8 < len(payload) {
			payload = payload[:ul-8]
		}
		switch {
		case d.vxlanPort(dp) || d.vxlanPort(sp):
			if d.vxlan.DecodeFromBytes(payload, gopacket.NilDecodeFeedback) != nil {
				d.stats.EncapUndecodable++
				return true
			}
			inner, innerLT, kind = d.vxlan.Payload, layers.LinkTypeEthernet, encVXLAN
		case dp == portGeneve || sp == portGeneve:
			var ok bool
			if inner, innerLT, ok = geneve(payload); !ok {
				d.stats.EncapUndecodable++
				return true
			}
			kind = encGeneve
		default:
			d.noteVXLANLike(dp, payload)
			return false
		}
	case layers.IPProtocolGRE:
		if d.gre.DecodeFromBytes(b, gopacket.NilDecodeFeedback) != nil {
			d.stats.EncapUndecodable++
			return true
		}
		inner, kind = d.gre.Payload, encGRE
		switch uint16(d.gre.Protocol) {
		case 0x0800:
			innerLT = layers.LinkTypeIPv4
		case 0x86dd:
			innerLT = layers.LinkTypeIPv6
		case 0x6558: // transparent Ethernet bridging
			innerLT = layers.LinkTypeEthernet
		case greERSPANII:
			innerLT, kind = layers.LinkTypeEthernet, encERSPAN
			if d.gre.SeqPresent {
				// Type II has an 8-byte header; type I (no sequence number) none.
				if d.erspan.DecodeFromBytes(inner, gopacket.NilDecodeFeedback) != nil || len(inner) < 8 {
					d.stats.EncapUndecodable++
					return true
				}
				inner = inner[8:]
			}
		case greERSPANIII:
			innerLT, kind = layers.LinkTypeEthernet, encERSPAN
			var ok bool
			if inner, ok = erspan3(inner); !ok {
				d.stats.EncapUndecodable++
				return true
			}
		default:
			d.stats.EncapUndecodable++
			return true
		}
	default:
		return false
	}
	if depth >= maxEncap || !d.pushEncap(kind) {
		d.stats.EncapUndecodable++
		return true
	}
	d.decode(innerLT, inner, ts, length, depth+1)
	return true
}

// fastUDPTunnel takes a UDP datagram of the hand-written parser: true when
// it was a VXLAN or Geneve packet and has been handled (as tunnel does);
// false leaves it to gopacket's path, which counts it.
func (d *Decoder) fastUDPTunnel(udp []byte, ts int64, length, depth int) bool {
	if len(udp) < 8 {
		return false
	}
	sp, dp := binary.BigEndian.Uint16(udp[0:2]), binary.BigEndian.Uint16(udp[2:4])
	if !d.vxlanPort(dp) && !d.vxlanPort(sp) && dp != portGeneve && sp != portGeneve {
		return false
	}
	return d.tunnel(layers.IPProtocolUDP, udp, ts, length, depth)
}

// geneve opens a Geneve header (RFC 8926) by hand: gopacket's layer
// allocates for every option.
func geneve(b []byte) ([]byte, layers.LinkType, bool) {
	if len(b) < 8 || b[0]>>6 != 0 {
		return nil, 0, false
	}
	hl := 8 + int(b[0]&0x3f)*4
	if len(b) < hl {
		return nil, 0, false
	}
	var lt layers.LinkType
	switch binary.BigEndian.Uint16(b[2:4]) {
	case 0x6558:
		lt = layers.LinkTypeEthernet
	case 0x0800:
		lt = layers.LinkTypeIPv4
	case 0x86dd:
		lt = layers.LinkTypeIPv6
	default:
		return nil, 0, false
	}
	return b[hl:], lt, true
}

// erspan3 skips an ERSPAN type III header (12 bytes, and an 8-byte platform
// subheader when its O flag is set); gopacket has no layer for it.
func erspan3(b []byte) ([]byte, bool) {
	if len(b) < 12 || b[0]>>4 != 2 {
		return nil, false
	}
	hl := 12
	if b[11]&1 != 0 {
		hl += 8
	}
	if len(b) < hl {
		return nil, false
	}
	return b[hl:], true
}

// viewRing is how many recent segments each direction remembers to tell a
// second view of a segment from a retransmission.
const viewRing = 4

// noView marks a decoder that has not seen a TCP packet yet (no real view
// has all bits set: encapsulation codes stop at numEnc).
const noView = ^uint64(0)

// segView is one remembered segment: where it starts, what it acknowledged,
// its length and where it was seen (interface and encapsulation).
type segView struct {
	seq, ack, n uint32
	view        uint64
}

// viewRings are a flow's recent segments, per direction.
type viewRings struct {
	r [2][viewRing]segView
	n [2]uint32
}

// views handles a packet whose view (interface and encapsulation) is not
// the capture's only one so far; true when it is a second view of a segment
// already counted, which the caller then drops.
func (d *Decoder) views(f *flowState, dir int, n uint32, view uint64) bool {
	if d.firstView == noView {
		d.firstView = view
		return false
	}
	d.multiView = true
	if d.encap != f.encap {
		f.noteEncap(d.encap)
	}
	s := &d.seg
	seq := s.seq
	if f.rings == nil {
		if len(d.viewSlab) == 0 {
			d.viewSlab = make([]viewRings, 256)
		}
		f.rings = &d.viewSlab[0]
		d.viewSlab = d.viewSlab[1:]
		// Segments counted while the capture had one view were not
		// remembered: a SYN already seen, or a segment wholly before the
		// stream position, is taken for a copy of the last one counted.
		if h := &f.dirs[dir]; h.packets > 0 && (s.syn && h.synSeen || n > 0 && h.seqSet && int32(seq+n-h.next) <= 0) {
			f.dupViews++
			return true
		}
	}
	if d.viewCopy(f.rings, dir, seq, s.ackN, n, view) {
		// The same segment seen on a second interface: one flow, no retransmission.
		f.dupViews++
		return true
	}
	r := f.rings
	r.r[dir][r.n[dir]&(viewRing-1)] = segView{seq: seq, ack: s.ackN, n: n, view: view}
	r.n[dir]++
	return false
}

// viewCopy says whether a segment is a second copy of one already counted,
// seen on another interface or in another encapsulation. A retransmission
// is seen again on every interface too, so a copy is one that this view
// has seen fewer times than the others have.
func (d *Decoder) viewCopy(r *viewRings, dir int, seq, ack, n uint32, view uint64) bool {
	same, other := 0, 0
	for i := range r.r[dir][:min(int(r.n[dir]), viewRing)] {
		v := &r.r[dir][i]
		if v.seq != seq || v.ack != ack || v.n != n {
			continue
		}
		if v.view == view {
			same++
		} else {
			other++
		}
	}
	return same < other
}

// maxUnopenedPorts bounds the ports Stats.VXLANLikePorts lists.
const maxUnopenedPorts = 8

// noteVXLANLike counts a UDP datagram on a port not read as VXLAN whose
// payload looks like VXLAN (only the I flag set, reserved bytes zero, an
// Ethernet frame of IP, ARP or VLAN inside), so a report can name the
// port to add (Options.VXLANPorts).
func (d *Decoder) noteVXLANLike(dp uint16, b []byte) {
	if len(b) < 8+14 || b[0] != 0x08 || b[1]|b[2]|b[3]|b[7] != 0 {
		return
	}
	switch binary.BigEndian.Uint16(b[8+12 : 8+14]) {
	case 0x0800, 0x86dd, 0x0806, 0x8100:
	default:
		return
	}
	d.stats.VXLANLike++
	// Both directions send to the tunnel's port; the source port is a hash.
	port := dp
	for _, p := range d.stats.VXLANLikePorts {
		if p == port {
			return
		}
	}
	if len(d.stats.VXLANLikePorts) < maxUnopenedPorts {
		d.stats.VXLANLikePorts = append(d.stats.VXLANLikePorts, port)
	}
}
