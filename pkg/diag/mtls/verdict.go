package mtls

import (
	"net/netip"
	"sort"
	"strings"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
)

// Verdict is the judgement of a flow, a row or a pair.
type Verdict string

// Verdicts, worst first.
const (
	// Fail: plaintext (or traffic that bypassed ztunnel) between mesh workloads.
	Fail Verdict = "fail"
	// Warn: encrypted, but the capture cannot prove it was mesh mTLS.
	Warn Verdict = "warn"
	// Pass: mesh mTLS as expected (HBONE, or sidecar mTLS).
	Pass Verdict = "pass"
	// Info: not judged (probes, pairs with an end outside the mesh).
	Info Verdict = "info"
)

func (v Verdict) rank() int {
	switch v {
	case Fail:
		return 3
	case Warn:
		return 2
	case Pass:
		return 1
	}
	return 0
}

// Pair categories.
const (
	CategoryMesh    = "mesh"    // both ends are mesh workloads: judged
	CategoryEdge    = "edge"    // one end is in the mesh
	CategoryOutside = "outside" // neither end is in the mesh, or unknown addresses
	CategoryProbe   = "probe"   // kubelet health probes
)

// Kubelet probe sources: istio-cni SNATs kubelet probes to these addresses
// so ztunnel lets them through in plaintext.
var (
	KubeletProbeAddr   = netip.MustParseAddr(ambient.KubeletProbeSourceIPv4)
	KubeletProbeAddrV6 = netip.MustParseAddr(ambient.KubeletProbeSourceIPv6)
)

// isProbeSource reports a kubelet probe's SNAT source.
func isProbeSource(a netip.Addr) bool {
	a = a.Unmap()
	return a == KubeletProbeAddr || a == KubeletProbeAddrV6
}

// Endpoint is one end of a pair.
type Endpoint struct {
	Addr      netip.Addr `json:"addr"`
	Name      string     `json:"name"` // namespace/pod, or the address when unknown
	Mode      string     `json:"mode"` // ambient, sidecar, none or unknown
	Namespace string     `json:"namespace,omitempty"`
	Pod       string     `json:"pod,omitempty"`
}

// Row aggregates the flows of one pair to one server port with one class.
type Row struct {
	Client Endpoint   `json:"client"`
	Server Endpoint   `json:"server"`
	Port   uint16     `json:"port"`
	Class  pcap.Class `json:"class"`
	// TLSVersion is the negotiated version, or the highest offered one when
	// no ServerHello was captured (Handshake says which).
	TLSVersion string   `json:"tlsVersion,omitempty"`
	ALPN       []string `json:"alpn,omitempty"`
	SNI        string   `json:"sni,omitempty"`
	// Handshake is HandshakeNegotiated when the server's hello was
	// captured, HandshakeOffered when only the client's was.
	Handshake string `json:"handshake,omitempty"`
	// Offered is what the ClientHello offered; Negotiated what the
	// ServerHello chose (cleartext in TLS 1.3).
	Offered    *Offered    `json:"offered,omitempty"`
	Negotiated *Negotiated `json:"negotiated,omitempty"`
	// Encap is the tunnel the flow was captured in ("vxlan", "geneve",
	// "gre", ..., joined with "+"); empty when not encapsulated.
	Encap string `json:"encap,omitempty"`
	// Preamble is the plaintext opening before TLS (http-connect,
	// socks4, socks5, starttls).
	Preamble     string   `json:"preamble,omitempty"`
	Flows        int      `json:"flows"`
	ClientHellos int      `json:"clientHellos"`
	Packets      uint64   `json:"packets"`
	Bytes        uint64   `json:"bytes"`
	PayloadBytes uint64   `json:"payloadBytes"`
	Verdict      Verdict  `json:"verdict"`
	Reason       string   `json:"reason"`
	Notes        []string `json:"notes,omitempty"`
	// Identities are "src -> dst" SPIFFE pairs joined from ztunnel's logs.
	Identities []string `json:"identities,omitempty"`
	// ClientIdentity and ServerIdentity are the SPIFFE identities of the
	// two ends, from ztunnel's access log or its config_dump workloads.
	ClientIdentity string `json:"clientIdentity,omitempty"`
	ServerIdentity string `json:"serverIdentity,omitempty"`
	// ZtunnelWithoutIdentity counts connections ztunnel logged for this row
	// without identities (not mTLS in ztunnel's own view).
	ZtunnelWithoutIdentity int `json:"ztunnelWithoutIdentity,omitempty"`
	// ZtunnelConnections counts the connections of this row that ztunnels
	// tracked (config_dump workloadState) when their config_dump was read.
	ZtunnelConnections int `json:"ztunnelConnections,omitempty"`
	// IdentityIssues are what the identity join found wrong: HBONE without
	// an identity in ztunnel, or ztunnel's views disagreeing.
	IdentityIssues []string `json:"identityIssues,omitempty"`
}

