package ztunnelsim

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// serve runs a stand-in on a loopback port.
func serve(t *testing.T, s *Stand) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := s.Serve(l)
	t.Cleanup(g.Close)
	return "http://" + l.Addr().String()
}

func TestStandServesRealFormats(t *testing.T) {
	s := New("node-a", FailingConnections)
	s.Start = time.Now().Add(-10 * time.Second)
	base := serve(t, s)

	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("metrics status %d", code)
	}
	m1, err := ztunnel.ParseMetrics(body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if m1.Build != "1.24.1" || m1.ActiveProxies != 2 || m1.ConnFailed < 70 {
		t.Fatalf("metrics %+v", m1)
	}
	for _, label := range []string{"source_principal=", "destination_principal=", `connection_security_policy="mutual_tls"`} {
		if !strings.Contains(string(body), label) {
			t.Fatalf("metrics lack label %s", label)
		}
	}
	time.Sleep(1100 * time.Millisecond)
	_, body = get(t, base+"/metrics")
	m2, _ := ztunnel.ParseMetrics(body, time.Now())
	r := ztunnel.ComputeRates(m1, m2)
	if r == nil || r.FailedPerSec < 4 || r.FailedPerSec > 12 {
		t.Fatalf("failing scenario should fail about 8 connections/s, rates %+v", r)
	}

	if code, _ := get(t, base+"/healthz/ready"); code != 200 {
		t.Fatalf("ready status %d", code)
	}
	s.Scenario = NotReady
	if code, _ := get(t, base+"/healthz/ready"); code != 503 {
		t.Fatalf("not-ready status %d, want 503", code)
	}
}

func TestConfigDumpShapesAndCertificates(t *testing.T) {
	for _, objects := range []bool{false, true} {
		s := New("node-b", ExpiringCerts)
		s.ObjectShape = objects
		base := serve(t, s)
		_, body := get(t, base+"/config_dump")
		var top map[string]json.RawMessage
		if err := json.Unmarshal(body, &top); err != nil {
			t.Fatal(err)
		}
		wantFirst := byte('[')
		if objects {
			wantFirst = '{'
		}
		if top["workloads"][0] != wantFirst {
			t.Fatalf("objects=%v: workloads start with %q", objects, top["workloads"][0])
		}
		d, err := ztunnel.ParseConfigDump(body)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Workloads) != 2 || d.Workloads[0].Node != "node-b" || len(d.Certificates) != 2 {
			t.Fatalf("dump %+v", d)
		}
		c := d.Certificates[0]
		left := time.Until(*c.Expiration)
		if c.State != "Available" || left > 3*time.Hour || left < 2*time.Hour {
			t.Fatalf("expiring scenario cert %+v (left %s)", c, left)
		}
	}
	// The PEM is a real certificate with the SPIFFE identity as URI SAN.
	s := New("node-c", Healthy)
	body, err := s.ConfigDump()
	if err != nil {
		t.Fatal(err)
	}
	var dump struct {
		Certificates []struct {
			Identity  string `json:"identity"`
			CertChain []struct {
				PEM string `json:"pem"`
			} `json:"certChain"`
		} `json:"certificates"`
	}
	if err := json.Unmarshal(body, &dump); err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode([]byte(dump.Certificates[0].CertChain[0].PEM))
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.URIs) != 1 || cert.URIs[0].String() != dump.Certificates[0].Identity {
		t.Fatalf("URI SAN %v, identity %s", cert.URIs, dump.Certificates[0].Identity)
	}
}

func TestAccessLogLines(t *testing.T) {
	s := New("node-d", FailingConnections)
	var b strings.Builder
	if err := WriteCRILog(&b, s.AccessLogLines(6)); err != nil {
		t.Fatal(err)
	}
	entries := ztunnel.ParseAccessLog([]byte(b.String()))
	if len(entries) != 6 {
		t.Fatalf("%d entries", len(entries))
	}
	mtls, failed := 0, 0
	for _, e := range entries {
		if e.MTLS {
			mtls++
		}
		if e.Error != "" {
			failed++
		}
	}
	if mtls != 3 || failed != 3 {
		t.Fatalf("mtls %d failed %d", mtls, failed)
	}
	if !strings.Contains(b.String(), "\tinfo\taccess\tconnection complete\tsrc.addr=") {
		t.Fatal("lines must use ztunnel's tab-separated layout")
	}
}

func TestPendingProxiesDoNotDrain(t *testing.T) {
	s := New("node-e", PendingProxies)
	base := serve(t, s)
	th := ztunnel.DefaultThresholds()
	th.PendingGrace = time.Second
	var tracker ztunnel.PendingTracker
	var prev, cur *ztunnel.Metrics
	var stuck time.Duration
	for i := 0; i < 2; i++ {
		if i > 0 {
			time.Sleep(1100 * time.Millisecond)
		}
		_, body := get(t, base+"/metrics")
		m, err := ztunnel.ParseMetrics(body, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if m.PendingProxies != 2 || m.ActiveProxies != 2 {
			t.Fatalf("scrape %d: %v pending, %v active proxies; want 2 and 2", i, m.PendingProxies, m.ActiveProxies)
		}
		prev, cur = cur, m
		stuck = tracker.Observe(s.Node, m.PendingProxies, m.At)
	}
	h := ztunnel.Evaluate(ztunnel.Observation{Node: s.Node, NodeReady: true, Schedulable: true,
		Ztunnel: &ztunnel.Pod{Phase: "Running", Ready: true}, Probe: &ztunnel.Probe{Ready: true},
		Metrics: cur, Rates: ztunnel.ComputeRates(prev, cur), PendingStuck: stuck}, time.Now(), th)
	if h.State != ztunnel.StateWarning || len(h.Reasons) != 1 || h.Reasons[0].Code != ztunnel.ReasonPendingProxies ||
		!strings.HasPrefix(h.Summary(), "2 pending proxies not draining for 1s") {
		t.Fatalf("two scrapes with 2 pending proxies: %s %+v", h.State, h.Reasons)
	}

	// config_dump: the two pods are Pending in workloadState and hold no certificate.
	_, body := get(t, base+"/config_dump")
	var raw struct {
		WorkloadState map[string]struct {
			State string `json:"state"`
		} `json:"workloadState"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	pending := 0
	for _, st := range raw.WorkloadState {
		if st.State == "Pending" {
			pending++
		}
	}
	if len(raw.WorkloadState) != 4 || pending != 2 {
		t.Fatalf("workloadState %+v", raw.WorkloadState)
	}
	d, err := ztunnel.ParseConfigDump(body)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range d.Workloads {
		got = append(got, w.Name+"="+w.ProxyState)
	}
	want := "api-node-e=Pending db-node-e=Up web-node-e=Up worker-node-e=Pending"
	if strings.Join(got, " ") != want || len(d.Certificates) != 2 {
		t.Fatalf("workloads %v (want %s), %d certificates", got, want, len(d.Certificates))
	}

	// The other scenarios have no pending proxy.
	for _, sc := range Scenarios {
		if sc == PendingProxies {
			continue
		}
		m, err := ztunnel.ParseMetrics([]byte(New("n", sc).Metrics()), time.Now())
		if err != nil || m.PendingProxies != 0 {
			t.Fatalf("%s: pending %v, %v", sc, m, err)
		}
	}
}
