package mtls

import (
	"strings"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
)

// TLS facts the judging relies on. ztunnel is built on rustls and offers
// only TLS 1.3 with these two suites (ztunnel's README); anything else on
// 15008 is not ztunnel's HBONE.
const (
	tls13                = 0x0304
	suiteAES128GCMSHA256 = 0x1301
	suiteAES256GCMSHA384 = 0x1302
)

// tlsFacts is the handshake of one flow as the judging sees it: the one
// place that reads the decoder's handshake fields.
type tlsFacts struct {
	// serverHello: the server's (non-retry) ServerHello was captured.
	serverHello bool
	version     uint16 // negotiated; 0 when unknown
	cipher      uint16 // negotiated; 0 when unknown
	group       uint16 // negotiated key-share group; 0 when unknown
}

// handshakeOf reads a flow's handshake. ServerHellos (the decoder's count
// of real ServerHellos, retries excluded) proves the server's hello too, and
// TLSVersion then names the version the server selected.
func handshakeOf(f pcap.Flow) tlsFacts {
	t := tlsFacts{serverHello: f.ServerHello || f.ServerHellos > 0, version: f.NegotiatedVersion, cipher: f.CipherSuite, group: f.KeyShareGroup}
	if t.serverHello && t.version == 0 {
		t.version = versionCode(f.TLSVersion)
	}
	if !t.serverHello {
		t = tlsFacts{}
	}
	return t
}

// versionCode turns "1.3" style text back into the wire version.
func versionCode(s string) uint16 {
	switch s {
	case "1.3":
		return 0x0304
	case "1.2":
		return 0x0303
	case "1.1":
		return 0x0302
	case "1.0":
		return 0x0301
	}
	return 0
}

// versionName is versionCode's inverse.
func versionName(v uint16) string {
	switch v {
	case 0x0304:
		return "1.3"
	case 0x0303:
		return "1.2"
	case 0x0302:
		return "1.1"
	case 0x0301:
		return "1.0"
	}
	return ""
}

// judgeHBONE judges a flow the decoder classed HBONE (TLS 1.3 offered with
// h2 and no SNI to 15008): only the server's ServerHello proves a
// handshake, and only ztunnel's suites prove it was ztunnel.
func judgeHBONE(f pcap.Flow, pass string) (Verdict, string) {
	hs := handshakeOf(f)
	switch {
	case !hs.serverHello:
		return Warn, "HBONE attempted, handshake not captured: the client offered TLS 1.3 with h2 but no ServerHello was seen (refused, reset, or half the flow missing)"
	case hs.version != 0 && hs.version != tls13:
		return Warn, "HBONE attempted but the server selected TLS " + orHex(versionName(hs.version), hs.version) + ", not 1.3"
	case hs.cipher != 0 && hs.cipher != suiteAES128GCMSHA256 && hs.cipher != suiteAES256GCMSHA384:
		return Warn, "negotiated " + pcap.CipherSuiteName(hs.cipher) + ": ztunnel uses only TLS_AES_256_GCM_SHA384 and TLS_AES_128_GCM_SHA256, so this is not ztunnel's HBONE"
	}
	return Pass, pass
}

func orHex(name string, v uint16) string {
	if name != "" {
		return name
	}
	const hex = "0123456789abcdef"
	return "0x" + string([]byte{hex[v>>12], hex[v>>8&15], hex[v>>4&15], hex[v&15]})
}

// setTLSDetails fills a row's offered and negotiated handshake.
func setTLSDetails(r *Row, f pcap.Flow) {
	hs := handshakeOf(f)
	if f.ClientHellos > 0 || len(f.OfferedGroups) > 0 {
		off := &Offered{Groups: groupNames(f.OfferedGroups)}
		if !hs.serverHello {
			// TLSVersion is the highest offered one without a ServerHello.
			off.Version = f.TLSVersion
		}
		for _, g := range f.OfferedGroups {
			off.PostQuantum = off.PostQuantum || pcap.IsPostQuantum(g)
		}
		r.Offered = off
		r.Handshake = HandshakeOffered
	}
	if hs.serverHello {
		n := &Negotiated{Version: versionName(hs.version)}
		if hs.cipher != 0 {
			n.CipherSuite = pcap.CipherSuiteName(hs.cipher)
		}
		if hs.group != 0 {
			n.Group = pcap.GroupName(hs.group)
			n.PostQuantum = pcap.IsPostQuantum(hs.group)
		}
		r.Negotiated = n
		r.Handshake = HandshakeNegotiated
	}
}

func groupNames(gs []uint16) []string {
	if len(gs) == 0 {
		return nil
	}
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = pcap.GroupName(g)
	}
	return out
}

// groupList is a comparable form of the offered groups.
func groupList(gs []uint16) string { return strings.Join(groupNames(gs), ",") }
