package pcap

import (
	"bytes"
	"encoding/binary"
	"sort"
)

// payloadKind is what the first payload bytes of one direction looked like.
type payloadKind uint8

const (
	kindNone     payloadKind = iota // no payload yet
	kindTLS                         // TLS records from the first byte
	kindPlain                       // bytes that are not a TLS record
	kindUnsynced                    // mid-stream start, no record boundary found yet
)

// Plaintext evidence, most specific first.
const (
	evidenceHTTP1    = "HTTP/1 request or response"
	evidenceH2       = "HTTP/2 connection preface"
	evidenceNonTLS   = "bytes that are not a TLS record"
	evidencePrintabl = "printable text"
)

const (
	// maxStash bounds the out-of-order bytes kept per direction.
	maxStash = 64 << 10
	// midstreamTries is how many segments of a flow captured mid-stream are
	// searched for a TLS record boundary before giving up.
	midstreamTries = 8
)

type stashed struct {
	seq     uint32
	missing int
	data    []byte
}

// half is one direction of a TCP flow.
type half struct {
	packets, bytes, payloadBytes uint64
	retrans, outOfOrder          uint32

	synSeen  bool // the stream start is known (SYN or SYN-ACK seen)
	seqSet   bool
	next     uint32 // next expected sequence number
	kind     payloadKind
	evidence string
	tries    uint8

	// TLS record walk.
	hdr       [5]byte
	hdrN      uint8
	bodyLeft  int
	curType   uint8
	lost      bool // record boundaries lost (gap or truncation); stop walking
	badRecord bool // a record header that is not TLS appeared after TLS started
	ccs       bool // ChangeCipherSpec seen
	records   [5]uint32
	lateHS    uint32 // cleartext handshake records after the first hello

	sh       *shared
	hs       []byte // handshake bytes being reassembled
	hsDone   bool
	hellos   int
	hello    hello
	hsCut    bool // a hello was cut short
	helloHRR int

	stash      []stashed
	stashBytes int

	// A plaintext opening that may be followed by TLS (HTTP CONNECT,
	// SOCKS, STARTTLS): preamble names it, watch counts the segments still
	// searched for a TLS hello, afterPreamble says one was found.
	preamble      string
	watch         uint8
	afterPreamble bool
}

// segment handles one TCP segment's payload in this direction: data is the
// captured part, missing the bytes the snaplen cut off.
func (h *half) segment(seq uint32, data []byte, missing int) {
	n := len(data) + missing
	if n == 0 {
		return
	}
	if !h.seqSet {
		h.seqSet = true
		h.next = seq
	}
	// Sequence numbers wrap: the signed 32-bit distance says before or after.
	rel := int64(int32(seq - h.next))
	switch {
	case rel < 0 && -rel >= int64(n):
		h.retrans++
		return
	case rel < 0:
		// Overlap with bytes already handled: keep only the new tail.
		h.retrans++
		skip := int(-rel)
		if skip >= len(data) {
			missing -= skip - len(data)
			data = nil
		} else {
			data = data[skip:]
		}
		seq = h.next
	case rel > 0:
		h.outOfOrder++
		if h.stashBytes+len(data) <= maxStash && rel <= maxStash*16 {
			cp := make([]byte, len(data))
			copy(cp, data)
			h.stash = append(h.stash, stashed{seq: seq, missing: missing, data: cp})
			h.stashBytes += len(cp)
			return
		}
		// Too much reordering, lost segments, or a segment far ahead: give
		// up on the gap.
		h.flushStash()
		switch d := int64(int32(seq - h.next)); {
		case d > 0:
			h.gap(int(d))
		case d < 0:
			h.segment(seq, data, missing)
			return
		}
	}
	h.consume(data, missing)
	h.next = seq + uint32(len(data)+missing)
	if len(h.stash) > 0 {
		h.drainStash()
	}
}

// drainStash processes stashed segments that the stream has reached.
func (h *half) drainStash() {
	for len(h.stash) > 0 {
		progressed := false
		for i := 0; i < len(h.stash); i++ {
			s := h.stash[i]
			if int32(s.seq-h.next) > 0 {
				continue
			}
			h.stash = append(h.stash[:i], h.stash[i+1:]...)
			h.stashBytes -= len(s.data)
			i--
			progressed = true
			end := s.seq + uint32(len(s.data)+s.missing)
			if int32(end-h.next) <= 0 {
				continue
			}
			skip := int(h.next - s.seq)
			data, missing := s.data, s.missing
			if skip >= len(data) {
				missing -= skip - len(data)
				data = nil
			} else {
				data = data[skip:]
			}
			h.consume(data, missing)
			h.next = end
		}
		if !progressed {
			return
		}
	}
}

