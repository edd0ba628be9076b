package mtls

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
)

var (
	ipA     = netip.MustParseAddr("10.0.0.1") // ambient
	ipB     = netip.MustParseAddr("10.0.0.2") // ambient
	ipS     = netip.MustParseAddr("10.0.0.3") // sidecar
	ipS2    = netip.MustParseAddr("10.0.0.6") // sidecar
	ipN     = netip.MustParseAddr("10.0.0.4") // not in the mesh
	ipX     = netip.MustParseAddr("10.0.0.5") // unknown
	testMap = PodMap{
		ipA:  {Namespace: "a", Pod: "client", Enrolled: true},
		ipB:  {Namespace: "b", Pod: "server", Enrolled: true},
		ipS:  {Namespace: "s", Pod: "legacy", Sidecar: true},
		ipS2: {Namespace: "s", Pod: "legacy2", Sidecar: true},
		ipN:  {Namespace: "n", Pod: "plain"},
	}
)

// flow is a flow as the decoder reports it; TLS and HBONE flows carry both
// hellos (a completed TLS 1.3 handshake).
func flow(c, s netip.Addr, port uint16, class pcap.Class, payload uint64, alpn ...string) pcap.Flow {
	f := pcap.Flow{
		Client: netip.AddrPortFrom(c, 40000), Server: netip.AddrPortFrom(s, port),
		Class: class, ALPN: alpn, PayloadBytes: payload, Packets: 10, Bytes: 1000 + payload,
	}
	if class == pcap.ClassHBONE || class == pcap.ClassTLS {
		f.ClientHellos, f.ServerHellos, f.ServerHello, f.TLSVersion, f.NegotiatedVersion = 1, 1, true, "1.3", 0x0304
	}
	return f
}

func TestJudgeFlow(t *testing.T) {
	tests := []struct {
		name   string
		f      pcap.Flow
		want   Verdict
		reason string
	}{
		{"ambient hbone", flow(ipA, ipB, 15008, pcap.ClassHBONE, 500, "h2"), Pass, "HBONE"},
		{"ambient plaintext on app port", flow(ipA, ipB, 8080, pcap.ClassPlaintext, 100), Fail, "bypassed ztunnel"},
		{"ambient tls on app port", flow(ipA, ipB, 8443, pcap.ClassTLS, 100, "http/1.1"), Fail, "app port"},
		{"ambient app port syn only", flow(ipA, ipB, 8080, pcap.ClassNoPayload, 0), Warn, "only port 15008"},
		{"ambient plaintext on 15008", flow(ipA, ipB, 15008, pcap.ClassPlaintext, 100), Fail, "plaintext on the HBONE port"},
		{"ambient unproven tls on 15008", flow(ipA, ipB, 15008, pcap.ClassTLS, 100, "h2"), Warn, "not proven"},
		{"ambient mid-stream", flow(ipA, ipB, 15008, pcap.ClassUnknown, 100), Warn, "mid-stream"},
		{"sidecar istio mtls", flow(ipS, ipS2, 8080, pcap.ClassTLS, 100, "istio-peer-exchange", "istio"), Pass, "sidecar mTLS"},
		{"sidecar to ambient hbone", flow(ipS, ipB, 15008, pcap.ClassHBONE, 100, "h2"), Pass, "HBONE"},
		{"sidecar plaintext", flow(ipS, ipB, 8080, pcap.ClassPlaintext, 100), Fail, "plaintext between mesh workloads"},
		{"sidecar app tls", flow(ipS, ipS2, 8443, pcap.ClassTLS, 100, "http/1.1"), Warn, "without Istio ALPN"},
		{"outside to ambient plaintext", flow(ipN, ipB, 8080, pcap.ClassPlaintext, 100), Info, "outside the mesh: not judged"},
		{"ambient to unknown plaintext", flow(ipA, ipX, 80, pcap.ClassPlaintext, 100), Info, "not a known pod"},
		{"unknown both", flow(ipX, netip.MustParseAddr("8.8.8.8"), 53, pcap.ClassPlaintext, 100), Info, "not known pods"},
		{"kubelet probe", flow(KubeletProbeAddr, ipB, 8080, pcap.ClassPlaintext, 100), Info, "kubelet probe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cw, cok := testMap[tt.f.Client.Addr()]
			sw, sok := testMap[tt.f.Server.Addr()]
			v, reason := JudgeFlow(tt.f, cw, cok, sw, sok)
			if v != tt.want || !strings.Contains(reason, tt.reason) {
				t.Fatalf("JudgeFlow = %s %q, want %s containing %q", v, reason, tt.want, tt.reason)
			}
		})
	}
}