// Pair is all traffic from one client address to one server address.
type Pair struct {
	Client   Endpoint `json:"client"`
	Server   Endpoint `json:"server"`
	Category string   `json:"category"`
	Verdict  Verdict  `json:"verdict"`
	Rows     []Row    `json:"rows"`
}

// Offered is what a ClientHello offered.
type Offered struct {
	Version string   `json:"version,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	// PostQuantum is true when a post-quantum hybrid group was offered.
	PostQuantum bool `json:"postQuantum,omitempty"`
}

// Negotiated is what a ServerHello chose.
type Negotiated struct {
	Version     string `json:"version,omitempty"`
	CipherSuite string `json:"cipherSuite,omitempty"`
	Group       string `json:"group,omitempty"`
	// PostQuantum is true when the key exchange is a post-quantum hybrid.
	PostQuantum bool `json:"postQuantum,omitempty"`
}

// Handshake values of a row.
const (
	HandshakeNegotiated = "negotiated"
	HandshakeOffered    = "offered only"
)

// Summary counts rows per verdict.
type Summary struct {
	Pass int `json:"pass"`
	Fail int `json:"fail"`
	Warn int `json:"warn"`
	Info int `json:"info"`
	// MeshPairs is how many pairs had both ends in the mesh.
	MeshPairs int `json:"meshPairs"`
	// Addresses counts the distinct addresses of the judged flows,
	// MappedAddresses those that map to a workload.
	Addresses       int `json:"addresses"`
	MappedAddresses int `json:"mappedAddresses"`
	// IdentityIssues counts rows with identity issues, CertificateProblems
	// the certificates that are not ok. Neither fails the verdict, which is
	// about the wire.
	IdentityIssues      int `json:"identityIssues,omitempty"`
	CertificateProblems int `json:"certificateProblems,omitempty"`
}

// Report is the outcome of judging a capture.
type Report struct {
	// Verdict is PASS (proven), FAIL or INCONCLUSIVE (nothing proven);
	// Reasons say why when it is not PASS.
	Verdict Outcome  `json:"verdict"`
	Reasons []string `json:"reasons,omitempty"`
	// Expectations are the --expect pairs and what became of them.
	Expectations []ExpectationResult `json:"expectations,omitempty"`
	Pairs        []Pair              `json:"pairs"`
	// Probes and DNS are expected plaintext, listed apart and not judged:
	// kubelet probes (SNATed by istio-cni) and DNS to ztunnel's proxy.
	Probes []Row `json:"probes,omitempty"`
	DNS    []Row `json:"dns,omitempty"`
	// Nodes are the per-node captures of a live run.
	Nodes []NodeCapture `json:"nodes,omitempty"`
	Stats pcap.Stats    `json:"stats"`
	// Certificates are ztunnel's certificates for the identities of the
	// captured ends, from config_dump.
	Certificates []CertStatus `json:"certificates,omitempty"`
	Summary      Summary      `json:"summary"`
	// Passed is Verdict == PASS (kept for scripts that read the boolean).
	Passed bool `json:"passed"`
}

func endpoint(a netip.Addr, pods PodMap) (Endpoint, Workload, bool) {
	a = a.Unmap()
	w, ok := pods[a]
	if !ok {
		return Endpoint{Addr: a, Name: a.String(), Mode: "unknown"}, w, false
	}
	return Endpoint{Addr: a, Name: w.Name(), Mode: w.Mode(), Namespace: w.Namespace, Pod: w.Pod}, w, true
}

// hasIstioALPN reports the ALPN values Istio sidecars offer for mTLS
// (istio, istio-peer-exchange, istio-http/1.1, istio-h2, ...).
func hasIstioALPN(alpn []string) bool {
	for _, p := range alpn {
		if p == "istio" || strings.HasPrefix(p, "istio-") {
			return true
		}
	}
	return false
}

// JudgeFlow applies the rules to one flow. Between two ambient workloads
// traffic must use HBONE on 15008, proven by the server's TLS 1.3
// ServerHello, and the app port must never carry payload (as Cilium's
// ztunnel test asserts); with a sidecar end, Istio mTLS on the app port or
// HBONE passes; a plaintext preamble before TLS between mesh workloads
// fails; pairs with an end outside the mesh are reported, not judged.
func JudgeFlow(f pcap.Flow, cw Workload, cok bool, sw Workload, sok bool) (Verdict, string) {
	if isProbeSource(f.Client.Addr()) {
		if f.Class == pcap.ClassPlaintext || f.Class == pcap.ClassNoPayload {
			return Info, "kubelet probe: plaintext expected"
		}
		return Info, "kubelet probe"
	}
	port := f.Server.Port()
	if port == ambient.PortDNS {
		return Info, "DNS to ztunnel's proxy: plaintext expected"
	}
	payload := f.PayloadBytes > 0
	cm, sm := cok && cw.Mesh(), sok && sw.Mesh()
	if cm && sm && f.Preamble != "" {
		return Fail, "plaintext preamble, then TLS (" + f.Preamble + "): the opening crossed the wire in plaintext"
	}
	switch {
	case cm && sm && !cw.Sidecar && !sw.Sidecar:
		if port != pcap.HBONEPort {
			if payload {
				return Fail, "app port carried " + string(f.Class) + " payload between ambient workloads: traffic bypassed ztunnel"
			}
			return Warn, "connection to the app port between ambient workloads (no payload); only port 15008 is expected"
		}
		switch f.Class {
		case pcap.ClassHBONE:
			return judgeHBONE(f, "HBONE mTLS")
		case pcap.ClassNoPayload:
			return Pass, "HBONE port, no payload captured"
		case pcap.ClassPlaintext:
			return Fail, "plaintext on the HBONE port"
		case pcap.ClassTLS:
			return Warn, "TLS on 15008 but not proven HBONE: " + strings.Join(f.Notes, "; ")
		}
		return Warn, "captured mid-stream: cannot prove HBONE"
	case cm && sm:
		switch {
		case f.Class == pcap.ClassHBONE:
			return judgeHBONE(f, "HBONE mTLS (sidecar with HBONE)")
		case f.Class == pcap.ClassTLS && hasIstioALPN(f.ALPN):
			if !handshakeOf(f).serverHello {
				return Warn, "sidecar mTLS attempted (ALPN " + strings.Join(f.ALPN, ",") + "), handshake not captured"
			}
			return Pass, "sidecar mTLS (ALPN " + strings.Join(f.ALPN, ",") + ")"
		case f.Class == pcap.ClassTLS:
			return Warn, "TLS without Istio ALPN: application TLS, not proof of mesh mTLS"
		case f.Class == pcap.ClassPlaintext:
			return Fail, "plaintext between mesh workloads (sidecar end)"
		case f.Class == pcap.ClassNoPayload:
			return Pass, "no payload captured"
		}
		return Warn, "captured mid-stream: cannot prove mTLS"
	case cm || sm:
		if f.Class == pcap.ClassHBONE {
			return Info, "HBONE with an end outside the mesh (gateway or waypoint?)"
		}
		if !cok || !sok {
			return Info, "one end is not a known pod: not judged"
		}
		return Info, "one end is outside the mesh: not judged"
	}
	if !cok && !sok {
		return Info, "addresses are not known pods"
	}
	return Info, "neither end is in the mesh"
}

// Judge groups flows per pair and judges them; the verdict knows only the
// flows (JudgeCapture adds the capture's counts and the rules).
func Judge(flows []pcap.Flow, pods PodMap) *Report {
	return JudgeCapture(flows, pcap.Stats{Flows: len(flows)}, pods, Rules{})
}

// JudgeCapture groups flows per pair, judges them, and decides the run's
// verdict from the rows, the rules and what the capture held.
func JudgeCapture(flows []pcap.Flow, stats pcap.Stats, pods PodMap, rules Rules) *Report {
	type pairKey struct{ c, s netip.Addr }
	type rowKey struct {
		pairKey
		port      uint16
		class     pcap.Class
		version   string
		alpn      string
		sni       string
		handshake tlsFacts
		offered   string
		encap     string
		preamble  string
		verdict   Verdict
		reason    string
	}
	rep := &Report{Pairs: []Pair{}, Stats: stats}
	pairIdx := map[pairKey]int{}
	rowIdx := map[rowKey][2]int{}
	apartIdx := map[rowKey]int{}
	addrs := map[netip.Addr]bool{}
	for _, f := range flows {
		ce, cw, cok := endpoint(f.Client.Addr(), pods)
		se, sw, sok := endpoint(f.Server.Addr(), pods)
		addrs[ce.Addr], addrs[se.Addr] = cok || addrs[ce.Addr], sok || addrs[se.Addr]
		v, reason := JudgeFlow(f, cw, cok, sw, sok)
		hs := handshakeOf(f)
		if rules.RequirePQC && v == Pass && hs.serverHello {
			switch {
			case hs.group == 0:
				// Not seen is not proven post-quantum.
				v, reason = Warn, reason+"; --require-pqc: the negotiated key-exchange group was not seen"
			case !pcap.IsPostQuantum(hs.group):
				v, reason = Fail, reason+"; --require-pqc: negotiated the classical group "+pcap.GroupName(hs.group)
			}
		}
		pk := pairKey{ce.Addr, se.Addr}
		rk := rowKey{pk, f.Server.Port(), f.Class, f.TLSVersion, strings.Join(f.ALPN, ","), f.SNI, hs, groupList(f.OfferedGroups), f.Encap, f.Preamble, v, reason}
		var row *Row
		if isProbeSource(ce.Addr) || f.Server.Port() == ambient.PortDNS {
			list := &rep.Probes
			if !isProbeSource(ce.Addr) {
				list = &rep.DNS
			}
			i, ok := apartIdx[rk]
			if !ok {
				i = len(*list)
				apartIdx[rk] = i
				*list = append(*list, newRow(ce, se, f, v, reason))
			}
			row = &(*list)[i]
		} else {
			pi, ok := pairIdx[pk]
			if !ok {
				pi = len(rep.Pairs)
				pairIdx[pk] = pi
				cat := CategoryOutside
				switch {
				case cok && sok && cw.Mesh() && sw.Mesh():
					cat = CategoryMesh
				case cok && cw.Mesh() || sok && sw.Mesh():
					cat = CategoryEdge
				}
				rep.Pairs = append(rep.Pairs, Pair{Client: ce, Server: se, Category: cat, Verdict: Info})
			}
			idx, ok := rowIdx[rk]
			if !ok {
				p := &rep.Pairs[pi]
				idx = [2]int{pi, len(p.Rows)}
				rowIdx[rk] = idx
				p.Rows = append(p.Rows, newRow(ce, se, f, v, reason))
			}
			row = &rep.Pairs[idx[0]].Rows[idx[1]]
		}
		row.Flows++
		row.ClientHellos += f.ClientHellos
		row.Packets += f.Packets
		row.Bytes += f.Bytes
		row.PayloadBytes += f.PayloadBytes
		for _, n := range f.Notes {
			if !contains(row.Notes, n) {
				row.Notes = append(row.Notes, n)
			}
		}
	}
	rep.finish()
	rep.Summary.Addresses = len(addrs)
	for _, mapped := range addrs {
		if mapped {
			rep.Summary.MappedAddresses++
		}
	}
	rep.Decide(rules)
	return rep
}

func newRow(c, s Endpoint, f pcap.Flow, v Verdict, reason string) Row {
	r := Row{Client: c, Server: s, Port: f.Server.Port(), Class: f.Class, TLSVersion: f.TLSVersion, ALPN: f.ALPN, SNI: f.SNI,
		Encap: f.Encap, Preamble: f.Preamble, Verdict: v, Reason: reason}
	setTLSDetails(&r, f)
	return r
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

// finish orders pairs (failures first, then by name), sets pair verdicts and
// the summary.
func (rep *Report) finish() {
	rep.Summary = Summary{}
	count := func(v Verdict) {
		switch v {
		case Pass:
			rep.Summary.Pass++
		case Fail:
			rep.Summary.Fail++
		case Warn:
			rep.Summary.Warn++
		default:
			rep.Summary.Info++
		}
	}
	for i := range rep.Pairs {
		p := &rep.Pairs[i]
		p.Verdict = Info
		for _, r := range p.Rows {
			if r.Verdict.rank() > p.Verdict.rank() {
				p.Verdict = r.Verdict
			}
			count(r.Verdict)
		}
		if p.Category == CategoryMesh {
			rep.Summary.MeshPairs++
		}
		sort.SliceStable(p.Rows, func(a, b int) bool {
			ra, rb := p.Rows[a], p.Rows[b]
			if ra.Verdict.rank() != rb.Verdict.rank() {
				return ra.Verdict.rank() > rb.Verdict.rank()
			}
			return ra.Port < rb.Port
		})
	}
	for _, r := range rep.Probes {
		count(r.Verdict)
	}
	for _, r := range rep.DNS {
		count(r.Verdict)
	}
	sort.SliceStable(rep.Pairs, func(a, b int) bool {
		pa, pb := rep.Pairs[a], rep.Pairs[b]
		if pa.Verdict.rank() != pb.Verdict.rank() {
			return pa.Verdict.rank() > pb.Verdict.rank()
		}
		if pa.Client.Name != pb.Client.Name {
			return pa.Client.Name < pb.Client.Name
		}
		return pa.Server.Name < pb.Server.Name
	})
}
