package meshchecks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/checker"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/meshchecks"
)

// Exit codes of the binary (pkg/cmd's ExitOK, ExitFailure, ExitUsage); this
// library directory may not import the command layer, so the tests run the
// built binary, as a user would.
const (
	exitFailure = 1
	exitUsage   = 2
)

// runCLI runs the built binary and returns stdout, stderr and the exit code.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	// Build first: the 60 s are the command's, not a cold build's.
	bin := kubelab.BuildBinary(t, kubelab.PluginPackage)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	c := exec.CommandContext(ctx, bin, args...)
	c.Stdout, c.Stderr = &out, &errOut
	c.Env = append(os.Environ(), "KUBECONFIG=/nonexistent")
	err := c.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// serveConfigDumps stands in for ztunnel's admin port on every ztunnel pod
// of istioNS: a real HTTP server on the pod IP, reached through the API
// server's pod proxy. badNode's ztunnel reports an unavailable certificate.
func serveConfigDumps(t *testing.T, lab *kubelab.Lab, istioNS, badNode string) {
	t.Helper()
	pods, err := lab.Clients.Kube.CoreV1().Pods(istioNS).List(context.Background(), metav1.ListOptions{LabelSelector: "app=ztunnel"})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	for _, p := range pods.Items {
		ln, err := lab.ListenPod(p.Status.PodIP, 15000)
		if errors.Is(err, kubelab.ErrNoPodNetwork) {
			t.Skip("lab has no pod network (needs root)")
		}
		if err != nil {
			t.Fatal(err)
		}
		state := "Available"
		if p.Spec.NodeName == badNode {
			state = "Unavailable: signing failed"
		}
		body := fmt.Sprintf(`{"workloads":[],"services":[],"certificates":[{"identity":"spiffe://cluster.local/ns/shop/sa/web","state":%q,`+
			`"certChain":[{"pem":"x","serialNumber":"0x1","validFrom":"2026-01-01T00:00:00Z","expirationTime":%q}],"rootCerts":[]}]}`, state, exp)
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/config_dump" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
	}
}

func TestLabCommandCheckHealthy(t *testing.T) {
	lab := meshchecks.GetLab(t)
	istioNS, appNS := meshchecks.InstallAmbientInLab(t, lab, false)
	serveConfigDumps(t, lab, istioNS, "")
	out, errOut, code := runCLI(t, "check", "--kubeconfig", lab.Kubeconfig, "--istio-namespace", istioNS, "-n", appNS)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	// Namespace names are random; the rest of the table is stable.
	norm := strings.NewReplacer(istioNS, "ISTIO-NS", appNS, "APP-NS").Replace(out)
	meshchecks.CompareGolden(t, "lab-check-healthy.golden", []byte(norm))
}

func TestLabCommandCheckBroken(t *testing.T) {
	lab := meshchecks.GetLab(t)
	meshchecks.SettleNamespaces(t, lab)
	istioNS, appNS := meshchecks.InstallAmbientInLab(t, lab, true)
	serveConfigDumps(t, lab, istioNS, lab.Nodes[0])
	out, errOut, code := runCLI(t, "check", "--kubeconfig", lab.Kubeconfig, "--istio-namespace", istioNS, "-n", appNS, "-o", "json")
	if code != exitFailure {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitFailure, out, errOut)
	}
	var rep checker.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	got := map[string]checker.Result{}
	for _, r := range rep.Results {
		got[r.ID] = r
	}
	if rep.Success {
		t.Error("report says success")
	}
	yout, _, ycode := runCLI(t, "check", "--kubeconfig", lab.Kubeconfig, "--istio-namespace", istioNS, "-n", appNS, "-o", "yaml", "--cert-sample", "0")
	if ycode != exitFailure || !strings.Contains(yout, "success: false") || !strings.Contains(yout, "id: ztunnel-nodes") {
		t.Errorf("-o yaml: exit %d\n%s", ycode, yout)
	}
	for id, want := range map[string]string{
		"ztunnel-nodes":        lab.Nodes[2] + " (no pod)",
		"namespace-labels":     appNS,
		"pod-redirection":      "redirection pending",
		"ztunnel-certificates": "node " + lab.Nodes[0] + ": spiffe://cluster.local/ns/shop/sa/web is Unavailable: signing failed",
	} {
		if r := got[id]; r.Status != checker.StatusError || !strings.Contains(r.Message, want) || r.Hint == "" {
			t.Errorf("%s: %s %q (hint %q), want error containing %q", id, r.Status, r.Message, r.Hint, want)
		}
	}
}

func TestLabCommandPrecheck(t *testing.T) {
	lab := meshchecks.GetLab(t)
	out, errOut, code := runCLI(t, "precheck", "--kubeconfig", lab.RestrictedKubeconfig)
	if code != exitFailure || !strings.Contains(out, "× can create every kind the Istio charts install") || !strings.Contains(out, "not allowed to create namespaces") {
		t.Fatalf("restricted precheck: exit %d\n%s%s", code, out, errOut)
	}
	// The admin passes everything but the CNI check (kwok nodes have none):
	// a warning, which fails only with --warnings-as-errors.
	out, errOut, code = runCLI(t, "precheck", "--kubeconfig", lab.Kubeconfig, "--istio-namespace", "precheck-not-yet")
	if code != 0 || !strings.Contains(out, "‼ cluster CNI is detected") {
		t.Fatalf("admin precheck: exit %d\n%s%s", code, out, errOut)
	}
	if _, _, code = runCLI(t, "precheck", "--kubeconfig", lab.Kubeconfig, "--istio-namespace", "precheck-not-yet", "--warnings-as-errors"); code != exitFailure {
		t.Fatalf("--warnings-as-errors: exit %d, want 1", code)
	}
	for _, args := range [][]string{
		{"precheck", "-o", "wide"}, {"check", "-o", "wide"}, {"precheck", "--platform", "mars"}, {"precheck", "--istio-version", "1.12"}, {"check", "extra"},
	} {
		if _, errOut, code := runCLI(t, append(args, "--kubeconfig", lab.Kubeconfig)...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitUsage, errOut)
		}
	}
}
