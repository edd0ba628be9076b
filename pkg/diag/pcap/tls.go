package pcap

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
)

// TLS wire constants (RFC 8446, RFC 5246).
const (
	recChangeCipherSpec = 20
	recAlert            = 21
	recHandshake        = 22
	recApplicationData  = 23
	recHeartbeat        = 24

	hsClientHello = 1
	hsServerHello = 2

	extServerName        = 0
	extSupportedGroups   = 10
	extALPN              = 16
	extSupportedVersions = 43
	extKeyShare          = 51

	// maxRecordLen is the largest record body a peer may send: 2^14 plus the
	// expansion TLS 1.2 allows (TLS 1.3 allows 256; 2048 covers both).
	maxRecordLen = 1<<14 + 2048
	// maxHandshakeBuf bounds the bytes kept to reassemble one hello message.
	// Post-quantum key shares make ClientHellos around 1.2-2 KB; 64 KB is far
	// above any real hello and still a fixed cost per direction.
	maxHandshakeBuf = 64 << 10
	maxALPN         = 8
	// maxOffered bounds the versions, groups and key shares kept from one
	// ClientHello (fixed arrays: parsing a hello allocates nothing).
	maxOffered = 16
)

// helloRetryRandom is the fixed ServerHello.random of a HelloRetryRequest
// (RFC 8446 section 4.1.3).
var helloRetryRandom = [32]byte{
	0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
	0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
}

// hello holds what a ClientHello or ServerHello says in the clear.
type hello struct {
	seen      bool
	truncated bool   // the message was cut (snaplen, lost segments) before its end
	legacy    uint16 // legacy_version field
	version   uint16 // highest supported_versions entry (ClientHello) or the selected one (ServerHello)
	sni       string
	alpn      [maxALPN]string
	nALPN     int
	hasSNI    bool
	hrr       bool // a HelloRetryRequest

	cipher uint16 // ServerHello: the selected cipher suite
	group  uint16 // ServerHello: the key_share group (HelloRetryRequest: the group asked for)

	// ClientHello offers, GREASE left out, at most maxOffered each.
	versions  offered
	groups    offered
	keyShares offered
}

// offered is a short fixed-size list of 16-bit code points.
type offered struct {
	v [maxOffered]uint16
	n uint8
}

func (o *offered) add(v uint16) {
	if int(o.n) < maxOffered && !isGREASE(v) {
		o.v[o.n] = v
		o.n++
	}
}

// list returns a copy (nil when empty).
func (o *offered) list() []uint16 {
	if o.n == 0 {
		return nil
	}
	return append([]uint16(nil), o.v[:o.n]...)
}

// tlsVersionName turns a wire version into "1.3" style text.
func tlsVersionName(v uint16) string {
	switch v {
	case 0x0300:
		return "ssl3"
	case 0x0301:
		return "1.0"
	case 0x0302:
		return "1.1"
	case 0x0303:
		return "1.2"
	case 0x0304:
		return "1.3"
	case 0:
		return ""
	}
	return "unknown"
}

