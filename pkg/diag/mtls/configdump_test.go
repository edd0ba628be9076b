package mtls

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

var testNow = time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)

// dumpJSON writes a config_dump in the current shape for the test
// addresses: a/client (sa x) and b/server (sa y), both HBONE, n/plain TCP,
// with the given certificates (identity -> state, expiry).
func dumpJSON(certs map[string][2]string, conns ...string) []byte {
	var cs []string
	for id, c := range certs {
		chain := "[]"
		if c[1] != "" {
			chain = fmt.Sprintf(`[{"serialNumber": "0x1", "validFrom": "2026-11-20T00:00:00Z", "expirationTime": %q}]`, c[1])
		}
		cs = append(cs, fmt.Sprintf(`{"identity": %q, "state": %q, "certChain": %s, "rootCerts": []}`, id, c[0], chain))
	}
	slices.Sort(cs)
	return []byte(fmt.Sprintf(`{
  "workloads": [
    {"uid": "k//Pod/a/client", "name": "client", "namespace": "a", "serviceAccount": "x", "trustDomain": "cluster.local", "protocol": "HBONE", "workloadIps": ["10.0.0.1"], "node": "n1"},
    {"uid": "k//Pod/b/server", "name": "server", "namespace": "b", "serviceAccount": "y", "protocol": "HBONE", "workloadIps": ["10.0.0.2"], "node": "n2"},
    {"uid": "k//Pod/n/plain", "name": "plain", "namespace": "n", "protocol": "TCP", "workloadIps": ["10.0.0.4"], "node": "n2"}
  ],
  "certificates": [%s],
  "workloadState": {"k//Pod/a/client": {"state": "Up", "info": {"name": "client", "namespace": "a", "serviceAccount": "x"},
    "connections": {"inbound": [], "outbound": [%s]}}}
}`, strings.Join(cs, ","), strings.Join(conns, ",")))
}

func parseDump(t *testing.T, source string, body []byte) ZtunnelDump {
	t.Helper()
	d, err := ztunnel.ParseIdentityDump(body)
	if err != nil {
		t.Fatal(err)
	}
	return ZtunnelDump{Source: source, Dump: d}
}

const (
	idX = "spiffe://cluster.local/ns/a/sa/x"
	idY = "spiffe://cluster.local/ns/b/sa/y"
)

