package mtlslive

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/hbonesim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls/capture"
)

// env is an enrolled server pod in the lab with its endpoints on the fake
// pod's IP (HBONE on 15008, an echo app on 8080, plaintext HTTP on 8081),
// a ztunnel pod on its node, and this host as the client.
type env struct {
	lab      *kubelab.Lab
	ns       string
	server   string // pod name
	ip       string // server pod IP
	clientIP netip.Addr
	ca       *hbonesim.CA
	zns      string // namespace of the ztunnel pod
	ztunnel  string // its name
	dial     func(ctx context.Context, addr string) (net.Conn, error)
	// clientCert (a/x) and serverCert (ns/server) from ca.
	clientCert, serverCert tls.Certificate
}

func newEnv(t *testing.T) *env {
	t.Helper()
	lab := kubelab.Get(t)
	e := &env{lab: lab, ns: lab.Namespace(t, map[string]string{"istio.io/dataplane-mode": "ambient"}), server: "server-0"}
	pod := lab.RunPod(t, e.ns, e.server, lab.Nodes[0], map[string]string{"app": "server"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// What istio-cni writes on a captured pod.
	patch := []byte(`{"metadata":{"annotations":{"` + ambient.AnnotationRedirection + `":"enabled"}}}`)
	if _, err := lab.Clients.Kube.CoreV1().Pods(e.ns).Patch(ctx, e.server, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.ip = pod.Status.PodIP
	var err error
	if e.ca, err = hbonesim.NewCA("cluster.local"); err != nil {
		t.Fatal(err)
	}
	if e.clientCert, err = e.ca.Issue("a", "x"); err != nil {
		t.Fatal(err)
	}
	if e.serverCert, err = e.ca.Issue(e.ns, "server"); err != nil {
		t.Fatal(err)
	}
	e.dial = func(ctx context.Context, addr string) (net.Conn, error) {
		var c net.Conn
		err := lab.RunInPodNetwork(func() (err error) {
			c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
			return err
		})
		return c, err
	}
	go hbonesim.Echo(e.listen(t, hbonesim.EchoPort))
	web := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "plain\n") })}
	go func(ln net.Listener) { _ = web.Serve(ln) }(e.listen(t, hbonesim.HTTPPort))
	t.Cleanup(func() { _ = web.Close() })

	// The client is this host (the root network namespace, routed to the
	// pod network over the lab's veth): find its address.
	probe, err := net.DialTimeout("tcp", net.JoinHostPort(e.ip, fmt.Sprint(hbonesim.EchoPort)), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e.clientIP = probe.LocalAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	_ = probe.Close()

	// A ztunnel pod on the server's node; kwok serves the lab's pod log file
	// as its log, where the HBONE server's access-log lines are written.
	e.zns = lab.Namespace(t, nil)
	e.ztunnel = "ztunnel-abcde"
	lab.RunPod(t, e.zns, e.ztunnel, lab.Nodes[0], map[string]string{"app": "ztunnel"})
	return e
}

func (e *env) listen(t *testing.T, port int) net.Listener {
	t.Helper()
	ln, err := e.lab.ListenPod(e.ip, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// hboneRound runs an HBONE server on the pod's 15008 for one tunnel from
// this host to the echo app, and returns the access-log lines it wrote.
func (e *env) hboneRound(ctx context.Context, t *testing.T) []string {
	t.Helper()
	var accessLog bytes.Buffer
	hb := &hbonesim.Server{TLS: e.ca.ServerConfig(e.serverCert), Dial: e.dial, Log: &syncWriter{w: &accessLog}, Identity: e.ca.SPIFFEID(e.ns, "server")}
	ln, err := e.lab.ListenPod(e.ip, hbonesim.Port)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = hb.Serve(ln) }()
	defer func() { _ = ln.Close() }()
	cl, err := hbonesim.DialClient(ctx, net.JoinHostPort(e.ip, fmt.Sprint(hbonesim.Port)), e.ca.ClientConfig(e.clientCert, e.ca.SPIFFEID(e.ns, "server")), nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := cl.Connect(ctx, net.JoinHostPort(e.ip, fmt.Sprint(hbonesim.EchoPort)))
	if err != nil {
		t.Fatal(err)
	}
	if err := hbonesim.RoundTrip(st, []byte("through the tunnel")); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	_ = cl.Close()
	hb.Close() // flushes the access-log line of the finished tunnel
	lines := strings.Split(strings.TrimSpace(accessLog.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "connection complete") {
		t.Fatalf("HBONE server access log = %q, want one connection complete line", lines)
	}
	return lines
}

// plaintext makes one plaintext HTTP request from this host to the pod's
// app port: traffic that bypassed ztunnel.
func (e *env) plaintext(t *testing.T) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + net.JoinHostPort(e.ip, fmt.Sprint(hbonesim.HTTPPort)) + "/")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

// row finds the report's row from this host to the server on port.
func (e *env) row(rep *mtls.Report, port uint16) *mtls.Row {
	for i := range rep.Pairs {
		for j := range rep.Pairs[i].Rows {
			if x := &rep.Pairs[i].Rows[j]; x.Port == port && x.Client.Addr == e.clientIP && x.Server.Addr == netip.MustParseAddr(e.ip) {
				return x
			}
		}
	}
	return nil
}

// waitNoCapturePods fails unless every capture pod is gone and every
// capture namespace is deleted (or being deleted) within 30 seconds; ns is
// kept for the callers' readability: capture pods are looked for everywhere.
func waitNoCapturePods(ctx context.Context, t *testing.T, lab *kubelab.Lab, _ string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := lab.Clients.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: capture.Label})
		nss, nerr := lab.Clients.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: capture.Label})
		live := 0
		if nerr == nil {
			for _, n := range nss.Items {
				if n.DeletionTimestamp == nil {
					live++
				}
			}
		}
		if err == nil && nerr == nil && len(list.Items) == 0 && live == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("capture pods or namespaces left behind: %v %v; %v %v", list, err, nss, nerr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
