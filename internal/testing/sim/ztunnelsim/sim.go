// Package sim is a TEST-ONLY stand-in for one node's ztunnel. It is not
// ztunnel and carries no proxy: it serves ztunnel's observable surfaces in
// their real formats so kubectl-ambient's health model can be tested against
// a real API server's pod proxy:
//
//   - :15020 /metrics in Prometheus text with ztunnel's metric and label names,
//   - :15021 /healthz/ready,
//   - :15000 /config_dump with workloads (array or address-keyed object shape)
//     and certificates (real x509 with SPIFFE URI SANs),
//   - access log lines in ztunnel's text format, optionally as CRI log lines.
//
// Counters are functions of the time since Start, so successive scrapes see
// real rates. Scenarios shape what is served.
package ztunnelsim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Scenario selects how the stand-in behaves.
type Scenario string

// The scenarios the tests and the demo use.
const (
	Healthy            Scenario = "healthy"
	NotReady           Scenario = "not-ready"      // /healthz/ready answers 503
	NoZtunnel          Scenario = "no-ztunnel"     // nothing runs: tests create no pod for the node
	ExpiringCerts      Scenario = "expiring-certs" // workload certificates expire in 3 hours
	FailingConnections Scenario = "failing"        // most outbound connections fail
	Restarting         Scenario = "restarting"     // recent restarts; xDS reconnects
	// PendingProxies: ztunnel never starts the proxies of two pods, so
	// workload_manager_pending_proxy_count stays at 2 on every scrape and
	// config_dump's workloadState shows those pods Pending.
	PendingProxies Scenario = "pending-proxies"
)

// Scenarios lists every scenario, in a stable order.
var Scenarios = []Scenario{Healthy, NotReady, NoZtunnel, ExpiringCerts, FailingConnections, Restarting, PendingProxies}

// Workload is one pod the stand-in pretends to serve.
type Workload struct {
	Name, Namespace, ServiceAccount, IP string
	// Pending means ztunnel has not started the pod's proxy: it counts in
	// the pending gauge, shows state Pending and holds no certificate.
	Pending bool
}

// Stand is one node's ztunnel stand-in.
type Stand struct {
	Node     string
	Scenario Scenario
	Version  string
	// ObjectShape makes config_dump use the older address-keyed objects.
	ObjectShape bool
	Workloads   []Workload
	TrustDomain string
	Start       time.Time

	once  sync.Once
	certs []certInfo
	err   error
}

type certInfo struct {
	identity        string
	pem             string
	serial          string
	notBefore, exp  time.Time
	state           string
	rootPEM, rootSN string
	rootExp         time.Time
}

// New returns a stand-in for node with a few workloads.
// The PendingProxies scenario adds two pods whose proxies stay pending.
func New(node string, sc Scenario) *Stand {
	s := &Stand{
		Node: node, Scenario: sc, Version: "1.24.1", TrustDomain: "cluster.local", Start: time.Now(),
		Workloads: []Workload{
			{Name: "web-" + node, Namespace: "shop", ServiceAccount: "web", IP: "10.244.250.1"},
			{Name: "db-" + node, Namespace: "shop", ServiceAccount: "db", IP: "10.244.250.2"},
		},
	}
	if sc == PendingProxies {
		s.Workloads = append(s.Workloads,
			Workload{Name: "api-" + node, Namespace: "shop", ServiceAccount: "api", IP: "10.244.250.3", Pending: true},
			Workload{Name: "worker-" + node, Namespace: "shop", ServiceAccount: "worker", IP: "10.244.250.4", Pending: true})
	}
	return s
}

// proxyCounts returns how many workloads have an active and a pending proxy.
func (s *Stand) proxyCounts() (active, pending int) {
	for _, w := range s.Workloads {
		if w.Pending {
			pending++
		} else {
			active++
		}
	}
	return active, pending
}

func (s *Stand) elapsed() float64 {
	d := time.Since(s.Start).Seconds()
	if d < 0 {
		return 0
	}
	return d
}

