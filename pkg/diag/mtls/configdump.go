package mtls

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

// Certificate statuses in the report.
const (
	CertOK           = "ok"
	CertMissing      = "missing"
	CertInitializing = "initializing"
	CertUnavailable  = "unavailable"
	CertExpiring     = "expiring"
	CertExpired      = "expired"
)

// ZtunnelDump is the config_dump of one ztunnel and where it was read.
type ZtunnelDump struct {
	// Source is the file or the ztunnel pod (namespace/name) it came from.
	Source string
	// Node is the ztunnel's node, when known.
	Node string
	Dump *ztunnel.IdentityDump
}

// CertStatus is ztunnel's certificate for one identity shown in the report.
type CertStatus struct {
	Identity string `json:"identity"`
	// State is ztunnel's own (Available, Initializing, Unavailable: ...),
	// empty when no config_dump holds a certificate.
	State      string     `json:"state,omitempty"`
	Serial     string     `json:"serialNumber,omitempty"`
	Expiration *time.Time `json:"expiration,omitempty"`
	// Ztunnel is the config_dump that holds it.
	Ztunnel string `json:"ztunnel,omitempty"`
	// Status is ok, missing, initializing, unavailable, expiring or expired.
	Status  string `json:"status"`
	Problem string `json:"problem,omitempty"`
}

// PodMapFromDumps maps the workload addresses ztunnel knows to workloads;
// ztunnel speaks HBONE for a workload exactly when it captures it.
func PodMapFromDumps(dumps []ZtunnelDump) PodMap {
	m := PodMap{}
	for _, d := range dumps {
		for _, w := range d.Dump.Workloads {
			for _, a := range w.Addresses {
				if _, ok := m[a]; !ok {
					m[a] = Workload{Namespace: w.Namespace, Pod: w.Name, Enrolled: strings.EqualFold(w.Protocol, "HBONE")}
				}
			}
		}
	}
	return m
}

