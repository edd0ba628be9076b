package mtls

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
)

// helloOnly is an HBONE-looking flow whose ServerHello was not captured.
func helloOnly(c, s netip.Addr) pcap.Flow {
	f := flow(c, s, pcap.HBONEPort, pcap.ClassHBONE, 500, "h2")
	f.ServerHellos, f.ServerHello, f.NegotiatedVersion = 0, false, 0
	f.OfferedGroups = []uint16{0x11ec, 0x001d}
	return f
}

func withHandshake(f pcap.Flow, cipher, group uint16) pcap.Flow {
	f.CipherSuite, f.KeyShareGroup = cipher, group
	return f
}

func TestHandshakeTruth(t *testing.T) {
	tests := []struct {
		name     string
		f        pcap.Flow
		rules    Rules
		want     Verdict
		reason   string
		outcome  Outcome
		handshke string
	}{
		{"client hello only", helloOnly(ipA, ipB), Rules{}, Warn, "HBONE attempted, handshake not captured", OutcomeInconclusive, HandshakeOffered},
		{"ztunnel suite and hybrid group", withHandshake(flow(ipA, ipB, 15008, pcap.ClassHBONE, 500, "h2"), 0x1302, 0x11ec), Rules{RequirePQC: true}, Pass, "HBONE mTLS", OutcomePass, HandshakeNegotiated},
		{"classical group passes by default", withHandshake(flow(ipA, ipB, 15008, pcap.ClassHBONE, 500, "h2"), 0x1301, 0x001d), Rules{}, Pass, "HBONE mTLS", OutcomePass, HandshakeNegotiated},
		{"classical group under --require-pqc", withHandshake(flow(ipA, ipB, 15008, pcap.ClassHBONE, 500, "h2"), 0x1301, 0x001d), Rules{RequirePQC: true}, Fail, "classical group " + pcap.GroupName(0x001d), OutcomeFail, HandshakeNegotiated},
		{"group not seen under --require-pqc", flow(ipA, ipB, 15008, pcap.ClassHBONE, 500, "h2"), Rules{RequirePQC: true}, Warn, "group was not seen", OutcomeInconclusive, HandshakeNegotiated},
		{"a suite ztunnel never uses", withHandshake(flow(ipA, ipB, 15008, pcap.ClassHBONE, 500, "h2"), 0x1303, 0x001d), Rules{}, Warn, "not ztunnel's HBONE", OutcomeInconclusive, HandshakeNegotiated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := JudgeCapture([]pcap.Flow{tt.f}, pcap.Stats{Packets: 10, TCP: 10, Flows: 1}, testMap, tt.rules)
			if len(rep.Pairs) != 1 || len(rep.Pairs[0].Rows) != 1 {
				t.Fatalf("pairs = %+v", rep.Pairs)
			}
			r := rep.Pairs[0].Rows[0]
			if r.Verdict != tt.want || !strings.Contains(r.Reason, tt.reason) {
				t.Errorf("row %s %q, want %s containing %q", r.Verdict, r.Reason, tt.want, tt.reason)
			}
			if rep.Verdict != tt.outcome || rep.Passed != (tt.outcome == OutcomePass) {
				t.Errorf("run %s (passed %v), want %s; reasons %q", rep.Verdict, rep.Passed, tt.outcome, rep.Reasons)
			}
			if r.Handshake != tt.handshke {
				t.Errorf("handshake %q, want %q", r.Handshake, tt.handshke)
			}
			switch tt.handshke {
			case HandshakeOffered:
				if r.Negotiated != nil || r.Offered == nil || r.Offered.Version != "1.3" || !r.Offered.PostQuantum {
					t.Errorf("offered %+v negotiated %+v: want only the offer (1.3, post-quantum group offered)", r.Offered, r.Negotiated)
				}
			case HandshakeNegotiated:
				n := r.Negotiated
				if n == nil || n.Version != "1.3" || tt.f.CipherSuite != 0 && (n.CipherSuite != pcap.CipherSuiteName(tt.f.CipherSuite) || n.Group != pcap.GroupName(tt.f.KeyShareGroup) || n.PostQuantum != pcap.IsPostQuantum(tt.f.KeyShareGroup)) {
					t.Errorf("negotiated %+v", n)
				}
			}
		})
	}
}