// flushStash gives up waiting for missing segments: the gaps are skipped and
// the stashed bytes are handled in sequence order. Used when the stash is full
// and at the end of the capture.
func (h *half) flushStash() {
	if len(h.stash) == 0 {
		return
	}
	sort.Slice(h.stash, func(i, j int) bool { return int32(h.stash[i].seq-h.stash[j].seq) < 0 })
	for len(h.stash) > 0 {
		s := h.stash[0]
		if d := int32(s.seq - h.next); d > 0 {
			h.gap(int(d))
			h.next = s.seq
		}
		h.drainStash()
	}
	h.stashBytes = 0
}

// gap tells the record walk that n bytes of the stream were never seen.
func (h *half) gap(n int) {
	h.consume(nil, n)
}

// consume feeds in-order stream bytes, then missing bytes that were not captured.
func (h *half) consume(data []byte, missing int) {
	if len(data) > 0 && (h.kind == kindNone || h.kind == kindUnsynced && h.tries < midstreamTries) {
		h.firstBytes(data)
		if h.kind == kindPlain && h.watch > 0 {
			// A client may send its ClientHello right behind the CONNECT.
			if i := helloAfterHeaders(data); i > 0 {
				h.startTLSAt()
				data = data[i:]
			}
		}
	} else if h.kind == kindPlain && h.watch > 0 && len(data) > 0 {
		h.watch--
		switch i := helloAt(data); {
		case i >= 0:
			h.startTLSAt()
			data = data[i:]
		case h.preamble == "" || h.preamble == preambleMaybeStartTLS:
			if startTLSCommand(data) {
				h.preamble = preambleStartTLS
			}
		}
	}
	switch h.kind {
	case kindTLS:
		if !h.lost {
			h.walk(data)
			if missing > 0 {
				h.skip(missing)
			}
		}
	case kindNone:
		if missing > 0 {
			// The very first bytes were cut: nothing can be said about them.
			h.kind = kindUnsynced
		}
	}
}

// firstBytes decides what a direction carries from its first payload.
func (h *half) firstBytes(b []byte) {
	if h.kind == kindNone && h.synSeen {
		if plausibleRecordHeader(b, false) {
			h.kind = kindTLS
			return
		}
		h.setPlain(b)
		return
	}
	// Captured mid-stream: the bytes may start inside a record, so only a
	// record that is clearly a start (application data or a hello) counts.
	if plausibleRecordHeader(b, true) || len(b) > 5 && b[0] == recHandshake && (b[5] == hsClientHello || b[5] == hsServerHello) && plausibleRecordHeader(b, false) {
		h.kind = kindTLS
		return
	}
	if ev := plaintextEvidence(b); ev != "" {
		h.setPlain(b)
		h.evidence = ev
		return
	}
	// Keep looking at the next segments, a bounded number of times; after
	// that the direction stays unclassified.
	h.kind = kindUnsynced
	h.tries++
}

func (h *half) setPlain(b []byte) {
	h.kind = kindPlain
	if p := preambleOpening(b); p != "" {
		h.preamble, h.watch = p, preambleSegments
	}
	// Only a description is kept, never the bytes: plaintext may carry secrets.
	h.evidence = plaintextEvidence(b)
	if h.evidence == "" {
		h.evidence = evidenceNonTLS
	}
}

// plaintextEvidence names readable protocols; "" when b is not recognisably text.
func plaintextEvidence(b []byte) string {
	if len(b) >= 4 && string(b[:4]) == "PRI " {
		return evidenceH2
	}
	for _, m := range httpPrefixes {
		if len(b) >= len(m) && string(b[:len(m)]) == m {
			return evidenceHTTP1
		}
	}
	n := min(len(b), 64)
	if n < 8 {
		return ""
	}
	for _, c := range b[:n] {
		if (c < 0x20 || c > 0x7e) && c != '\r' && c != '\n' && c != '\t' {
			return ""
		}
	}
	return evidencePrintabl
}

var httpPrefixes = []string{"GET ", "POST ", "PUT ", "HEAD ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE ", "HTTP/1."}

