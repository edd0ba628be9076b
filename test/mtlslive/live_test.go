// Package mtlslive runs verify-mtls's live capture against the lab: real
// API server, real capture pods, exec served by kwok (which runs tcpdump on
// this host), real HBONE-like and plaintext traffic to a fake pod's IP.
package mtlslive

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/hbonesim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls/capture"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
)

func TestMain(m *testing.M) { kubelab.Main(m, kubelab.Options{Nodes: 2}) }

func requireCapture(t *testing.T) {
	t.Helper()
	kubelab.RequireRootTools(t, "live capture test (tcpdump and the lab's pod network)", "tcpdump", "timeout")
}

func TestLiveCapture(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test; skipped with -short")
	}
	requireCapture(t)
	e := newEnv(t)
	lab := e.lab
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	write := filepath.Join(t.TempDir(), "live.pcap")
	type result struct {
		res *mtls.LiveResult
		err error
	}
	done := make(chan result, 1)
	var progress bytes.Buffer
	go func() {
		res, err := capture.Live(ctx, lab.Config, lab.Clients.Kube, capture.Options{
			LiveConfig: mtls.LiveConfig{Namespace: e.ns, To: "server", Duration: 6 * time.Second, WriteFile: write}, Progress: &syncWriter{w: &progress},
		})
		done <- result{res, err}
	}()

	// Traffic once the capture pod runs and tcpdump had time to start.
	waitCapturePod(ctx, t, lab, e.ns)
	time.Sleep(2 * time.Second)
	lines := e.hboneRound(ctx, t)
	e.plaintext(t)
	if err := lab.WritePodLog(lines...); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d access-log lines; ztunnel pod log now: %q", len(lines), lab.Kubectl(t, "logs", "-n", e.zns, e.ztunnel))

	r := <-done
	if r.err != nil {
		t.Fatalf("live capture: %v\nprogress: %s", r.err, progress.String())
	}
	t.Logf("progress:\n%s", progress.String())
	pods := r.res.Pods
	pods[e.clientIP] = mtls.Workload{Namespace: "a", Pod: "client", Enrolled: true}
	rep := mtls.Judge(r.res.Flows, pods)
	mtls.JoinIdentities(rep, r.res.Logs)
	if x := e.row(rep, hbonesim.Port); x == nil || x.Class != pcap.ClassHBONE || x.Verdict != mtls.Pass || x.Server.Name != e.ns+"/server-0" {
		t.Errorf("HBONE row = %+v; flows %+v", x, r.res.Flows)
	} else if want := "spiffe://cluster.local/ns/a/sa/x -> " + e.ca.SPIFFEID(e.ns, "server"); len(x.Identities) != 1 || x.Identities[0] != want {
		t.Errorf("identities from the ztunnel log = %q, want %q (log entries %+v)", x.Identities, want, r.res.Logs)
	}
	if x := e.row(rep, hbonesim.HTTPPort); x == nil || x.Class != pcap.ClassPlaintext || x.Verdict != mtls.Fail {
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
	// No port-forward rule serves this ztunnel's admin port: a warning, not a failure.
	if len(r.res.Dumps) != 0 || !strings.Contains(progress.String(), "warning: config_dump of ztunnel") {
		t.Errorf("dumps %d; progress %q", len(r.res.Dumps), progress.String())
	}
	waitNoCapturePods(ctx, t, lab, e.ns)
}

// waitCapturePod waits for a running capture pod and fails if one runs
// in the application's namespace appNS: capture pods live in a namespace
// of the run's own.
func waitCapturePod(ctx context.Context, t *testing.T, lab *kubelab.Lab, appNS string) {
	t.Helper()
	for {
		list, err := lab.Clients.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: capture.Label})
		if err == nil && len(list.Items) > 0 && list.Items[0].Status.Phase == "Running" {
			for _, p := range list.Items {
				if p.Namespace == appNS || !strings.HasPrefix(p.Namespace, "ambient-capture-") {
					t.Fatalf("capture pod %s/%s: want it in a capture namespace of the run's own, never in the application's %s", p.Namespace, p.Name, appNS)
				}
			}
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
