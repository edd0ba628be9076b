package mtls

import (
	"bufio"
	"io"
	"net/netip"
	"strings"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
)

// AccessLogEntry is one ztunnel "connection complete" access-log line.
type AccessLogEntry struct {
	SrcAddr     netip.AddrPort `json:"srcAddr"`
	DstAddr     netip.AddrPort `json:"dstAddr"`
	DstHBONE    netip.AddrPort `json:"dstHboneAddr,omitempty"`
	SrcIdentity string         `json:"srcIdentity,omitempty"`
	DstIdentity string         `json:"dstIdentity,omitempty"`
	SrcWorkload string         `json:"srcWorkload,omitempty"`
	DstWorkload string         `json:"dstWorkload,omitempty"`
	Direction   string         `json:"direction,omitempty"`
}

// ParseAccessLog reads ztunnel logs (plain, or with the timestamp prefix
// kubectl logs --timestamps adds) and returns the "connection complete"
// entries. Other lines are skipped.
func ParseAccessLog(r io.Reader) ([]AccessLogEntry, error) {
	var out []AccessLogEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, "connection complete")
		if i < 0 {
			continue
		}
		kv := parseKeyValues(line[i+len("connection complete"):])
		e := AccessLogEntry{
			SrcIdentity: kv["src.identity"],
			DstIdentity: kv["dst.identity"],
			SrcWorkload: kv["src.workload"],
			DstWorkload: kv["dst.workload"],
			Direction:   kv["direction"],
		}
		e.SrcAddr, _ = netip.ParseAddrPort(kv["src.addr"])
		e.DstAddr, _ = netip.ParseAddrPort(kv["dst.addr"])
		e.DstHBONE, _ = netip.ParseAddrPort(kv["dst.hbone_addr"])
		if !e.SrcAddr.IsValid() || !e.DstAddr.IsValid() {
			continue
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// parseKeyValues splits `a=1 b="x y" c="q\"uote"` into a map.
func parseKeyValues(s string) map[string]string {
	m := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return m
		}
		key := s[:eq]
		if sp := strings.IndexAny(key, " \t"); sp >= 0 {
			// A word without a value: skip it.
			s = s[sp:]
			continue
		}
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(s); i++ {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					i++
					b.WriteByte(s[i])
					continue
				}
				if c == '"' {
					break
				}
				b.WriteByte(c)
			}
			val = b.String()
			if i < len(s) {
				i++
			}
			s = s[i:]
		} else {
			end := strings.IndexAny(s, " \t")
			if end < 0 {
				end = len(s)
			}
			val = s[:end]
			s = s[end:]
		}
		m[key] = val
	}
}

// reaches reports whether a log entry is a connection from client to
// server:port as the capture sees it: the HBONE leg to :15008, or a direct
// (plaintext passthrough) connection to the app port.
func (e AccessLogEntry) reaches(client, server netip.Addr, port uint16) bool {
	if e.SrcAddr.Addr().Unmap() != client {
		return false
	}
	if e.DstAddr.Addr().Unmap() == server && e.DstAddr.Port() == port {
		return true
	}
	return port == pcap.HBONEPort && e.DstHBONE.IsValid() && e.DstHBONE.Addr().Unmap() == server
}

// JoinIdentities adds ztunnel's view to each row: the SPIFFE identities of
// the connections it completed between the same addresses, and how many it
// completed without identities (not mTLS for ztunnel).
func JoinIdentities(rep *Report, entries []AccessLogEntry) {
	for pi := range rep.Pairs {
		for ri := range rep.Pairs[pi].Rows {
			r := &rep.Pairs[pi].Rows[ri]
			for _, e := range entries {
				if !e.reaches(r.Client.Addr, r.Server.Addr, r.Port) {
					continue
				}
				if e.SrcIdentity == "" && e.DstIdentity == "" {
					r.ZtunnelWithoutIdentity++
					continue
				}
				id := orUnknown(e.SrcIdentity) + " -> " + orUnknown(e.DstIdentity)
				if !contains(r.Identities, id) {
					r.Identities = append(r.Identities, id)
				}
			}
		}
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