// Metrics renders :15020/metrics at this moment.
func (s *Stand) Metrics() string {
	t := s.elapsed()
	opened, failed := 10*t, 0.0
	xds := 0.0
	switch s.Scenario {
	case FailingConnections:
		failed = 8 * t
		opened = 2 * t
	case Restarting:
		// Each "restart" drops the xDS stream: one termination every 2 s.
		xds = float64(int(t / 2))
	}
	closed := opened * 0.9
	active, pending := s.proxyCounts()
	var b strings.Builder
	fmt.Fprintf(&b, "# HELP istio_build Istio component build info.\n# TYPE istio_build gauge\n")
	fmt.Fprintf(&b, "istio_build{component=\"ztunnel\",tag=%q} 1\n", s.Version)
	fmt.Fprintf(&b, "# HELP workload_manager_active_proxy_count The total number current workloads with active proxies.\n# TYPE workload_manager_active_proxy_count gauge\n")
	fmt.Fprintf(&b, "workload_manager_active_proxy_count %d\n", active)
	fmt.Fprintf(&b, "# HELP workload_manager_pending_proxy_count The total number current workloads with pending proxies.\n# TYPE workload_manager_pending_proxy_count gauge\n")
	fmt.Fprintf(&b, "workload_manager_pending_proxy_count %d\n", pending)
	src := s.identity("shop", "web")
	dst := s.identity("shop", "db")
	labels := fmt.Sprintf(`reporter="source",source_workload="web",source_canonical_service="web",source_workload_namespace="shop",source_principal=%q,destination_workload="db",destination_workload_namespace="shop",destination_principal=%q,destination_service="db.shop.svc.cluster.local",request_protocol="tcp",response_flags="-",connection_security_policy="mutual_tls"`, src, dst)
	counter := func(name, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n%s{%s} %.0f\n", name, help, name, name, labels, v)
	}
	counter("istio_tcp_connections_opened_total", "The total number of TCP connections opened.", opened)
	counter("istio_tcp_connections_closed_total", "The total number of TCP connections closed.", closed)
	counter("istio_tcp_sent_bytes_total", "The size of total bytes sent during response in case of a TCP connection.", 1500*opened)
	counter("istio_tcp_received_bytes_total", "The size of total bytes received during request in case of a TCP connection.", 400*opened)
	fmt.Fprintf(&b, "# HELP istio_tcp_connections_failed_total The total number of TCP connections that failed to establish.\n# TYPE istio_tcp_connections_failed_total counter\n")
	fmt.Fprintf(&b, "istio_tcp_connections_failed_total{%s,response_flags=\"CONNECT\"} %.0f\n", strings.Replace(labels, `response_flags="-",`, "", 1), failed)
	fmt.Fprintf(&b, "# HELP istio_xds_connection_terminations_total The total number of completed connections to xds server (unstable).\n# TYPE istio_xds_connection_terminations_total counter\n")
	fmt.Fprintf(&b, "istio_xds_connection_terminations_total{reason=\"Reconnect\"} %.0f\n", xds)
	return b.String()
}

func (s *Stand) identity(ns, sa string) string {
	return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", s.TrustDomain, ns, sa)
}

// Ready reports what /healthz/ready answers.
func (s *Stand) Ready() bool { return s.Scenario != NotReady }

func (s *Stand) makeCerts() {
	s.once.Do(func() {
		now := time.Now()
		rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			s.err = err
			return
		}
		rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{s.TrustDomain}},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign}
		rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
		if err != nil {
			s.err = err
			return
		}
		rootPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}))
		seen := map[string]bool{}
		for i, w := range s.Workloads {
			id := s.identity(w.Namespace, w.ServiceAccount)
			if seen[id] || w.Pending {
				continue
			}
			seen[id] = true
			// Workload certificates live 24 h and are renewed at half-life:
			// a healthy one was issued an hour ago; the expiring one 21 h ago
			// and never renewed (3 h left).
			issued := now.Add(-time.Hour)
			if s.Scenario == ExpiringCerts {
				issued = now.Add(-21 * time.Hour)
			}
			u, _ := url.Parse(id)
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				s.err = err
				return
			}
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(1000 + i)), URIs: []*url.URL{u},
				NotBefore: issued, NotAfter: issued.Add(24 * time.Hour),
				KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, rootTmpl, &key.PublicKey, rootKey)
			if err != nil {
				s.err = err
				return
			}
			s.certs = append(s.certs, certInfo{identity: id, state: "Available",
				pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), serial: fmt.Sprintf("%x", tmpl.SerialNumber),
				notBefore: tmpl.NotBefore, exp: tmpl.NotAfter, rootPEM: rootPEM, rootSN: "1", rootExp: rootTmpl.NotAfter})
		}
	})
}

