package mtls

import (
	"bufio"
	"io"
	"net/netip"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
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

// ParseAccessLog reads ztunnel logs (plain, with the timestamp prefix
// kubectl logs --timestamps adds, or CRI log lines) and returns the
// "connection complete" entries. Other lines are skipped. The line format is
// parsed by pkg/diag/ztunnel, shared with the health view's log pane.
func ParseAccessLog(r io.Reader) ([]AccessLogEntry, error) {
	var out []AccessLogEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l, ok := ztunnel.ParseAccessLogLine(sc.Text())
		if !ok {
			continue
		}
		e := AccessLogEntry{
			SrcIdentity: l.SrcIdentity,
			DstIdentity: l.DstIdentity,
			SrcWorkload: l.SrcWorkload,
			DstWorkload: l.DstWorkload,
			Direction:   l.Direction,
		}
		e.SrcAddr, _ = netip.ParseAddrPort(l.SrcAddr)
		e.DstAddr, _ = netip.ParseAddrPort(l.DstAddr)
		e.DstHBONE, _ = netip.ParseAddrPort(l.DstHBONEAddr)
		if !e.SrcAddr.IsValid() || !e.DstAddr.IsValid() {
			continue
		}
		out = append(out, e)
	}
	return out, sc.Err()
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
				if r.ClientIdentity == "" {
					r.ClientIdentity = e.SrcIdentity
				}
				if r.ServerIdentity == "" {
					r.ServerIdentity = e.DstIdentity
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