func TestJoinConfigDumps(t *testing.T) {
	hboneConn := `{"src": "10.0.0.1:40000", "originalDst": "10.0.0.2:8080", "actualDst": "10.0.0.2:15008", "protocol": "HBONE"}`
	tcpConn := `{"src": "10.0.0.1:40000", "originalDst": "10.0.0.2:8080", "actualDst": "10.0.0.2:15008", "protocol": "TCP"}`
	tests := []struct {
		name      string
		dumps     [][]byte
		logs      []AccessLogEntry
		wantIDs   [2]string
		wantCerts map[string]string // identity -> status
		wantIssue string
		conns     int
	}{
		{
			name:      "both certificates fine",
			dumps:     [][]byte{dumpJSON(map[string][2]string{idX: {"Available", "2026-11-22T12:00:00Z"}, idY: {"Available", "2026-11-23T00:00:00Z"}}, hboneConn)},
			wantIDs:   [2]string{idX, idY},
			wantCerts: map[string]string{idX: CertOK, idY: CertOK},
			conns:     1,
		},
		{
			name:      "expiring, unavailable",
			dumps:     [][]byte{dumpJSON(map[string][2]string{idX: {"Available", "2026-11-21T05:00:00Z"}, idY: {"Unavailable: signing failed", ""}})},
			wantIDs:   [2]string{idX, idY},
			wantCerts: map[string]string{idX: CertExpiring, idY: CertUnavailable},
		},
		{
			name:      "expired, missing",
			dumps:     [][]byte{dumpJSON(map[string][2]string{idX: {"Available", "2026-11-20T23:00:00Z"}})},
			wantIDs:   [2]string{idX, idY},
			wantCerts: map[string]string{idX: CertExpired, idY: CertMissing},
		},
		{
			// Each node's ztunnel holds its own workloads' certificates; the
			// best one per identity counts.
			name: "two ztunnels",
			dumps: [][]byte{
				dumpJSON(map[string][2]string{idX: {"Available", "2026-12-01T00:00:00Z"}, idY: {"Initializing", ""}}),
				dumpJSON(map[string][2]string{idY: {"Available", "2026-12-01T00:00:00Z"}}),
			},
			wantIDs:   [2]string{idX, idY},
			wantCerts: map[string]string{idX: CertOK, idY: CertOK},
		},
		{
			name:      "ztunnel tracked the HBONE flow as TCP",
			dumps:     [][]byte{dumpJSON(map[string][2]string{idX: {"Available", "2026-12-01T00:00:00Z"}, idY: {"Available", "2026-12-01T00:00:00Z"}}, tcpConn)},
			wantIDs:   [2]string{idX, idY},
			wantCerts: map[string]string{idX: CertOK, idY: CertOK},
			wantIssue: "tracks a TCP connection",
			conns:     1,
		},
		{
			name:      "access log disagrees with config_dump",
			dumps:     [][]byte{dumpJSON(map[string][2]string{idX: {"Available", "2026-12-01T00:00:00Z"}, idY: {"Available", "2026-12-01T00:00:00Z"}})},
			logs:      []AccessLogEntry{{SrcAddr: netip.MustParseAddrPort("10.0.0.1:40000"), DstAddr: netip.MustParseAddrPort("10.0.0.2:15008"), SrcIdentity: "spiffe://cluster.local/ns/a/sa/other", DstIdentity: idY}},
			wantIDs:   [2]string{"spiffe://cluster.local/ns/a/sa/other", idY},
			wantCerts: map[string]string{idX: CertOK, idY: CertOK, "spiffe://cluster.local/ns/a/sa/other": CertMissing},
			wantIssue: "differs from its config_dump",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flows := []pcap.Flow{
				flow(ipA, ipB, 15008, pcap.ClassHBONE, 500, "h2"),
				flow(ipN, ipB, 8080, pcap.ClassPlaintext, 100),
			}
			var dumps []ZtunnelDump
			for i, b := range tt.dumps {
				dumps = append(dumps, parseDump(t, fmt.Sprintf("zt-%d", i), b))
			}
			rep := Judge(flows, testMap)
			JoinIdentities(rep, tt.logs)
			JoinConfigDumps(rep, dumps, testNow)
			FlagMissingIdentities(rep, true)
			var hb, plain *Row
			for i := range rep.Pairs {
				for j := range rep.Pairs[i].Rows {
					r := &rep.Pairs[i].Rows[j]
					if r.Port == 15008 {
						hb = r
					} else {
						plain = r
					}
				}
			}
			if got := [2]string{hb.ClientIdentity, hb.ServerIdentity}; got != tt.wantIDs {
				t.Errorf("identities = %q, want %q", got, tt.wantIDs)
			}
			if plain.ClientIdentity != "" || plain.ServerIdentity != "" || len(plain.IdentityIssues) != 0 {
				t.Errorf("the plaintext row got identities: %+v", plain)
			}
			got := map[string]string{}
			for _, c := range rep.Certificates {
				got[c.Identity] = c.Status
				if c.Status != CertOK && c.Problem == "" {
					t.Errorf("%s: status %s without a problem", c.Identity, c.Status)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.wantCerts) {
				t.Errorf("certificates = %v, want %v", got, tt.wantCerts)
			}
			problems := 0
			for _, s := range tt.wantCerts {
				if s != CertOK {
					problems++
				}
			}
			if rep.Summary.CertificateProblems != problems {
				t.Errorf("summary certificate problems = %d, want %d", rep.Summary.CertificateProblems, problems)
			}
			if hb.ZtunnelConnections != tt.conns {
				t.Errorf("ztunnel connections = %d, want %d", hb.ZtunnelConnections, tt.conns)
			}
			issues := strings.Join(hb.IdentityIssues, "; ")
			if tt.wantIssue == "" && issues != "" || !strings.Contains(issues, tt.wantIssue) {
				t.Errorf("issues = %q, want %q", issues, tt.wantIssue)
			}
			if !rep.Passed {
				t.Errorf("identity findings must not fail the verdict")
			}
		})
	}
}

