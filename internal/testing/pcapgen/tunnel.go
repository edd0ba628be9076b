package pcapgen

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// TunnelKind is an encapsulation Writer can wrap packets in.
type TunnelKind int

// Tunnel kinds.
const (
	VXLAN     TunnelKind = iota + 1 // Ethernet in VXLAN in UDP (Port, default 4789)
	Geneve                          // Ethernet in Geneve in UDP 6081, with one option
	GRE                             // IP in GRE (with a key)
	GRETEB                          // Ethernet in GRE (transparent Ethernet bridging)
	ERSPANII                        // Ethernet in ERSPAN type II in GRE
	ERSPANIII                       // Ethernet in ERSPAN type III in GRE
	IPIP                            // IPv4 in IPv4
	SixInFour                       // IPv6 in IPv4
	ERSPANI                         // Ethernet in ERSPAN type I: GRE without a sequence number, no ERSPAN header
	GeneveIP                        // bare IP in Geneve (protocol type 0x0800 or 0x86dd, no Ethernet), with one option
)

// Tunnel describes the underlay: Client and Server are the outer addresses
// (both IPv4 or both IPv6) on the client's and the server's side. IPIP over
// an IPv6 underlay is IPv4 in IPv6, SixInFour is then IPv6 in IPv6.
type Tunnel struct {
	Kind           TunnelKind
	Client, Server netip.Addr
	Port           uint16 // VXLAN's UDP port; 0 means 4789
	VNI            uint32 // VXLAN or Geneve network identifier, GRE key, ERSPAN session
}

// wrap puts the inner layers ls (IP and TCP) inside the tunnel and returns
// the outer layers and their EtherType.
func (w *Writer) wrap(ls []gopacket.SerializableLayer, ethType layers.EthernetType, fromClient bool, opts gopacket.SerializeOptions) ([]gopacket.SerializableLayer, layers.EthernetType, error) {
	t := w.Tunnel
	if t.Client.Is4() != t.Server.Is4() {
		return nil, 0, fmt.Errorf("pcapgen: tunnel underlay mixes IPv4 and IPv6: %s and %s", t.Client, t.Server)
	}
	src, dst := t.Client, t.Server
	if !fromClient {
		src, dst = dst, src
	}
	ethernetInside := t.Kind == VXLAN || t.Kind == Geneve || t.Kind == GRETEB || t.Kind == ERSPANI || t.Kind == ERSPANII || t.Kind == ERSPANIII
	if ethernetInside {
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 1, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 1, 2}, EthernetType: ethType}
		ls = append([]gopacket.SerializableLayer{eth}, ls...)
	}
	if w.inner == nil {
		w.inner = gopacket.NewSerializeBuffer()
	}
	if err := gopacket.SerializeLayers(w.inner, opts, ls...); err != nil {
		return nil, 0, err
	}
	inner := gopacket.Payload(append([]byte(nil), w.inner.Bytes()...))
	outer := &outerIP{v4: layers.IPv4{Version: 4, TTL: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), Flags: layers.IPv4DontFragment},
		v6: layers.IPv6{Version: 6, HopLimit: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}, is6: src.Is6()}
	out := []gopacket.SerializableLayer{outer.layer()}
	switch t.Kind {
	case VXLAN, Geneve, GeneveIP:
		outer.setProto(layers.IPProtocolUDP)
		port := t.Port
		if port == 0 {
			port = 4789
		}
		var hdr gopacket.SerializableLayer = &layers.VXLAN{ValidIDFlag: true, VNI: t.VNI}
		switch t.Kind {
		case Geneve:
			port = 6081
			hdr = geneveHeader(t.VNI, layers.EthernetTypeTransparentEthernetBridging)
		case GeneveIP:
			port = 6081
			hdr = geneveHeader(t.VNI, ethType)
		}
		udp := &layers.UDP{SrcPort: layers.UDPPort(49152 + t.VNI%1000), DstPort: layers.UDPPort(port)}
		if err := udp.SetNetworkLayerForChecksum(outer.layer().(gopacket.NetworkLayer)); err != nil {
			return nil, 0, err
		}
		out = append(out, udp, hdr)
	case GRE, GRETEB:
		outer.setProto(layers.IPProtocolGRE)
		proto := ethType
		if t.Kind == GRETEB {
			proto = layers.EthernetTypeTransparentEthernetBridging
		}
		out = append(out, &layers.GRE{KeyPresent: true, Key: t.VNI, Protocol: proto})
	case ERSPANI:
		// Type I is told from type II by the missing sequence number.
		outer.setProto(layers.IPProtocolGRE)
		out = append(out, &layers.GRE{Protocol: layers.EthernetTypeERSPAN})
	case ERSPANII:
		outer.setProto(layers.IPProtocolGRE)
		w.seq++
		out = append(out, &layers.GRE{SeqPresent: true, Seq: w.seq, Protocol: layers.EthernetTypeERSPAN},
			&layers.ERSPANII{Version: 1, SessionID: uint16(t.VNI & 0x3ff), Index: 1})
	case ERSPANIII:
		outer.setProto(layers.IPProtocolGRE)
		w.seq++
		out = append(out, &layers.GRE{SeqPresent: true, Seq: w.seq, Protocol: 0x22eb}, erspan3Header(uint16(t.VNI&0x3ff), w.seq))
	case IPIP:
		outer.setProto(layers.IPProtocolIPv4)
	case SixInFour:
		outer.setProto(layers.IPProtocolIPv6)
	default:
		return nil, 0, fmt.Errorf("pcapgen: tunnel kind %d not supported", t.Kind)
	}
	if (t.Kind == IPIP) != (ethType == layers.EthernetTypeIPv4) && (t.Kind == IPIP || t.Kind == SixInFour) {
		return nil, 0, fmt.Errorf("pcapgen: inner IP version does not match tunnel kind %d", t.Kind)
	}
	outerType := layers.EthernetTypeIPv4
	if outer.is6 {
		outerType = layers.EthernetTypeIPv6
	}
	return append(out, inner), outerType, nil
}