// walk follows TLS record headers through in-order bytes.
func (h *half) walk(b []byte) {
	for len(b) > 0 {
		if h.bodyLeft == 0 {
			var hdr []byte
			if h.hdrN == 0 && len(b) >= 5 {
				// The whole header is in this segment: read it in place.
				hdr, b = b[:5], b[5:]
			} else {
				n := copy(h.hdr[h.hdrN:], b)
				h.hdrN += uint8(n)
				b = b[n:]
				if h.hdrN < 5 {
					return
				}
				h.hdrN = 0
				hdr = h.hdr[:]
			}
			if !h.record(hdr[0], hdr[1], int(binary.BigEndian.Uint16(hdr[3:5]))) {
				return
			}
			continue
		}
		n := min(h.bodyLeft, len(b))
		if h.curType == recHandshake && !h.hsDone {
			h.handshake(b[:n])
		}
		h.bodyLeft -= n
		b = b[n:]
	}
}

// record starts a TLS record of type typ, major version major and length
// ln; false when the header is not TLS (the walk stops).
func (h *half) record(typ, major byte, ln int) bool {
	if typ < recChangeCipherSpec || typ > recHeartbeat || major != 3 || ln > maxRecordLen {
		h.badRecord = true
		h.lost = true
		return false
	}
	h.records[typ-recChangeCipherSpec]++
	h.curType = typ
	h.bodyLeft = ln
	switch typ {
	case recChangeCipherSpec:
		h.ccs = true
	case recHandshake:
		if h.hsDone {
			h.lateHS++
		}
	}
	return true
}

// skip accounts for n stream bytes that were not captured.
func (h *half) skip(n int) {
	if h.bodyLeft >= n && h.hdrN == 0 {
		if h.curType == recHandshake && !h.hsDone && n > 0 {
			h.cutHello()
		}
		h.bodyLeft -= n
		return
	}
	if h.curType == recHandshake && !h.hsDone {
		h.cutHello()
	}
	h.lost = true
}

// handshake collects cleartext handshake bytes and parses complete hellos.
func (h *half) handshake(b []byte) {
	if len(h.hs) == 0 {
		// Fast path: whole messages inside this record chunk need no copy.
		for len(b) >= 4 && !h.hsDone {
			ln := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
			if len(b) < 4+ln {
				break
			}
			h.message(b[0], b[4:4+ln], false)
			b = b[4+ln:]
		}
		if len(b) == 0 || h.hsDone {
			return
		}
	}
	if len(h.hs)+len(b) > maxHandshakeBuf {
		h.cutHello()
		return
	}
	if h.hs == nil {
		h.hs = h.sh.getBuf()
	}
	h.hs = append(h.hs, b...)
	for len(h.hs) >= 4 && !h.hsDone {
		ln := int(h.hs[1])<<16 | int(h.hs[2])<<8 | int(h.hs[3])
		if 4+ln > maxHandshakeBuf {
			h.cutHello()
			return
		}
		if len(h.hs) < 4+ln {
			return
		}
		h.message(h.hs[0], h.hs[4:4+ln], false)
		// Keep the buffer's start so it can be reused.
		n := copy(h.hs, h.hs[4+ln:])
		h.hs = h.hs[:n]
	}
	if len(h.hs) == 0 || h.hsDone {
		h.releaseHS()
	}
}

func (h *half) releaseHS() {
	if h.hs != nil {
		h.sh.putBuf(h.hs)
		h.hs = nil
	}
}

// cutHello parses the hello collected so far, which lost its end.
func (h *half) cutHello() {
	if len(h.hs) >= 4 {
		h.message(h.hs[0], h.hs[4:], true)
	}
	h.releaseHS()
	h.hsCut = true
	h.hsDone = true
}

// message handles one handshake message.
func (h *half) message(typ byte, body []byte, cut bool) {
	switch typ {
	case hsClientHello:
		h.hellos++
		var hl hello
		parseClientHello(body, &hl, h.sh)
		hl.truncated = hl.truncated || cut
		h.hello = hl
		// Only a HelloRetryRequest brings a second ClientHello; keep listening
		// until the peer's hello says otherwise.
		h.hsDone = true
	case hsServerHello:
		var hl hello
		parseServerHello(body, &hl, h.sh)
		hl.truncated = hl.truncated || cut
		if hl.hrr {
			h.helloHRR++
			// The real ServerHello follows the retry request.
			h.hello = hl
			return
		}
		h.hellos++
		h.hello = hl
		h.hsDone = true
	default:
		// TLS 1.2 sends certificates in the clear after the hellos; nothing to read.
		h.hsDone = true
	}
}