// JoinConfigDumps adds what ztunnels' config_dumps say to the report: the
// SPIFFE identity of the ends of each HBONE row (from the workloads ztunnel
// knows), the
// connections ztunnel tracks for the row, and the state of ztunnel's
// certificate for every identity of a captured (ambient) end. now
// decides which certificates expire soon. Call FlagMissingIdentities after
// every join.
func JoinConfigDumps(rep *Report, dumps []ZtunnelDump, now time.Time) {
	byAddr := map[netip.Addr]ztunnel.WorkloadIdentity{}
	for _, d := range dumps {
		for _, w := range d.Dump.Workloads {
			for _, a := range w.Addresses {
				if _, ok := byAddr[a]; !ok {
					byAddr[a] = w
				}
			}
		}
	}
	wanted := map[string]bool{}
	for pi := range rep.Pairs {
		for ri := range rep.Pairs[pi].Rows {
			r := &rep.Pairs[pi].Rows[ri]
			// Only the HBONE leg carries identities: on any other row a
			// workload's identity would claim mTLS that did not happen.
			hbone := r.Class == pcap.ClassHBONE || r.Port == pcap.HBONEPort
			cw, cok := byAddr[r.Client.Addr]
			sw, sok := byAddr[r.Server.Addr]
			if hbone && cok {
				r.setIdentity(&r.ClientIdentity, "client", cw.SPIFFE())
			}
			if hbone && sok {
				r.setIdentity(&r.ServerIdentity, "server", sw.SPIFFE())
			}
			for _, d := range dumps {
				for _, c := range d.Dump.Connections {
					if !connMatches(c, r.Client.Addr, r.Server.Addr, r.Port) {
						continue
					}
					r.ZtunnelConnections++
					if r.Class == pcap.ClassHBONE && !strings.EqualFold(c.Protocol, "HBONE") {
						r.addIssue(fmt.Sprintf("ztunnel %s tracks a %s connection for this HBONE flow", d.Source, c.Protocol))
					}
				}
			}
			// The certificates of captured ends: the identity the row shows
			// and, when ztunnel's views disagree, the one config_dump expects.
			if hbone && (cok && strings.EqualFold(cw.Protocol, "HBONE") || !cok && r.Client.Mode == "ambient") {
				wanted[r.ClientIdentity] = true
				if cok {
					wanted[cw.SPIFFE()] = true
				}
			}
			if hbone && (sok && strings.EqualFold(sw.Protocol, "HBONE") || !sok && r.Server.Mode == "ambient") {
				wanted[r.ServerIdentity] = true
				if sok {
					wanted[sw.SPIFFE()] = true
				}
			}
		}
	}
	delete(wanted, "")
	ids := make([]string, 0, len(wanted))
	for id := range wanted {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	rep.Certificates = nil
	for _, id := range ids {
		rep.Certificates = append(rep.Certificates, certStatus(id, dumps, now))
	}
	for _, c := range rep.Certificates {
		if c.Status != CertOK {
			rep.Summary.CertificateProblems++
		}
	}
}

// FlagMissingIdentities marks HBONE rows with an end that no ztunnel
// evidence (config_dump or access log) gives an identity. evidence says
// whether any such evidence was read at all; without it nothing is flagged.
func FlagMissingIdentities(rep *Report, evidence bool) {
	if !evidence {
		return
	}
	for pi := range rep.Pairs {
		for ri := range rep.Pairs[pi].Rows {
			r := &rep.Pairs[pi].Rows[ri]
			if r.Class != pcap.ClassHBONE {
				continue
			}
			if r.ClientIdentity == "" {
				r.addIssue("ztunnel has no identity for the client " + r.Client.Addr.String())
			}
			if r.ServerIdentity == "" {
				r.addIssue("ztunnel has no identity for the server " + r.Server.Addr.String())
			}
		}
	}
	rep.Summary.IdentityIssues = 0
	for _, p := range rep.Pairs {
		for _, r := range p.Rows {
			if len(r.IdentityIssues) > 0 {
				rep.Summary.IdentityIssues++
			}
		}
	}
}

func (r *Row) setIdentity(field *string, end, id string) {
	switch {
	case *field == "":
		*field = id
	case *field != id:
		r.addIssue(fmt.Sprintf("the %s identity in ztunnel's access log (%s) differs from its config_dump (%s)", end, *field, id))
	}
}

func (r *Row) addIssue(s string) {
	if !contains(r.IdentityIssues, s) {
		r.IdentityIssues = append(r.IdentityIssues, s)
	}
}

// connMatches reports whether ztunnel's tracked connection is this row's flow:
// the HBONE leg to server:15008 or a connection to the app port itself.
func connMatches(c ztunnel.Connection, client, server netip.Addr, port uint16) bool {
	if c.Src.Addr().Unmap() != client {
		return false
	}
	for _, d := range []netip.AddrPort{c.ActualDst, c.OriginalDst} {
		if d.Addr().Unmap() == server && d.Port() == port {
			return true
		}
	}
	return false
}

// certStatus finds the best certificate any ztunnel holds for id.
func certStatus(id string, dumps []ZtunnelDump, now time.Time) CertStatus {
	best := CertStatus{Identity: id, Status: CertMissing, Problem: "no ztunnel config_dump read holds a certificate for this identity"}
	for _, d := range dumps {
		for _, c := range d.Dump.Certificates {
			if c.Identity != id {
				continue
			}
			s := CertStatus{Identity: id, State: c.State, Serial: c.Serial, Expiration: c.Expiration, Ztunnel: d.Source}
			s.Status, s.Problem = judgeCert(c, now)
			if certRank(s.Status) < certRank(best.Status) {
				best = s
			}
		}
	}
	return best
}

func judgeCert(c ztunnel.Certificate, now time.Time) (string, string) {
	state := strings.ToLower(c.State)
	switch {
	case strings.HasPrefix(state, "unavailable"):
		return CertUnavailable, "ztunnel could not get a certificate: " + c.State
	case strings.HasPrefix(state, "initializing"):
		return CertInitializing, "ztunnel is still requesting the certificate"
	}
	// The one expiry rule (ambient.CertExpiry), as status and the TUI apply it.
	switch ambient.CertExpiry(c.ValidFrom, c.Expiration, now, ambient.CertWarnLimit) {
	case ambient.CertExpired:
		return CertExpired, "expired " + c.Expiration.UTC().Format(time.RFC3339)
	case ambient.CertExpiring:
		return CertExpiring, fmt.Sprintf("expires in %s, not renewed", c.Expiration.Sub(now).Round(time.Minute))
	}
	return CertOK, ""
}

func certRank(s string) int {
	switch s {
	case CertOK:
		return 0
	case CertExpiring:
		return 1
	case CertInitializing:
		return 2
	case CertExpired:
		return 3
	case CertUnavailable:
		return 4
	}
	return 5
}
