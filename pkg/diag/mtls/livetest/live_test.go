// Package livetest runs verify-mtls's live capture against the lab: real
// API server, real capture pods, exec served by kwok (which runs tcpdump on
// this host), real HBONE-like and plaintext traffic to a fake pod's IP.
package livetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-ambient/kubectl-ambient/hack/sim/hbone"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube/labtest"
)

func TestMain(m *testing.M) { labtest.Main(m, labtest.Options{Nodes: 2}) }

func requireCapture(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (tcpdump and the lab's pod network)")
	}
	for _, tool := range []string{"tcpdump", "timeout"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "live capture test needs: " + strings.Join(missing, ", ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func TestLiveCapture(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test; skipped with -short")
	}
	requireCapture(t)
	lab := labtest.Get(t)
	ns := lab.Namespace(t, map[string]string{"istio.io/dataplane-mode": "ambient"})
	server := lab.RunPod(t, ns, "server-0", lab.Nodes[0], map[string]string{"app": "server"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// What istio-cni writes on a captured pod.
	patch := []byte(`{"metadata":{"annotations":{"` + mtls.AnnotationRedirection + `":"enabled"}}}`)
	if _, err := lab.Clients.Kube.CoreV1().Pods(ns).Patch(ctx, server.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	ip := server.Status.PodIP

	// The server pod's endpoints: HBONE on 15008, an echo app on 8080 and a
	// plaintext HTTP port 8081, all on the fake pod's IP in the lab network.
	ca, err := hbone.NewCA("cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	clientCert, _ := ca.Issue("a", "x")
	serverCert, _ := ca.Issue(ns, "server")
	listen := func(port int) net.Listener {
		ln, err := lab.ListenPod(ip, port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ln.Close() })
		return ln
	}
	podDial := func(ctx context.Context, addr string) (net.Conn, error) {
		var c net.Conn
		err := lab.RunInPodNetwork(func() (err error) {
			c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
			return err
		})
		return c, err
	}
	// A ztunnel pod on the server's node; kwok serves the lab's pod log file
	// as its log, where the HBONE server's access-log lines are written.
	zns := lab.Namespace(t, nil)
	lab.RunPod(t, zns, "ztunnel-abcde", lab.Nodes[0], map[string]string{"app": "ztunnel"})
	var accessLog bytes.Buffer
	hb := &hbone.Server{TLS: ca.ServerConfig(serverCert), Dial: podDial, Log: &syncWriter{w: &accessLog}, Identity: ca.SPIFFEID(ns, "server")}
	go func(ln net.Listener) { _ = hb.Serve(ln) }(listen(hbone.Port))
	t.Cleanup(hb.Close)
	go hbone.Echo(listen(hbone.EchoPort))
	web := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "plain\n") })}
	go func(ln net.Listener) { _ = web.Serve(ln) }(listen(hbone.HTTPPort))
	t.Cleanup(func() { _ = web.Close() })

	// The client is this host (the root network namespace, routed to the
	// pod network over the lab's veth); find its address and map it as an
	// enrolled workload, as --pods would.
	probe, err := net.DialTimeout("tcp", net.JoinHostPort(ip, fmt.Sprint(hbone.EchoPort)), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	clientIP := probe.LocalAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
	_ = probe.Close()

	write := filepath.Join(t.TempDir(), "live.pcap")
	type result struct {
		res *mtls.LiveResult
		err error
	}
	done := make(chan result, 1)
	var progress bytes.Buffer
	go func() {
		res, err := mtls.Live(ctx, lab.Config, lab.Clients.Kube, mtls.LiveOptions{
			Namespace: ns, To: "server", Duration: 6 * time.Second, WriteFile: write, Progress: &syncWriter{w: &progress},
		})
		done <- result{res, err}
	}()

	// Traffic once the capture pod runs and tcpdump had time to start.
	waitCapturePod(ctx, t, lab, ns)
	time.Sleep(2 * time.Second)
	cl, err := hbone.DialClient(ctx, net.JoinHostPort(ip, fmt.Sprint(hbone.Port)), ca.ClientConfig(clientCert, ca.SPIFFEID(ns, "server")), nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := cl.Connect(ctx, net.JoinHostPort(ip, fmt.Sprint(hbone.EchoPort)))
	if err != nil {
		t.Fatal(err)
	}
	if err := hbone.RoundTrip(st, []byte("through the tunnel")); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	_ = cl.Close()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + net.JoinHostPort(ip, fmt.Sprint(hbone.HTTPPort)) + "/")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	hb.Close() // flushes the access-log line of the finished tunnel
	lines := strings.Split(strings.TrimSpace(accessLog.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "connection complete") {
		t.Fatalf("HBONE server access log = %q, want one connection complete line", lines)
	}
	if err := lab.WritePodLog(lines...); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d access-log lines; ztunnel pod log now: %q", len(lines), lab.Kubectl(t, "logs", "-n", zns, "ztunnel-abcde"))

	r := <-done
	if r.err != nil {
		t.Fatalf("live capture: %v\nprogress: %s", r.err, progress.String())
	}
	t.Logf("progress:\n%s", progress.String())
	pods := r.res.Pods
	pods[clientIP] = mtls.Workload{Namespace: "a", Pod: "client", Enrolled: true}
	rep := mtls.Judge(r.res.Flows, pods)
	row := func(port uint16) *mtls.Row {
		for i := range rep.Pairs {
			for j := range rep.Pairs[i].Rows {
				if x := &rep.Pairs[i].Rows[j]; x.Port == port && x.Client.Addr == clientIP && x.Server.Addr == netip.MustParseAddr(ip) {
					return x
				}
			}
		}
		return nil
	}
	mtls.JoinIdentities(rep, r.res.Logs)
	if x := row(hbone.Port); x == nil || x.Class != pcap.ClassHBONE || x.Verdict != mtls.Pass || x.Server.Name != ns+"/server-0" {
		t.Errorf("HBONE row = %+v; flows %+v", x, r.res.Flows)
	} else if want := "spiffe://cluster.local/ns/a/sa/x -> " + ca.SPIFFEID(ns, "server"); len(x.Identities) != 1 || x.Identities[0] != want {
		t.Errorf("identities from the ztunnel log = %q, want %q (log entries %+v)", x.Identities, want, r.res.Logs)
	}
	if x := row(hbone.HTTPPort); x == nil || x.Class != pcap.ClassPlaintext || x.Verdict != mtls.Fail {
		t.Errorf("plaintext row = %+v", x)
	}
	if rep.Passed {
		t.Errorf("report passed with plaintext between enrolled workloads")
	}
	if len(r.res.Files) != 1 {
		t.Fatalf("files = %v", r.res.Files)
	}
	if st, err := os.Stat(write); err != nil || st.Mode().Perm() != 0o600 || st.Size() == 0 {
		t.Errorf("--write file: %v %v", st, err)
	}

	// The capture pods are gone.
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := lab.Clients.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: mtls.CaptureLabel})
		if err == nil && len(list.Items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("capture pods left behind: %v %v", list, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func waitCapturePod(ctx context.Context, t *testing.T, lab *labtest.Lab, ns string) {
	t.Helper()
	for {
		list, err := lab.Clients.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: mtls.CaptureLabel})
		if err == nil && len(list.Items) > 0 && list.Items[0].Status.Phase == "Running" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no running capture pod: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