// ConfigDump renders the admin /config_dump.
func (s *Stand) ConfigDump() ([]byte, error) {
	s.makeCerts()
	if s.err != nil {
		return nil, s.err
	}
	type chainEntry struct {
		PEM            string `json:"pem"`
		SerialNumber   string `json:"serialNumber"`
		ValidFrom      string `json:"validFrom"`
		ExpirationTime string `json:"expirationTime"`
	}
	var certs []map[string]any
	for _, c := range s.certs {
		certs = append(certs, map[string]any{
			"identity":  c.identity,
			"state":     c.state,
			"certChain": []chainEntry{{c.pem, c.serial, c.notBefore.UTC().Format(time.RFC3339), c.exp.UTC().Format(time.RFC3339)}},
			"rootCerts": []chainEntry{{c.rootPEM, c.rootSN, s.Start.Add(-time.Hour).UTC().Format(time.RFC3339), c.rootExp.UTC().Format(time.RFC3339)}},
		})
	}
	var workloads any
	var list []map[string]any
	byAddr := map[string]map[string]any{}
	state := map[string]any{}
	for _, w := range s.Workloads {
		uid := fmt.Sprintf("cluster1//v1/Pod/%s/%s", w.Namespace, w.Name)
		wl := map[string]any{
			"uid": uid, "workloadIps": []string{w.IP}, "protocol": "HBONE", "name": w.Name, "namespace": w.Namespace,
			"serviceAccount": w.ServiceAccount, "workloadName": strings.Split(w.Name, "-")[0], "workloadType": "pod",
			"canonicalName": strings.Split(w.Name, "-")[0], "canonicalRevision": "latest", "clusterId": "cluster1",
			"trustDomain": s.TrustDomain, "node": s.Node, "status": "Healthy",
		}
		list = append(list, wl)
		byAddr[w.IP] = wl
		st := "Up"
		if w.Pending {
			st = "Pending"
		}
		state[uid] = map[string]any{"state": st, "info": map[string]string{"name": w.Name, "namespace": w.Namespace, "serviceAccount": w.ServiceAccount},
			"connections": map[string]any{"inbound": []any{}, "outbound": []any{}}}
	}
	workloads = list
	services := any([]any{map[string]any{"name": "web", "namespace": "shop", "hostname": "web.shop.svc.cluster.local", "vips": []string{"cluster1/10.96.0.20"}}})
	if s.ObjectShape {
		workloads = byAddr
		services = map[string]any{"cluster1/10.96.0.20": map[string]any{"name": "web", "namespace": "shop"}}
	}
	dump := map[string]any{"workloads": workloads, "services": services, "policies": []any{}, "certificates": certs, "workloadState": state}
	return json.MarshalIndent(dump, "", "  ")
}

// AccessLogLines renders n "connection complete" lines ending now, in
// ztunnel's text log format (tab-separated time, level, target, message,
// then key=value fields).
func (s *Stand) AccessLogLines(n int) []string {
	now := time.Now().UTC()
	out := make([]string, 0, n)
	for i := n - 1; i >= 0; i-- {
		at := now.Add(-time.Duration(i) * time.Second)
		line := fmt.Sprintf("%s\tinfo\taccess\tconnection complete\tsrc.addr=10.244.250.1:%d src.workload=%q src.namespace=\"shop\" src.identity=%q dst.addr=10.244.250.2:15008 dst.hbone_addr=\"10.244.250.2:5432\" dst.service=\"db.shop.svc.cluster.local\" dst.workload=%q dst.namespace=\"shop\" dst.identity=%q direction=\"outbound\" bytes_sent=%d bytes_recv=%d duration=\"%dms\"",
			at.Format("2006-01-02T15:04:05.000000Z"), 40000+i, "web-"+s.Node, s.identity("shop", "web"), "db-"+s.Node, s.identity("shop", "db"), 120+i, 4096, 1+i%7)
		if s.Scenario == FailingConnections && i%2 == 0 {
			line = fmt.Sprintf("%s\twarn\taccess\tconnection complete\tsrc.addr=10.244.250.1:%d src.workload=%q src.namespace=\"shop\" dst.addr=10.244.250.2:5432 dst.workload=%q dst.namespace=\"shop\" direction=\"outbound\" bytes_sent=0 bytes_recv=0 duration=\"3000ms\" error=\"connection timed out\"",
				at.Format("2006-01-02T15:04:05.000000Z"), 40000+i, "web-"+s.Node, "db-"+s.Node)
		}
		out = append(out, line)
	}
	return out
}

// WriteCRILog writes lines in the CRI log file format kubelet (and kwok) read:
// "<RFC3339Nano> stdout F <line>".
func WriteCRILog(w io.Writer, lines []string) error {
	for _, l := range lines {
		if _, err := fmt.Fprintf(w, "%s stdout F %s\n", time.Now().UTC().Format(time.RFC3339Nano), l); err != nil {
			return err
		}
	}
	return nil
}

// Handler serves every endpoint of the stand-in on one mux (for tests that
// use one port); ServePorts serves them on ztunnel's three ports.
func (s *Stand) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = io.WriteString(w, s.Metrics())
	})
	mux.HandleFunc("/healthz/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !s.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.HandleFunc("/config_dump", func(w http.ResponseWriter, _ *http.Request) {
		b, err := s.ConfigDump()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	return mux
}

// Serve serves the stand-in on the given listeners (the metrics, readiness
// and admin ports) until Close on the returned server group.
func (s *Stand) Serve(listeners ...net.Listener) *Servers {
	g := &Servers{}
	h := s.Handler()
	for _, l := range listeners {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		g.servers = append(g.servers, srv)
		go func() { _ = srv.Serve(l) }()
	}
	return g
}

// Servers is a group of running HTTP servers.
type Servers struct{ servers []*http.Server }

// Close stops every server.
func (g *Servers) Close() {
	for _, s := range g.servers {
		_ = s.Close()
	}
}
