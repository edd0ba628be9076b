package mtls

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
)

// Lines in ztunnel's access-log format (DESIGN.md section 6): an outbound
// mTLS connection, the inbound side of it with a kubectl --timestamps
// prefix, a plaintext passthrough without identities, and noise.
const ztunnelLog = `2026-01-02T03:04:05.000000Z	info	xds	received response
2026-01-02T03:04:06.123456Z	info	access	connection complete	src.addr=10.0.0.1:51234 src.workload="client-6b9f" src.namespace="a" src.identity="spiffe://cluster.local/ns/a/sa/x" dst.addr=10.0.0.2:15008 dst.hbone_addr=10.0.0.2:8080 dst.service="server.b.svc.cluster.local" dst.workload="server-7c8d" dst.namespace="b" dst.identity="spiffe://cluster.local/ns/b/sa/y" direction="outbound" bytes_sent=120 bytes_recv=340 duration="12ms"
2026-01-02T03:04:06.200000000Z 2026-01-02T03:04:06.199999Z	info	access	connection complete	src.addr=10.0.0.1:51234 src.identity="spiffe://cluster.local/ns/a/sa/x" dst.addr=10.0.0.2:8080 dst.hbone_addr=10.0.0.2:8080 dst.workload="server-7c8d" dst.identity="spiffe://cluster.local/ns/b/sa/y" direction="inbound" bytes_sent=340 bytes_recv=120 duration="11ms"
2026-01-02T03:04:07.000000Z	info	access	connection complete	src.addr=10.0.0.4:40000 src.workload="plain" dst.addr=10.0.0.2:8080 dst.workload="server-7c8d" direction="inbound" bytes_sent=10 bytes_recv=10 duration="1ms"
2026-01-02T03:04:08.000000Z	info	access	connection complete	src.addr=garbage dst.addr=10.0.0.2:8080
`

func TestParseAccessLog(t *testing.T) {
	es, err := ParseAccessLog(strings.NewReader(ztunnelLog))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("entries = %d, want 3 (noise and a line without addresses skipped): %+v", len(es), es)
	}
	e := es[0]
	if e.SrcAddr != netip.MustParseAddrPort("10.0.0.1:51234") || e.DstAddr.Port() != 15008 || e.DstHBONE != netip.MustParseAddrPort("10.0.0.2:8080") ||
		e.SrcIdentity != "spiffe://cluster.local/ns/a/sa/x" || e.DstIdentity != "spiffe://cluster.local/ns/b/sa/y" || e.Direction != "outbound" || e.SrcWorkload != "client-6b9f" {
		t.Errorf("outbound entry = %+v", e)
	}
	if es[2].SrcIdentity != "" || es[2].DstIdentity != "" {
		t.Errorf("passthrough entry has identities: %+v", es[2])
	}
}

func TestJoinIdentities(t *testing.T) {
	es, err := ParseAccessLog(strings.NewReader(ztunnelLog))
	if err != nil {
		t.Fatal(err)
	}
	rep := Judge([]pcap.Flow{
		flow(ipA, ipB, 15008, pcap.ClassHBONE, 500, "h2"),
		flow(ipN, ipB, 8080, pcap.ClassPlaintext, 20),
	}, testMap)
	JoinIdentities(rep, es)
	hb := findRow(rep, "a/client", "b/server", 15008)
	want := []string{"spiffe://cluster.local/ns/a/sa/x -> spiffe://cluster.local/ns/b/sa/y"}
	if hb == nil || !slices.Equal(hb.Identities, want) || hb.ZtunnelWithoutIdentity != 0 {
		t.Fatalf("HBONE row = %+v, want identities %q", hb, want)
	}
	pl := findRow(rep, "n/plain", "b/server", 8080)
	if pl == nil || len(pl.Identities) != 0 || pl.ZtunnelWithoutIdentity != 1 {
		t.Fatalf("plaintext row = %+v, want one ztunnel connection without identity", pl)
	}
}
