package ztunnel

import (
	"net/netip"
	"sort"
)

// DefaultTrustDomain is the trust domain ztunnel uses when a workload names none.
const DefaultTrustDomain = "cluster.local"

// IdentityDump is the part of a config_dump that says who the workloads
// are: their addresses and SPIFFE identities, the certificates this ztunnel
// holds, and the connections it tracks for its local pods (workloadState).
type IdentityDump struct {
	Workloads    []WorkloadIdentity `json:"workloads"`
	Certificates []Certificate      `json:"certificates"`
	Connections  []Connection       `json:"connections,omitempty"`
}

// WorkloadIdentity is one workload of a config_dump with what makes up its
// SPIFFE identity.
type WorkloadIdentity struct {
	UID            string       `json:"uid,omitempty"`
	Name           string       `json:"name"`
	Namespace      string       `json:"namespace"`
	ServiceAccount string       `json:"serviceAccount,omitempty"`
	TrustDomain    string       `json:"trustDomain,omitempty"`
	Node           string       `json:"node,omitempty"`
	Protocol       string       `json:"protocol,omitempty"`
	Addresses      []netip.Addr `json:"addresses,omitempty"`
}

// SPIFFE is the identity ztunnel gives the workload:
// spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>, with
// cluster.local and the default service account when the dump names none.
func (w WorkloadIdentity) SPIFFE() string {
	return SPIFFEID(w.TrustDomain, w.Namespace, w.ServiceAccount)
}

// SPIFFEID builds spiffe://<td>/ns/<ns>/sa/<sa> with ztunnel's defaults.
func SPIFFEID(td, ns, sa string) string {
	if td == "" {
		td = DefaultTrustDomain
	}
	if sa == "" {
		sa = "default"
	}
	return "spiffe://" + td + "/ns/" + ns + "/sa/" + sa
}

// Connection is one connection ztunnel tracks for a local pod
// (workloadState.<uid>.connections).
type Connection struct {
	// Pod is namespace/name of the local pod the connection belongs to.
	Pod string `json:"pod,omitempty"`
	// Identity is the local pod's SPIFFE identity.
	Identity    string         `json:"identity,omitempty"`
	Direction   string         `json:"direction"` // inbound or outbound
	Src         netip.AddrPort `json:"src"`
	OriginalDst netip.AddrPort `json:"originalDst"`
	ActualDst   netip.AddrPort `json:"actualDst"`
	Protocol    string         `json:"protocol,omitempty"` // HBONE or TCP
}

// ParseIdentityDump reads the identity part of ztunnel's /config_dump, in
// the current (arrays) and the older (objects keyed by address) shapes.
func ParseIdentityDump(body []byte) (*IdentityDump, error) {
	raw, ws, err := decodeDump(body)
	if err != nil {
		return nil, err
	}
	full, err := raw.configDump(ws)
	if err != nil {
		return nil, err
	}
	out := &IdentityDump{Certificates: full.Certificates}
	tdByUID := map[string]string{}
	for key, w := range ws {
		wi := WorkloadIdentity{
			UID: w.UID, Name: w.Name, Namespace: w.Namespace, ServiceAccount: w.ServiceAccount,
			TrustDomain: w.TrustDomain, Node: w.Node, Protocol: w.Protocol,
		}
		for _, s := range w.addresses(key) {
			if a, err := netip.ParseAddr(s); err == nil {
				wi.Addresses = append(wi.Addresses, a.Unmap())
			}
		}
		if w.UID != "" {
			tdByUID[w.UID] = w.TrustDomain
		}
		out.Workloads = append(out.Workloads, wi)
	}
	sort.Slice(out.Workloads, func(i, j int) bool {
		a, b := out.Workloads[i], out.Workloads[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	uids := make([]string, 0, len(raw.WorkloadState))
	for uid := range raw.WorkloadState {
		uids = append(uids, uid)
	}
	sort.Strings(uids)
	for _, uid := range uids {
		st := raw.WorkloadState[uid]
		pod, id := "", ""
		if st.Info.Name != "" {
			pod = st.Info.Namespace + "/" + st.Info.Name
			id = SPIFFEID(tdByUID[uid], st.Info.Namespace, st.Info.ServiceAccount)
		}
		add := func(dir string, cs []rawConnection) {
			for _, c := range cs {
				conn := Connection{Pod: pod, Identity: id, Direction: dir, Protocol: c.Protocol}
				conn.Src, _ = netip.ParseAddrPort(c.Src)
				conn.OriginalDst, _ = netip.ParseAddrPort(c.OriginalDst)
				conn.ActualDst, _ = netip.ParseAddrPort(c.ActualDst)
				out.Connections = append(out.Connections, conn)
			}
		}
		add("inbound", st.Connections.Inbound)
		add("outbound", st.Connections.Outbound)
	}
	return out, nil
}