func TestJudgeGroupsAndOrders(t *testing.T) {
	flows := []pcap.Flow{
		flow(ipA, ipB, 15008, pcap.ClassHBONE, 500, "h2"),
		flow(ipA, ipB, 15008, pcap.ClassHBONE, 700, "h2"),
		flow(ipN, ipB, 8080, pcap.ClassPlaintext, 100),
		flow(KubeletProbeAddr, ipB, 8080, pcap.ClassPlaintext, 50),
	}
	rep := Judge(flows, testMap)
	if !rep.Passed || len(rep.Pairs) != 2 || len(rep.Probes) != 1 {
		t.Fatalf("report = %+v", rep)
	}
	p := rep.Pairs[0]
	if p.Client.Name != "a/client" || p.Server.Name != "b/server" || p.Category != CategoryMesh || p.Verdict != Pass {
		t.Fatalf("first pair = %+v", p)
	}
	if len(p.Rows) != 1 || p.Rows[0].Flows != 2 || p.Rows[0].PayloadBytes != 1200 || p.Rows[0].Packets != 20 {
		t.Fatalf("rows = %+v, want one row aggregating two flows", p.Rows)
	}
	if rep.Summary.MeshPairs != 1 || rep.Summary.Pass != 1 || rep.Summary.Info != 2 {
		t.Fatalf("summary = %+v", rep.Summary)
	}

	// The negative control: one plaintext flow between the ambient pods fails
	// the pair and the report, and sorts first.
	flows = append(flows, flow(ipA, ipB, 8080, pcap.ClassPlaintext, 10))
	rep = Judge(flows, testMap)
	if rep.Passed || rep.Pairs[0].Verdict != Fail || rep.Pairs[0].Rows[0].Verdict != Fail || rep.Summary.Fail != 1 {
		t.Fatalf("report = %+v", rep)
	}
}

func TestLoadPodMap(t *testing.T) {
	for name, in := range map[string]string{
		"yaml": "10.0.0.1: {namespace: a, pod: client, enrolled: true}\n'fd00::1': {namespace: s, pod: legacy, sidecar: true}\n",
		"json": `{"10.0.0.1": {"namespace": "a", "pod": "client", "enrolled": true}, "fd00::1": {"namespace": "s", "pod": "legacy", "sidecar": true}}`,
	} {
		t.Run(name, func(t *testing.T) {
			m, err := LoadPodMap(strings.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			if w := m[ipA]; w.Name() != "a/client" || !w.Enrolled || w.Mode() != "ambient" {
				t.Errorf("10.0.0.1 = %+v", w)
			}
			if w := m[netip.MustParseAddr("fd00::1")]; w.Mode() != "sidecar" {
				t.Errorf("fd00::1 = %+v", w)
			}
		})
	}
	for name, in := range map[string]string{
		"bad ip":      "not-an-ip: {pod: x}\n",
		"unknown key": "10.0.0.1: {pod: x, enroled: true}\n",
		"not a map":   "- 10.0.0.1\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := LoadPodMap(strings.NewReader(in)); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestPodMapFromPods(t *testing.T) {
	pods := []corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "client", Annotations: map[string]string{ambient.AnnotationRedirection: "enabled"}},
			Status: corev1.PodStatus{PodIP: "10.0.0.1", PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::1"}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "pending", Annotations: map[string]string{ambient.AnnotationRedirection: "pending"}},
			Status: corev1.PodStatus{PodIP: "10.0.0.7"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "s", Name: "legacy", Annotations: map[string]string{ambient.AnnotationSidecarStatus: `{"containers":["istio-proxy"]}`}},
			Status: corev1.PodStatus{PodIP: "10.0.0.3"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "node-agent"}, Spec: corev1.PodSpec{HostNetwork: true},
			Status: corev1.PodStatus{PodIP: "192.168.1.10"}},
	}
	m := PodMapFromPods(pods)
	if !m[ipA].Enrolled || !m[netip.MustParseAddr("fd00::1")].Enrolled {
		t.Errorf("client not enrolled on both IPs: %+v", m)
	}
	if m[netip.MustParseAddr("10.0.0.7")].Enrolled {
		t.Errorf("a pending redirection is not enrolled yet")
	}
	if !m[ipS].Sidecar {
		t.Errorf("sidecar not detected")
	}
	if _, ok := m[netip.MustParseAddr("192.168.1.10")]; ok {
		t.Errorf("host-network pod mapped")
	}
}