func TestPreambleBetweenMeshWorkloadsFails(t *testing.T) {
	f := flow(ipA, ipB, 8443, pcap.ClassTLS, 900, "h2")
	f.Preamble = "http-connect"
	edge := f
	edge.Client = netip.AddrPortFrom(ipN, 40001)
	rep := Judge([]pcap.Flow{f, edge}, testMap)
	r := findRow(rep, "a/client", "b/server", 8443)
	if r == nil || r.Verdict != Fail || !strings.Contains(r.Reason, "plaintext preamble, then TLS") || r.Preamble != "http-connect" {
		t.Fatalf("mesh row = %+v", r)
	}
	if e := findRow(rep, "n/plain", "b/server", 8443); e == nil || e.Verdict != Info {
		t.Errorf("edge row = %+v, want not judged", e)
	}
	if rep.Verdict != OutcomeFail {
		t.Errorf("verdict %s", rep.Verdict)
	}
}

func TestExpectedPlaintextListedApart(t *testing.T) {
	v6 := netip.MustParseAddr(ambient.KubeletProbeSourceIPv6)
	ipB6 := netip.MustParseAddr("fd00::2")
	pods := PodMap{ipB6: {Namespace: "b", Pod: "server6", Enrolled: true}}
	for k, v := range testMap {
		pods[k] = v
	}
	flows := []pcap.Flow{
		flow(ipA, ipB, 15008, pcap.ClassHBONE, 500, "h2"),
		flow(KubeletProbeAddr, ipB, 8080, pcap.ClassPlaintext, 50),
		flow(v6, ipB6, 8080, pcap.ClassPlaintext, 50),
		flow(ipA, ipB, ambient.PortDNS, pcap.ClassPlaintext, 40),
	}
	rep := Judge(flows, pods)
	if len(rep.Probes) != 2 || len(rep.DNS) != 1 || len(rep.Pairs) != 1 {
		t.Fatalf("probes %d, dns %d, pairs %d: want 2, 1, 1", len(rep.Probes), len(rep.DNS), len(rep.Pairs))
	}
	if rep.Verdict != OutcomePass {
		t.Errorf("verdict %s %q: expected plaintext must not fail", rep.Verdict, rep.Reasons)
	}
}

func TestPodMapOutsideTheMesh(t *testing.T) {
	pod := func(name string, labels map[string]string, host bool, ip string) corev1.Pod {
		return corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: labels,
				Annotations: map[string]string{ambient.AnnotationRedirection: ambient.RedirectionEnabled}},
			Spec:   corev1.PodSpec{HostNetwork: host, NodeName: "node-1"},
			Status: corev1.PodStatus{PodIP: ip},
		}
	}
	m := PodMapFromPods([]corev1.Pod{
		pod("cart-1", nil, false, "10.1.0.1"),
		pod("legacy-1", map[string]string{ambient.LabelDataplaneMode: ambient.DataplaneNone}, false, "10.1.0.2"),
		pod("agent-1", nil, true, "192.168.0.10"),
	})
	if w := m[netip.MustParseAddr("10.1.0.1")]; !w.Mesh() || w.Mode() != "ambient" {
		t.Errorf("enrolled pod = %+v", w)
	}
	if w := m[netip.MustParseAddr("10.1.0.2")]; w.Mesh() || !w.OptedOut || w.Mode() != "none" {
		t.Errorf("opted-out pod = %+v, want outside the mesh", w)
	}
	if w, ok := m[netip.MustParseAddr("192.168.0.10")]; !ok || w.Mesh() || !w.HostNetwork || w.Name() != "node/node-1" {
		t.Errorf("host-network address = %+v (mapped %v), want the node, outside the mesh", w, ok)
	}
}

