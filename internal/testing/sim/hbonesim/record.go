package hbonesim

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// Chunk is one write by one side of a recorded connection.
type Chunk struct {
	FromClient bool
	Data       []byte
}

// recorder tees every write of both ends of an in-memory connection.
type recorder struct {
	mu     sync.Mutex
	chunks []Chunk
}

type tapConn struct {
	net.Conn
	rec    *recorder
	client bool
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.rec.mu.Lock()
	c.rec.chunks = append(c.rec.chunks, Chunk{FromClient: c.client, Data: append([]byte(nil), p...)})
	c.rec.mu.Unlock()
	return c.Conn.Write(p)
}

// Record runs client and server against each other over an in-memory
// connection and returns the bytes each side wrote, in order. The result is
// a real protocol exchange that tests write into synthetic captures.
func Record(client, server func(net.Conn) error) ([]Chunk, error) {
	a, b := net.Pipe()
	rec := &recorder{}
	ca := &tapConn{Conn: a, rec: rec, client: true}
	sb := &tapConn{Conn: b, rec: rec}
	_ = a.SetDeadline(time.Now().Add(20 * time.Second))
	_ = b.SetDeadline(time.Now().Add(20 * time.Second))
	errc := make(chan error, 1)
	go func() {
		err := server(sb)
		_ = sb.Close()
		errc <- err
	}()
	cerr := client(ca)
	_ = ca.Close()
	serr := <-errc
	if cerr != nil {
		return nil, cerr
	}
	if serr != nil && !errors.Is(serr, io.EOF) && !errors.Is(serr, io.ErrClosedPipe) {
		return nil, serr
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.chunks, nil
}

// RecordHBONE records one HBONE connection carrying one CONNECT to target
// with an echo exchange of msg inside.
func RecordHBONE(ca *CA, client, server tls.Certificate, serverID, target string, msg []byte) ([]Chunk, error) {
	return Record(func(c net.Conn) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cl, err := DialClient(ctx, "pipe", ca.ClientConfig(client, serverID), func(context.Context, string) (net.Conn, error) { return c, nil })
		if err != nil {
			return err
		}
		defer func() { _ = cl.Close() }()
		s, err := cl.Connect(ctx, target)
		if err != nil {
			return err
		}
		if err := RoundTrip(s, msg); err != nil {
			return err
		}
		return s.Close()
	}, func(c net.Conn) error {
		tc := tls.Server(c, ca.ServerConfig(server))
		if err := tc.Handshake(); err != nil {
			return err
		}
		srv := &Server{Dial: func(context.Context, string) (net.Conn, error) {
			// The tunnel target is an in-process echo.
			x, y := net.Pipe()
			go func() { _, _ = io.Copy(y, y); _ = y.Close() }()
			return x, nil
		}}
		opts := &http2.ServeConnOpts{Handler: http.HandlerFunc(srv.connect)} //nolint:staticcheck // see Server.Serve
		(&http2.Server{}).ServeConn(tc, opts)                                //nolint:staticcheck // see Server.Serve
		return nil
	})
}

// RecordTLS records a TLS connection between the given configs with an echo
// exchange of msg.
func RecordTLS(clientCfg, serverCfg *tls.Config, msg []byte) ([]Chunk, error) {
	return Record(func(c net.Conn) error {
		tc := tls.Client(c, clientCfg)
		if err := tc.Handshake(); err != nil {
			return err
		}
		return RoundTrip(tc, msg)
	}, func(c net.Conn) error {
		tc := tls.Server(c, serverCfg)
		if err := tc.Handshake(); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(tc, buf); err != nil {
			return err
		}
		_, err := tc.Write(buf)
		// Let the client read before the pipe closes.
		_, _ = io.Copy(io.Discard, tc)
		return err
	})
}

// RecordPlain records a plaintext HTTP/1.1 exchange.
func RecordPlain(host, path string) ([]Chunk, error) {
	return Record(func(c net.Conn) error {
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+host+"\r\nUser-Agent: hbone-sim\r\n\r\n"); err != nil {
			return err
		}
		buf := make([]byte, 512)
		_, err := c.Read(buf)
		return err
	}, func(c net.Conn) error {
		buf := make([]byte, 512)
		if _, err := c.Read(buf); err != nil {
			return err
		}
		_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return err
	})
}