// outerIP is the underlay header, IPv4 or IPv6.
type outerIP struct {
	v4  layers.IPv4
	v6  layers.IPv6
	is6 bool
}

func (o *outerIP) layer() gopacket.SerializableLayer {
	if o.is6 {
		return &o.v6
	}
	return &o.v4
}

func (o *outerIP) setProto(p layers.IPProtocol) {
	o.v4.Protocol, o.v6.NextHeader = p, p
}

// geneveHeader is a Geneve header (RFC 8926) carrying proto (Ethernet
// 0x6558, or bare IPv4 or IPv6), with one 8-byte option, written by hand so
// the options length is exact.
func geneveHeader(vni uint32, proto layers.EthernetType) gopacket.Payload {
	h := make([]byte, 16)
	h[0] = 2 // version 0, options length 2 words
	binary.BigEndian.PutUint16(h[2:4], uint16(proto))
	h[4], h[5], h[6] = byte(vni>>16), byte(vni>>8), byte(vni)
	binary.BigEndian.PutUint16(h[8:10], 0x0104) // option class
	h[10] = 0x01                                // type
	h[11] = 1                                   // 1 word of data
	copy(h[12:], []byte{0xde, 0xad, 0xbe, 0xef})
	return h
}

// erspan3Header is an ERSPAN type III header (12 bytes, no platform
// subheader); gopacket has no layer for it.
func erspan3Header(session uint16, ts uint32) gopacket.Payload {
	h := make([]byte, 12)
	binary.BigEndian.PutUint16(h[0:2], 2<<12) // version 2 (type III), VLAN 0
	binary.BigEndian.PutUint16(h[2:4], session&0x3ff)
	binary.BigEndian.PutUint32(h[4:8], ts)
	return h
}
