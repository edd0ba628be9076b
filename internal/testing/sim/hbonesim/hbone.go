package hbonesim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// Port is the HBONE port.
const Port = 15008

// Server accepts HBONE tunnels: TLS, then HTTP/2 CONNECT requests whose
// :authority is the address to reach; the stream is spliced to a TCP
// connection to that address.
type Server struct {
	TLS *tls.Config
	// Dial reaches the tunnel target; nil means a plain net.Dialer.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Log, when set, receives a ztunnel-style "connection complete" access
	// log line per tunnel, built from the real TLS peer certificate.
	Log io.Writer
	// Identity is the server's own SPIFFE ID, for the log.
	Identity string

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// Serve accepts connections on ln until it is closed.
func (s *Server) Serve(ln net.Listener) error {
	h2 := &http2.Server{} //nolint:staticcheck // per-connection control over one accepted TLS conn, as ztunnel does
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		s.track(c, true)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.track(c, false)
			tc := tls.Server(c, s.TLS)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := tc.HandshakeContext(ctx)
			cancel()
			if err != nil {
				_ = c.Close()
				return
			}
			handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// ServeConn may return before its handlers do: Close waits
				// for them too (the connection's own count is still held
				// while this handler starts).
				s.wg.Add(1)
				defer s.wg.Done()
				s.connect(w, r)
				s.logConn(r, tc)
			})
			opts := &http2.ServeConnOpts{Handler: handler} //nolint:staticcheck // see h2 above
			h2.ServeConn(tc, opts)                         //nolint:staticcheck // see h2 above
		}()
	}
}

func (s *Server) track(c net.Conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	if add {
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
}

// Close ends every tunnel and waits for the handlers.
func (s *Server) Close() {
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// logConn writes the access-log line ztunnel's inbound side would write.
func (s *Server) logConn(r *http.Request, tc *tls.Conn) {
	if s.Log == nil || r.Method != http.MethodConnect {
		return
	}
	src := ""
	if cs := tc.ConnectionState(); len(cs.PeerCertificates) > 0 && len(cs.PeerCertificates[0].URIs) > 0 {
		src = cs.PeerCertificates[0].URIs[0].String()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = fmt.Fprintf(s.Log, "%s\tinfo\taccess\tconnection complete\tsrc.addr=%s src.identity=%q dst.addr=%s dst.hbone_addr=%s dst.identity=%q direction=\"inbound\" bytes_sent=0 bytes_recv=0 duration=\"1ms\"\n",
		time.Now().UTC().Format(time.RFC3339Nano), tc.RemoteAddr(), src, tc.LocalAddr(), r.Host, s.Identity)
}

func (s *Server) connect(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "hbone-sim: only CONNECT", http.StatusMethodNotAllowed)
		return
	}
	dial := s.Dial
	if dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second}
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	up, err := dial(r.Context(), r.Host)
	if err != nil {
		http.Error(w, "hbone-sim: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer func() { _ = up.Close() }()
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	fl.Flush()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(up, r.Body)
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, rerr := up.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				break
			}
			fl.Flush()
		}
		if rerr != nil {
			break
		}
	}
	<-done
}

// Client is one pooled HBONE connection (ztunnel pools per identity pair):
// several CONNECT streams share its single TLS handshake.
type Client struct {
	tls *tls.Conn
	cc  *http2.ClientConn //nolint:staticcheck // one pooled connection, CONNECT streams on it
}

// DialClient opens TLS to an HBONE server (addr is ip:15008) with cfg and
// starts HTTP/2 on it. dial makes the TCP connection (nil: net.Dialer).
func DialClient(ctx context.Context, addr string, cfg *tls.Config, dial func(ctx context.Context, addr string) (net.Conn, error)) (*Client, error) {
	if dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second}
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	raw, err := dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("hbone-sim: handshake with %s: %w", addr, err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		_ = tc.Close()
		return nil, fmt.Errorf("hbone-sim: %s negotiated ALPN %q, want h2", addr, p)
	}
	cc, err := (&http2.Transport{}).NewClientConn(tc) //nolint:staticcheck // see Client
	if err != nil {
		_ = tc.Close()
		return nil, err
	}
	return &Client{tls: tc, cc: cc}, nil
}

// Close ends the pooled connection.
func (c *Client) Close() error { return c.cc.Close() }

// Connect opens a tunnel to target (podIP:port) and returns it as a stream.
func (c *Client) Connect(ctx context.Context, target string) (io.ReadWriteCloser, error) {
	pr, pw := io.Pipe()
	req := (&http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Host: target},
		Host:   target,
		Header: http.Header{},
		Body:   pr,
	}).WithContext(ctx)
	resp, err := c.cc.RoundTrip(req)
	if err != nil {
		_ = pw.Close()
		return nil, fmt.Errorf("hbone-sim: CONNECT %s: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		_ = pw.Close()
		_ = resp.Body.Close()
		return nil, fmt.Errorf("hbone-sim: CONNECT %s: %s", target, resp.Status)
	}
	return &stream{w: pw, r: resp.Body}, nil
}

type stream struct {
	w *io.PipeWriter
	r io.ReadCloser
}

func (s *stream) Read(p []byte) (int, error)  { return s.r.Read(p) }
func (s *stream) Write(p []byte) (int, error) { return s.w.Write(p) }
func (s *stream) Close() error {
	_ = s.w.Close()
	return s.r.Close()
}

// Echo serves ln: every connection gets its input written back, until EOF.
// It stands in for the application behind the app port.
func Echo(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer func() { _ = c.Close() }()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			_, _ = io.Copy(c, c)
		}()
	}
}

// RoundTrip writes msg to rw and reads the same number of bytes back (an
// echo exchange), so both directions carry payload.
func RoundTrip(rw io.ReadWriter, msg []byte) error {
	if _, err := rw.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(rw, got); err != nil {
		return err
	}
	if string(got) != string(msg) {
		return errors.New("hbone-sim: echo mismatch")
	}
	return nil
}