func TestExpectations(t *testing.T) {
	flows := []pcap.Flow{flow(ipA, ipB, 15008, pcap.ClassHBONE, 500, "h2"), helloOnly(ipS, ipB)}
	exp := func(s ...string) Rules {
		var r Rules
		for _, v := range s {
			e, err := ParseExpectation(v)
			if err != nil {
				t.Fatal(err)
			}
			r.Expect = append(r.Expect, e)
		}
		return r
	}
	// ipS -> ipB is unproven (WARN), so the run without expectations is
	// INCONCLUSIVE; expecting it fails the run.
	tests := []struct {
		name    string
		rules   Rules
		want    Outcome
		reasons string
	}{
		{"by pod name", exp("client->server"), OutcomeInconclusive, "could not be proven"},
		{"by namespace and deployment prefix", exp("a/client->b/server"), OutcomeInconclusive, ""},
		{"missing pair is named", exp("a/client->b/server", "b/server->a/client"), OutcomeFail, "expected pair b/server->a/client is missing"},
		{"unproven expected pair fails", exp("s/legacy->server"), OutcomeFail, "expected pair s/legacy->server is WARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := JudgeCapture(flows, pcap.Stats{Packets: 20, TCP: 20, Flows: 2}, testMap, tt.rules)
			if rep.Verdict != tt.want || !strings.Contains(strings.Join(rep.Reasons, "\n"), tt.reasons) {
				t.Errorf("verdict %s, reasons %q; want %s with %q", rep.Verdict, rep.Reasons, tt.want, tt.reasons)
			}
			if len(rep.Expectations) != len(tt.rules.Expect) {
				t.Errorf("expectations %+v", rep.Expectations)
			}
		})
	}
	if _, err := ParseExpectation("cart"); err == nil {
		t.Error("ParseExpectation accepted a value without ->")
	}
	pass := JudgeCapture(flows[:1], pcap.Stats{Packets: 10, TCP: 10, Flows: 1}, testMap, exp("client->server"))
	if pass.Verdict != OutcomePass || !pass.Expectations[0].Passed {
		t.Errorf("verdict %s, expectations %+v", pass.Verdict, pass.Expectations)
	}
}

func TestNoEvidenceIsInconclusive(t *testing.T) {
	tests := []struct {
		name   string
		flows  []pcap.Flow
		stats  pcap.Stats
		nodes  []NodeCapture
		reason string
	}{
		{"empty capture", nil, pcap.Stats{}, nil, "holds no packets"},
		{"no TCP, maybe a tunnel", nil, pcap.Stats{Packets: 40, NonTCP: 40}, nil, "encapsulation the decoder could not open"},
		{"unmapped addresses", []pcap.Flow{flow(ipX, netip.MustParseAddr("10.9.9.9"), 15008, pcap.ClassHBONE, 100, "h2")}, pcap.Stats{Packets: 10, TCP: 10}, nil, "none of the 2 addresses in the capture maps to a pod"},
		{"only edge pairs", []pcap.Flow{flow(ipN, ipB, 8080, pcap.ClassPlaintext, 100)}, pcap.Stats{Packets: 10, TCP: 10}, nil, "no two mesh workloads talked"},
		{"a node saw nothing", nil, pcap.Stats{Packets: 5, TCP: 5}, []NodeCapture{{Node: "node-a", Packets: 5, TCP: 5}, {Node: "node-b"}}, "the capture on node node-b saw nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := JudgeCapture(tt.flows, tt.stats, testMap, Rules{})
			if tt.nodes != nil {
				rep.Nodes = tt.nodes
				rep.Decide(Rules{})
			}
			if rep.Verdict != OutcomeInconclusive || rep.Passed {
				t.Fatalf("verdict %s passed %v, want INCONCLUSIVE", rep.Verdict, rep.Passed)
			}
			if got := strings.Join(rep.Reasons, "\n"); !strings.Contains(got, tt.reason) {
				t.Errorf("reasons %q, want %q", got, tt.reason)
			}
		})
	}
}