// isGREASE reports the reserved GREASE values (RFC 8701) clients add to lists.
func isGREASE(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

// reader is a bounds-checked cursor over a handshake message. Any read past
// the end sets short and returns zero values, so parsers never panic on
// malformed or truncated input.
type reader struct {
	b     []byte
	short bool
}

func (r *reader) u8() uint8 {
	if len(r.b) < 1 {
		r.short = true
		r.b = nil
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() uint16 {
	if len(r.b) < 2 {
		r.short = true
		r.b = nil
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if len(r.b) < n {
		r.short = true
		r.b = nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// parseClientHello reads a ClientHello body (after the 4-byte handshake
// header). body may be shorter than the message when it was truncated; every
// field read before the cut is kept.
func parseClientHello(body []byte, h *hello, in *shared) {
	h.seen = true
	r := reader{b: body}
	h.legacy = r.u16()
	r.bytes(32)           // random
	r.bytes(int(r.u8()))  // legacy_session_id
	r.bytes(int(r.u16())) // cipher_suites
	r.bytes(int(r.u8()))  // legacy_compression_methods
	exts := r.bytes(int(r.u16()))
	if r.short {
		// A cut inside the extensions still leaves the ones before the cut.
		exts = r.b
		h.truncated = true
	}
	parseExtensions(exts, h, true, in)
	if h.version == 0 {
		h.version = h.legacy
	}
}

// parseServerHello reads a ServerHello body.
func parseServerHello(body []byte, h *hello, in *shared) {
	h.seen = true
	r := reader{b: body}
	h.legacy = r.u16()
	if rnd := r.bytes(32); len(rnd) == 32 && [32]byte(rnd) == helloRetryRandom {
		h.hrr = true
	}
	r.bytes(int(r.u8())) // legacy_session_id_echo
	h.cipher = r.u16()
	r.u8() // compression
	if len(r.b) == 0 && !r.short {
		// No extensions: a TLS 1.2 or older ServerHello.
		h.version = h.legacy
		return
	}
	exts := r.bytes(int(r.u16()))
	if r.short {
		exts = r.b
		h.truncated = true
	}
	parseExtensions(exts, h, false, in)
	if h.version == 0 {
		h.version = h.legacy
	}
}

func parseExtensions(b []byte, h *hello, client bool, in *shared) {
	r := reader{b: b}
	for len(r.b) > 0 {
		typ := r.u16()
		data := r.bytes(int(r.u16()))
		if r.short {
			h.truncated = true
			return
		}
		switch typ {
		case extServerName:
			h.hasSNI = true
			er := reader{b: data}
			list := reader{b: er.bytes(int(er.u16()))}
			for len(list.b) > 0 {
				nameType := list.u8()
				name := list.bytes(int(list.u16()))
				if list.short {
					break
				}
				if nameType == 0 && h.sni == "" {
					h.sni = in.intern(name)
				}
			}
		case extALPN:
			er := reader{b: data}
			list := reader{b: er.bytes(int(er.u16()))}
			for len(list.b) > 0 && h.nALPN < maxALPN {
				p := list.bytes(int(list.u8()))
				if list.short {
					break
				}
				h.alpn[h.nALPN] = in.intern(p)
				h.nALPN++
			}
		case extSupportedVersions:
			er := reader{b: data}
			if client {
				list := reader{b: er.bytes(int(er.u8()))}
				for len(list.b) >= 2 {
					v := list.u16()
					h.versions.add(v)
					if !isGREASE(v) && v > h.version && v <= 0x0304 {
						h.version = v
					}
				}
			} else if v := er.u16(); !er.short {
				h.version = v
			}
		case extSupportedGroups:
			if client {
				er := reader{b: data}
				list := reader{b: er.bytes(int(er.u16()))}
				for len(list.b) >= 2 {
					h.groups.add(list.u16())
				}
			}
		case extKeyShare:
			er := reader{b: data}
			if client {
				// KeyShareClientHello: a list of (group, key_exchange).
				list := reader{b: er.bytes(int(er.u16()))}
				for len(list.b) >= 4 {
					g := list.u16()
					list.bytes(int(list.u16()))
					if list.short {
						break
					}
					h.keyShares.add(g)
				}
			} else if g := er.u16(); !er.short {
				// KeyShareServerHello (or the selected_group of a retry request).
				h.group = g
			}
		}
	}
}

// plausibleRecordHeader reports whether b starts like a TLS record: a known
// content type, major version 3 and a length a peer may send. strict asks for
// an application-data record, used to resynchronise mid-stream.
func plausibleRecordHeader(b []byte, strict bool) bool {
	if len(b) < 5 {
		if len(b) == 0 {
			return false
		}
		if b[0] < recChangeCipherSpec || b[0] > recHeartbeat {
			return false
		}
		return len(b) < 2 || b[1] == 3
	}
	if b[0] < recChangeCipherSpec || b[0] > recHeartbeat || b[1] != 3 || b[2] > 4 {
		return false
	}
	n := int(binary.BigEndian.Uint16(b[3:5]))
	if strict {
		return b[0] == recApplicationData && b[2] == 3 && n > 0 && n <= maxRecordLen
	}
	return n <= maxRecordLen
}

// shared is state all flows of one decoder share: interned strings (ALPN
// values and server names repeat across flows, so each distinct one is
// allocated once) and reusable handshake buffers.
type shared struct {
	strs map[string]string
	bufs [][]byte
}

const (
	maxInterned  = 4096
	maxPooledBuf = 16 << 10
)

func (s *shared) intern(b []byte) string {
	if v, ok := s.strs[string(b)]; ok {
		return v
	}
	v := string(b)
	if s.strs == nil {
		s.strs = make(map[string]string)
	}
	if len(s.strs) < maxInterned {
		s.strs[v] = v
	}
	return v
}

func (s *shared) getBuf() []byte {
	if n := len(s.bufs); n > 0 {
		b := s.bufs[n-1]
		s.bufs = s.bufs[:n-1]
		return b
	}
	return make([]byte, 0, 4096)
}

func (s *shared) putBuf(b []byte) {
	if cap(b) <= maxPooledBuf && len(s.bufs) < 64 {
		s.bufs = append(s.bufs, b[:0])
	}
}

// CipherSuiteName names a TLS cipher suite by its IANA name
// ("TLS_AES_256_GCM_SHA384"), or "0x1234" when it is not known; "" for 0.
func CipherSuiteName(id uint16) string {
	if id == 0 {
		return ""
	}
	return tls.CipherSuiteName(id)
}

// groupNames names groups crypto/tls does not (pure ML-KEM, the Kyber
// draft, finite-field groups).
var groupNames = map[uint16]string{
	0x0017: "secp256r1",
	0x0018: "secp384r1",
	0x0019: "secp521r1",
	0x001d: "x25519",
	0x001e: "x448",
	0x0100: "ffdhe2048",
	0x0101: "ffdhe3072",
	0x0102: "ffdhe4096",
	0x0103: "ffdhe6144",
	0x0104: "ffdhe8192",
	0x0200: "MLKEM512",
	0x0201: "MLKEM768",
	0x0202: "MLKEM1024",
	0x11eb: "SecP256r1MLKEM768",
	0x11ec: "X25519MLKEM768",
	0x11ed: "SecP384r1MLKEM1024",
	0x6399: "X25519Kyber768Draft00",
}

// GroupName names a key-exchange group by its IANA name ("x25519",
// "X25519MLKEM768"), or "0x1234" when it is not known; "" for 0.
func GroupName(id uint16) string {
	if id == 0 {
		return ""
	}
	if n, ok := groupNames[id]; ok {
		return n
	}
	return fmt.Sprintf("0x%04X", id)
}

// IsPostQuantum reports whether a key-exchange group resists a quantum
// attacker: the ML-KEM hybrids, pure ML-KEM, and the Kyber draft hybrid.
func IsPostQuantum(id uint16) bool {
	switch id {
	case 0x0200, 0x0201, 0x0202, 0x11eb, 0x11ec, 0x11ed, 0x6399:
		return true
	}
	return false
}
