package kubelab

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// ExecIDEnv names one `kubectl exec` stream: the lab's exec proxy starts
// every exec'd command through a shell that exports it (the lab's directory,
// a colon and a counter), and every process that command starts inherits it.
const ExecIDEnv = "KUBELAB_EXEC_ID"

// execWrapper is the shell kwok runs in front of each exec'd command: it
// marks the command's environment with the stream's id, then becomes the
// command (same pid, same exit code, same streams).
const execWrapper = `export ` + ExecIDEnv + `="$0"; exec "$@"`

// execProxy stands where the fake nodes' kubelet port is, in front of kwok.
// kwok v0.8 runs an exec'd command itself and leaves it running when the
// exec stream ends; the proxy sees the stream end (the upgraded connection
// closes) and ends every process marked with that stream's id. Everything
// else (logs, port-forwards) passes through unchanged.
type execProxy struct {
	srv  *http.Server
	dir  string
	log  *os.File
	next atomic.Uint64
}

// startExecProxy listens on 127.0.0.1:port with kwok's serving certificate
// and forwards to kwok at kwokAddr, which it verifies with the lab's CA.
func startExecProxy(dir string, port int, kwokAddr, caFile string, serving certFiles) (*execProxy, error) {
	sh, err := findShell()
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(serving.Cert, serving.Key)
	if err != nil {
		return nil, fmt.Errorf("load kwok serving certificate for the exec proxy: %w", err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read lab ca for the exec proxy: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("lab ca %s holds no certificate", caFile)
	}
	ln, err := tls.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{
		Certificates: []tls.Certificate{pair}, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		return nil, fmt.Errorf("listen for the exec proxy on 127.0.0.1:%d: %w", port, err)
	}
	// Errors go to the lab's logs (a lab stopping cuts streams), not to
	// the test's output.
	logPath := filepath.Join(dir, "logs", "exec-proxy.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o750); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("create log directory for the exec proxy: %w", err)
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("open the exec proxy's log: %w", err)
	}
	errLog := log.New(logFile, "", log.LstdFlags)
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "https", Host: kwokAddr})
	rp.ErrorLog = errLog
	rp.Transport = &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		Proxy:           nil,
	}
	// Followed logs stream: pass every write on at once.
	rp.FlushInterval = -1
	p := &execProxy{dir: dir, log: logFile}
	p.srv = &http.Server{ReadHeaderTimeout: 30 * time.Second, ErrorLog: errLog, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The kubelet API: /exec/{namespace}/{pod}[/{uid}]/{container}?command=...
		if !strings.HasPrefix(r.URL.Path, "/exec/") {
			rp.ServeHTTP(w, r)
			return
		}
		id := fmt.Sprintf("%s:%d", p.dir, p.next.Add(1))
		q := r.URL.Query()
		q["command"] = append([]string{sh, "-c", execWrapper, id}, q["command"]...)
		r.URL.RawQuery = q.Encode()
		rp.ServeHTTP(w, r)
		// The stream ended (the command exited or the client went away).
		reapMarked(ExecIDEnv+"="+id, 2*time.Second)
	})}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// close stops accepting exec streams; the lab's Stop reaps what is left.
func (p *execProxy) close() {
	if p != nil {
		_ = p.srv.Close()
		_ = p.log.Close()
	}
}

func findShell() (string, error) {
	for _, sh := range []string{"/bin/sh", "/usr/bin/sh"} {
		if st, err := os.Stat(sh); err == nil && !st.IsDir() {
			return sh, nil
		}
	}
	return "", errors.New("no /bin/sh for the lab's exec proxy: install a POSIX shell (Debian: dash)")
}