func TestFlagMissingIdentities(t *testing.T) {
	flows := []pcap.Flow{flow(ipA, ipB, 15008, pcap.ClassHBONE, 500, "h2")}
	rep := Judge(flows, testMap)
	FlagMissingIdentities(rep, false)
	if r := rep.Pairs[0].Rows[0]; len(r.IdentityIssues) != 0 {
		t.Errorf("flagged without any evidence read: %q", r.IdentityIssues)
	}
	// A dump that knows neither end.
	d := parseDump(t, "zt", []byte(`{"workloads": [], "certificates": []}`))
	JoinConfigDumps(rep, []ZtunnelDump{d}, testNow)
	FlagMissingIdentities(rep, true)
	r := rep.Pairs[0].Rows[0]
	if len(r.IdentityIssues) != 2 || !strings.Contains(r.IdentityIssues[0], "no identity for the client 10.0.0.1") || rep.Summary.IdentityIssues != 1 {
		t.Errorf("issues = %q, summary %+v", r.IdentityIssues, rep.Summary)
	}
	// Flagging twice does not repeat itself.
	FlagMissingIdentities(rep, true)
	if len(rep.Pairs[0].Rows[0].IdentityIssues) != 2 {
		t.Errorf("issues repeated: %q", rep.Pairs[0].Rows[0].IdentityIssues)
	}
}

func TestPodMapFromDumps(t *testing.T) {
	body, err := os.ReadFile("../ztunnel/testdata/configdump_object.json")
	if err != nil {
		t.Fatal(err)
	}
	m := PodMapFromDumps([]ZtunnelDump{parseDump(t, "old", body)})
	web, db := m[netip.MustParseAddr("10.244.1.5")], m[netip.MustParseAddr("10.244.1.6")]
	if web.Name() != "shop/web-1" || !web.Enrolled || db.Name() != "shop/db-0" || db.Enrolled {
		t.Errorf("pod map = %+v", m)
	}
}

func TestJudgeCert(t *testing.T) {
	at := func(s string) *time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return &v
	}
	tests := []struct {
		name     string
		c        ztunnel.Certificate
		want     string
		wantText string
	}{
		{"fresh 24h certificate (Istio's default) is fine", ztunnel.Certificate{State: "Available", ValidFrom: at("2026-11-20T23:00:00Z"), Expiration: at("2026-11-21T23:00:00Z")}, CertOK, ""},
		{"24h certificate past renewal", ztunnel.Certificate{State: "Available", ValidFrom: at("2026-11-20T04:00:00Z"), Expiration: at("2026-11-21T04:00:00Z")}, CertExpiring, "expires in 4h0m0s"},
		{"90-day certificate within a day", ztunnel.Certificate{State: "Available", ValidFrom: at("2026-08-23T00:00:00Z"), Expiration: at("2026-11-21T20:00:00Z")}, CertExpiring, "expires in 20h0m0s"},
		{"no validity period known", ztunnel.Certificate{State: "Available", Expiration: at("2026-11-21T20:00:00Z")}, CertExpiring, "not renewed"},
		{"expired", ztunnel.Certificate{State: "Available", Expiration: at("2026-11-20T20:00:00Z")}, CertExpired, "expired 2026-11-20T20:00:00Z"},
		{"initializing", ztunnel.Certificate{State: "Initializing"}, CertInitializing, "still requesting"},
		{"unavailable", ztunnel.Certificate{State: "Unavailable: no CA"}, CertUnavailable, "no CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, text := judgeCert(tt.c, testNow)
			if got != tt.want || !strings.Contains(text, tt.wantText) {
				t.Errorf("judgeCert = %s %q, want %s %q", got, text, tt.want, tt.wantText)
			}
		})
	}
}
