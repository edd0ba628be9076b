package mtlslive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/hbonesim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls/capture"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
)

// run is one finished run of the binary.
type run struct {
	code           int
	stdout, stderr string
}

// TestLiveCommand runs the built binary's live verify-mtls against the lab
// while the test makes real HBONE and plaintext traffic: exit codes and rows
// as a CI job sees them, the --write file, the identity join with a
// config_dump served through the API server's pods/portforward, no capture
// pod left after a run or after SIGINT, and --cleanup.
func TestLiveCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test; skipped with -short")
	}
	requireCapture(t)
	bin := kubelab.BuildBinary(t, kubelab.PluginPackage)
	e := newEnv(t)
	lab := e.lab
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// A client pod on the same node, for --from; the traffic itself comes
	// from this host, which --pods maps as the enrolled workload a/client.
	lab.RunPod(t, e.ns, "client-0", lab.Nodes[0], map[string]string{"app": "client"})
	podsFile := filepath.Join(t.TempDir(), "pods.yaml")
	if err := os.WriteFile(podsFile, []byte(fmt.Sprintf("%s: {namespace: a, pod: client, enrolled: true}\n", e.clientIP)), 0o600); err != nil {
		t.Fatal(err)
	}
	// The ztunnel's admin config_dump, reached the way the command reaches a
	// real one: a port-forward to its port 15000 (kwok forwards to this server).
	dump, err := e.ca.ConfigDump([]hbonesim.DumpWorkload{
		{IP: e.clientIP.String(), Namespace: "a", Name: "client", ServiceAccount: "x", Protocol: "HBONE", Cert: true},
		{IP: e.ip, Namespace: e.ns, Name: e.server, ServiceAccount: "server", Protocol: "HBONE", Cert: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminSrv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/config_dump" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(dump)
	})}
	go func() { _ = adminSrv.Serve(admin) }()
	t.Cleanup(func() { _ = adminSrv.Close() })
	if err := lab.ForwardPodPort(ctx, e.zns, e.ztunnel, 15000, admin.Addr().String()); err != nil {
		t.Fatal(err)
	}

	start := func(t *testing.T, write, duration, output string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
		t.Helper()
		args := []string{"--kubeconfig", lab.Kubeconfig, "verify-mtls", "-n", e.ns, "--from", "client", "--to", "server",
			"--duration", duration, "--pods", podsFile, "-o", output}
		if write != "" {
			args = append(args, "--write", write)
		}
		cmd := exec.Command(bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &syncWriter{w: &stderr}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &stdout, &stderr
	}
	wait := func(t *testing.T, cmd *exec.Cmd, stdout, stderr *bytes.Buffer) run {
		t.Helper()
		err := cmd.Wait()
		r := run{stdout: stdout.String(), stderr: stderr.String()}
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			r.code = ee.ExitCode()
		default:
			t.Fatalf("run plugin: %v", err)
		}
		t.Logf("exit %d; stderr:\n%s", r.code, r.stderr)
		return r
	}
	// captureRun runs the binary for a 6s capture while traffic() runs once
	// the capture pod is up and tcpdump had time to start.
	// With output "table" the report is nil and the table is in stdout.
	captureRun := func(t *testing.T, write, output string, traffic func()) (run, *mtls.Report) {
		t.Helper()
		cmd, stdout, stderr := start(t, write, "6s", output)
		waitCapturePod(ctx, t, lab, e.ns)
		time.Sleep(2 * time.Second)
		traffic()
		r := wait(t, cmd, stdout, stderr)
		waitNoCapturePods(ctx, t, lab, e.ns)
		if output == "table" {
			t.Logf("table:\n%s", r.stdout)
			return r, nil
		}
		var rep mtls.Report
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("stdout is not the JSON report: %v\n%s", err, r.stdout)
		}
		return r, &rep
	}

	t.Run("hbone passes", func(t *testing.T) {
		write := filepath.Join(t.TempDir(), "live.pcap")
		r, rep := captureRun(t, write, "json", func() {
			if err := lab.WritePodLog(e.hboneRound(ctx, t)...); err != nil {
				t.Fatal(err)
			}
		})
		if r.code != 0 || !rep.Passed || rep.Verdict != mtls.OutcomePass || len(rep.Nodes) == 0 || rep.Nodes[0].Packets == 0 {
			t.Fatalf("exit %d, verdict %s, passed %v, nodes %+v: want 0 and a PASS: %s", r.code, rep.Verdict, rep.Passed, rep.Nodes, r.stdout)
		}
		x := e.row(rep, hbonesim.Port)
		if x == nil || x.Class != pcap.ClassHBONE || x.Verdict != mtls.Pass || x.Client.Name != "a/client" || x.Server.Name != e.ns+"/"+e.server {
			t.Fatalf("HBONE row = %+v", x)
		}
		// Identities: the access log and the config_dump (through the
		// port-forward) agree; both certificates are held and fresh.
		serverID := e.ca.SPIFFEID(e.ns, "server")
		if x.ClientIdentity != "spiffe://cluster.local/ns/a/sa/x" || x.ServerIdentity != serverID || len(x.Identities) != 1 || len(x.IdentityIssues) != 0 {
			t.Errorf("identities: client %q server %q log %q issues %q", x.ClientIdentity, x.ServerIdentity, x.Identities, x.IdentityIssues)
		}
		if len(rep.Certificates) != 2 || rep.Summary.CertificateProblems != 0 {
			t.Errorf("certificates = %+v", rep.Certificates)
		}
		for _, c := range rep.Certificates {
			if c.Status != mtls.CertOK || c.Ztunnel != e.zns+"/"+e.ztunnel {
				t.Errorf("certificate %+v", c)
			}
		}
		if strings.Contains(r.stderr, "warning: config_dump") {
			t.Errorf("config_dump not read: %s", r.stderr)
		}
		// The kept capture: 0600 and a pcap the decoder reads.
		st, err := os.Stat(write)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("--write file: %v %v", st, err)
		}
		f, err := os.Open(write)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		d := pcap.NewDecoder()
		if err := d.ReadAll(ctx, f); err != nil || d.Stats().Packets == 0 {
			t.Errorf("--write file is not a pcap with packets: %v %+v", err, d.Stats())
		}
	})

	t.Run("plaintext fails", func(t *testing.T) {
		r, _ := captureRun(t, "", "table", func() {
			_ = e.hboneRound(ctx, t)
			e.plaintext(t)
		})
		if r.code != 1 {
			t.Fatalf("exit %d, want 1", r.code)
		}
		// The table as a user reads it: the failing plaintext row first, the
		// HBONE row with its identities, ztunnel's certificates, the verdict.
		pair := "a/client -> " + e.ns + "/" + e.server
		lines := strings.Split(r.stdout, "\n")
		fields := func(i int) []string {
			if i < len(lines) {
				return strings.Fields(lines[i])
			}
			return nil
		}
		// PAIR (3 fields) PORT CLASS TLS ALPN CIPHER GROUP FLOWS PACKETS BYTES VERDICT
		if f := fields(1); len(f) < 13 || f[0]+" "+f[1]+" "+f[2] != pair || f[3] != "8081" || f[4] != "plaintext" || f[12] != "FAIL" {
			t.Errorf("first row %q, want the failing plaintext row of %s", f, pair)
		}
		if f := fields(2); len(f) < 13 || f[3] != "15008" || f[4] != "hbone" || f[12] != "PASS" || !strings.HasSuffix(lines[2], "spiffe://cluster.local/ns/a/sa/x -> "+e.ca.SPIFFEID(e.ns, "server")) {
			t.Errorf("second row %q, want the passing HBONE row with identities", lines[2])
		}
		for _, want := range []string{"IDENTITIES", "Certificates held by ztunnel", e.zns + "/" + e.ztunnel, "\nFAIL: "} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("table lacks %q", want)
			}
		}
	})

	// The live mode gives the same verdict: a capture in which nothing
	// talked proves nothing, exit 3, naming the node whose capture was empty.
	t.Run("no traffic is inconclusive", func(t *testing.T) {
		r, rep := captureRun(t, "", "json", func() {})
		reasons := strings.Join(rep.Reasons, "\n")
		if r.code != 3 || rep.Verdict != mtls.OutcomeInconclusive || !strings.Contains(reasons, "no mesh pair") || !strings.Contains(reasons, "the capture on node ") {
			t.Fatalf("exit %d, verdict %s, reasons %q: want 3, INCONCLUSIVE, no mesh pair, the node that saw nothing", r.code, rep.Verdict, reasons)
		}
	})

	t.Run("sigint leaves no capture pod", func(t *testing.T) {
		cmd, stdout, stderr := start(t, "", "60s", "json")
		waitCapturePod(ctx, t, lab, e.ns)
		time.Sleep(time.Second) // tcpdump streaming over exec
		began := time.Now()
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		r := wait(t, cmd, stdout, stderr)
		if r.code == 0 {
			t.Errorf("interrupted run exited 0")
		}
		if took := time.Since(began); took > 30*time.Second {
			t.Errorf("exit took %s after SIGINT", took)
		}
		list, err := lab.Clients.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: capture.Label})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				t.Errorf("capture pod %s not deleted when the process exited", p.Name)
			}
		}
		waitNoCapturePods(ctx, t, lab, e.ns)
	})

	t.Run("cleanup", func(t *testing.T) {
		left := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "ambient-capture-left-behind", Namespace: e.ns, Labels: map[string]string{capture.Label: "true"}},
			Spec:       corev1.PodSpec{NodeName: lab.Nodes[1], Containers: []corev1.Container{{Name: "capture", Image: capture.DefaultImage}}},
		}
		if _, err := lab.Clients.Kube.CoreV1().Pods(e.ns).Create(ctx, left, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "--kubeconfig", lab.Kubeconfig, "verify-mtls", "--cleanup").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "deleted capture pod "+e.ns+"/"+left.Name) {
			t.Fatalf("--cleanup: %v\n%s", err, out)
		}
		waitNoCapturePods(ctx, t, lab, e.ns)
	})
}
