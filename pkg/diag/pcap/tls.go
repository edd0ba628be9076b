package pcap

import "encoding/binary"

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
	extALPN              = 16
	extSupportedVersions = 43

	// maxRecordLen is the largest record body a peer may send: 2^14 plus the
	// expansion TLS 1.2 allows (TLS 1.3 allows 256; 2048 covers both).
	maxRecordLen = 1<<14 + 2048
	// maxHandshakeBuf bounds the bytes kept to reassemble one hello message.
	// Post-quantum key shares make ClientHellos around 1.2-2 KB; 64 KB is far
	// above any real hello and still a fixed cost per direction.
	maxHandshakeBuf = 64 << 10
	maxALPN         = 8
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
	r.u16()              // cipher_suite
	r.u8()               // compression
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
					if !isGREASE(v) && v > h.version && v <= 0x0304 {
						h.version = v
					}
				}
			} else if v := er.u16(); !er.short {
				h.version = v
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