// reopenHello lets a client direction parse a second ClientHello after a
// HelloRetryRequest from the server.
func (h *half) reopenHello() {
	if h.hsDone && !h.hsCut {
		h.hsDone = false
	}
}

// Preamble kinds (Flow.Preamble).
const (
	preambleHTTPConnect = "http-connect"
	preambleSOCKS4      = "socks4"
	preambleSOCKS5      = "socks5"
	preambleStartTLS    = "starttls"
	// preambleMaybeStartTLS is a text protocol's opening (an SMTP, IMAP,
	// POP3 or FTP greeting) that becomes starttls when its STARTTLS
	// command or a TLS hello follows.
	preambleMaybeStartTLS = "text"

	// preambleSegments bounds the segments searched for the TLS after a
	// preamble.
	preambleSegments = 32
)

// preambleOpening names the first bytes of a direction when they open a
// conversation that may switch to TLS; "" otherwise.
func preambleOpening(b []byte) string {
	switch {
	case hasPrefix(b, "CONNECT "), hasPrefix(b, "HTTP/1.1 200"), hasPrefix(b, "HTTP/1.0 200"):
		return preambleHTTPConnect
	case len(b) >= 3 && b[0] == 5 && b[1] > 0 && len(b) == 2+int(b[1]), len(b) == 2 && b[0] == 5 && b[1] != 0xff:
		// SOCKS5 greeting (version, methods) or the server's method choice.
		return preambleSOCKS5
	case len(b) >= 9 && b[0] == 4 && (b[1] == 1 || b[1] == 2) && b[len(b)-1] == 0,
		len(b) == 8 && b[0] == 0 && b[1] >= 0x5a && b[1] <= 0x5d:
		// SOCKS4 request (ending in the user id's NUL) or its reply.
		return preambleSOCKS4
	case len(b) == 8 && string(b) == "\x00\x00\x00\x08\x04\xd2\x16\x2f", len(b) == 1 && b[0] == 'S':
		// PostgreSQL's SSLRequest and the server's yes.
		return preambleStartTLS
	case startTLSCommand(b):
		return preambleStartTLS
	}
	for _, p := range textGreetings {
		if hasPrefix(b, p) {
			return preambleMaybeStartTLS
		}
	}
	return ""
}

var textGreetings = []string{"220 ", "220-", "* OK", "+OK", "EHLO ", "HELO ", "LHLO ", "ehlo ", "helo "}

// startTLSCommand finds a command that switches a text protocol to TLS.
func startTLSCommand(b []byte) bool {
	// Upper-cased into a stack buffer: no allocation per segment.
	var buf [64]byte
	u := buf[:min(len(b), len(buf))]
	for i := range u {
		c := b[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		u[i] = c
	}
	return bytes.Contains(u, []byte("STARTTLS")) || hasPrefix(u, "STLS") || hasPrefix(u, "AUTH TLS") || hasPrefix(u, "AUTH SSL")
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// helloAt is 0 when b starts with a TLS handshake record holding a hello,
// the offset of one right behind HTTP headers, else -1.
func helloAt(b []byte) int {
	if isHelloRecord(b) {
		return 0
	}
	if i := helloAfterHeaders(b); i > 0 {
		return i
	}
	return -1
}

// helloAfterHeaders is the offset of a TLS hello right after the blank line
// that ends HTTP headers in b, else -1.
func helloAfterHeaders(b []byte) int {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 || !isHelloRecord(b[i+4:]) {
		return -1
	}
	return i + 4
}

func isHelloRecord(b []byte) bool {
	return len(b) >= 6 && b[0] == recHandshake && b[1] == 3 && (b[5] == hsClientHello || b[5] == hsServerHello) && plausibleRecordHeader(b, false)
}

// startTLSAt switches a plaintext direction to TLS after its preamble.
func (h *half) startTLSAt() {
	h.kind = kindTLS
	h.afterPreamble = true
	h.watch = 0
	if h.preamble == preambleMaybeStartTLS {
		h.preamble = preambleStartTLS
	}
}

// preambleName picks the client's name for a preamble, else the server's;
// a text protocol's opening that turned to TLS is starttls.
func preambleName(client, server string) string {
	for _, p := range []string{client, server} {
		if p != "" && p != preambleMaybeStartTLS {
			return p
		}
	}
	return preambleStartTLS
}
