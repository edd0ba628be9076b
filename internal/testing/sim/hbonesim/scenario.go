package hbonesim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Ports the scenario servers listen on inside namespace B.
const (
	EchoPort  = 8080 // tunnel target (the app behind ztunnel)
	HTTPPort  = 8081 // plaintext HTTP control
	TLSPort   = 8443 // plain TLS with SNI control
	TLSServer = "web.example.test"
)

// Scenario runs the servers in B and makes traffic from A.
type Scenario struct {
	Topo *Topology
	CA   *CA
	// ClientID and ServerID are the SPIFFE identities of the two workloads.
	ClientID, ServerID string

	client tls.Certificate
	hbone  *Server
	lns    []net.Listener
	https  []*http.Server
	log    *syncBuffer
}

type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// StartScenario issues certificates and starts the HBONE, echo, HTTP and TLS
// servers inside B.
func StartScenario(topo *Topology) (*Scenario, error) {
	ca, err := NewCA("cluster.local")
	if err != nil {
		return nil, err
	}
	s := &Scenario{Topo: topo, CA: ca, ClientID: ca.SPIFFEID("a", "x"), ServerID: ca.SPIFFEID("b", "y"), log: &syncBuffer{}}
	if s.client, err = ca.Issue("a", "x"); err != nil {
		return nil, err
	}
	srvCert, err := ca.Issue("b", "y")
	if err != nil {
		return nil, err
	}
	web, err := ca.IssueDNS(TLSServer)
	if err != nil {
		return nil, err
	}
	listen := func(port int) (net.Listener, error) {
		ln, err := topo.B.Listen(fmt.Sprintf("%s:%d", topo.AddrB, port))
		if err == nil {
			s.lns = append(s.lns, ln)
		}
		return ln, err
	}
	ln, err := listen(Port)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.hbone = &Server{TLS: ca.ServerConfig(srvCert), Dial: topo.B.Dialer(""), Log: s.log, Identity: s.ServerID}
	go func(ln net.Listener) { _ = s.hbone.Serve(ln) }(ln)
	if ln, err = listen(EchoPort); err != nil {
		s.Close()
		return nil, err
	}
	go Echo(ln)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hello from b/server\n") })
	if ln, err = listen(HTTPPort); err != nil {
		s.Close()
		return nil, err
	}
	h := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	s.https = append(s.https, h)
	go func(ln net.Listener) { _ = h.Serve(ln) }(ln)
	if ln, err = listen(TLSPort); err != nil {
		s.Close()
		return nil, err
	}
	ht := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, TLSConfig: &tls.Config{Certificates: []tls.Certificate{web}, NextProtos: []string{"http/1.1"}}}
	s.https = append(s.https, ht)
	go func(ln net.Listener) { _ = ht.Serve(tls.NewListener(ln, ht.TLSConfig)) }(ln)
	return s, nil
}

// Close stops every server.
func (s *Scenario) Close() {
	for _, ln := range s.lns {
		_ = ln.Close()
	}
	for _, h := range s.https {
		_ = h.Close()
	}
	if s.hbone != nil {
		s.hbone.Close()
	}
}

// AccessLog returns the ztunnel-style log lines written so far.
func (s *Scenario) AccessLog() []byte {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	return append([]byte(nil), s.log.buf...)
}

// HBONE opens conns pooled HBONE connections from src (in A) to B:15008 and
// runs streams CONNECT tunnels to B's echo port over each.
func (s *Scenario) HBONE(ctx context.Context, src string, conns, streams int) error {
	for i := 0; i < conns; i++ {
		cl, err := DialClient(ctx, fmt.Sprintf("%s:%d", s.Topo.AddrB, Port), s.CA.ClientConfig(s.client, s.ServerID), s.Topo.A.Dialer(src))
		if err != nil {
			return err
		}
		for j := 0; j < streams; j++ {
			st, err := cl.Connect(ctx, fmt.Sprintf("%s:%d", s.Topo.AddrB, EchoPort))
			if err != nil {
				_ = cl.Close()
				return err
			}
			if err := RoundTrip(st, []byte(fmt.Sprintf("tunnel %d stream %d: ping", i, j))); err != nil {
				_ = cl.Close()
				return err
			}
			_ = st.Close()
		}
		if err := cl.Close(); err != nil {
			return err
		}
	}
	return nil
}

func (s *Scenario) httpClient(src string, tlsCfg *tls.Config) *http.Client {
	dial := s.Topo.A.Dialer(src)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext:       func(ctx context.Context, _, addr string) (net.Conn, error) { return dial(ctx, addr) },
		TLSClientConfig:   tlsCfg,
		DisableKeepAlives: true,
	}}
}

// PlainHTTP makes a plaintext HTTP GET from src (in A) to B's HTTP port.
func (s *Scenario) PlainHTTP(ctx context.Context, src string) error {
	return s.get(ctx, s.httpClient(src, nil), fmt.Sprintf("http://%s:%d/", s.Topo.AddrB, HTTPPort))
}

// PlainTLS makes an HTTPS GET with SNI from src (in A) to B's TLS port.
func (s *Scenario) PlainTLS(ctx context.Context, src string) error {
	cfg := &tls.Config{ServerName: TLSServer, RootCAs: s.CA.Pool, NextProtos: []string{"http/1.1"}}
	return s.get(ctx, s.httpClient(src, cfg), fmt.Sprintf("https://%s:%d/", s.Topo.AddrB, TLSPort))
}

func (s *Scenario) get(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || len(b) == 0 {
		return errors.New("hbone-sim: unexpected response from " + url)
	}
	return nil
}
