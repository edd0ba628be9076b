package ztunnelsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

// These tests run the real binary against the lab with a stand-in ztunnel
// per scenario: the snapshot command as a script would, and the TUI inside
// tmux as a person would.

func TestMain(m *testing.M) { kubelab.Main(m, kubelab.Options{Nodes: len(Scenarios)}) }

type e2eLab struct {
	lab       *kubelab.Lab
	ztunnelNS string
	byNode    map[string]Scenario
	nodeOf    map[Scenario]string
	bin       string
}

func setupE2E(t *testing.T) *e2eLab {
	t.Helper()
	lab := kubelab.Get(t)
	// Built before any deadline starts, so a cold build costs no test time.
	e := &e2eLab{lab: lab, byNode: map[string]Scenario{}, nodeOf: map[Scenario]string{}, bin: kubelab.BuildBinary(t, kubelab.PluginPackage)}
	for i, sc := range Scenarios {
		e.byNode[lab.Nodes[i]] = sc
		e.nodeOf[sc] = lab.Nodes[i]
	}
	e.ztunnelNS = lab.Namespace(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dep, err := Deploy(ctx, lab.Clients.Kube, e.ztunnelNS, e.byNode, lab.ListenPod)
	if dep != nil {
		t.Cleanup(dep.Close)
	}
	if err != nil {
		t.Fatal(err)
	}
	healthy := e.nodeOf[Healthy]
	if err := lab.WriteContainerLog(ctx, e.ztunnelNS, dep.Pods[healthy], "istio-proxy", dep.Stands[healthy].AccessLogLines(5)...); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *e2eLab) args(extra ...string) []string {
	return append([]string{"--kubeconfig", e.lab.Kubeconfig, "--ztunnel-namespace", e.ztunnelNS}, extra...)
}

func TestStatusOnceAgainstScenarios(t *testing.T) {
	e := setupE2E(t)
	var out, errOut bytes.Buffer
	cmd := exec.Command(e.bin, e.args("status", "--once", "-o", "json", "--window", "2s")...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("status --once with unhealthy nodes must exit 1, got %v\nstderr: %s", err, errOut.String())
	}
	var snap ztunnel.Snapshot
	if err := json.Unmarshal(out.Bytes(), &snap); err != nil {
		t.Fatalf("json: %v\n%s", err, out.String())
	}
	want := map[Scenario]struct {
		state  string
		reason string
	}{
		Healthy:            {"healthy", ""},
		NotReady:           {"unhealthy", ztunnel.ReasonZtunnelNotReady},
		NoZtunnel:          {"unhealthy", ztunnel.ReasonNoZtunnel},
		ExpiringCerts:      {"warning", ztunnel.ReasonCertExpiring},
		FailingConnections: {"unhealthy", ztunnel.ReasonConnFailures},
		Restarting:         {"warning", ztunnel.ReasonRecentRestart},
		PendingProxies:     {"warning", ztunnel.ReasonPendingProxies},
	}
	for _, n := range snap.Nodes {
		sc, ok := e.byNode[n.Node]
		if !ok {
			continue
		}
		w := want[sc]
		got := ""
		if len(n.Reasons) > 0 {
			got = n.Reasons[0].Code
		}
		if n.State.String() != w.state || got != w.reason {
			t.Errorf("%s (%s): %s %s, want %s %s", n.Node, sc, n.State, got, w.state, w.reason)
		}
	}

	// The table form, and the TUI command without a terminal, print the same.
	for _, args := range [][]string{{"status", "--once"}, {"tui", "--interval", "1s"}} {
		out.Reset()
		cmd := exec.Command(e.bin, e.args(args...)...)
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("%v: exit %v", args, err)
		}
		text := out.String()
		for _, wantText := range []string{"STATE", "✗ unhealthy  " + e.nodeOf[NoZtunnel], "no ztunnel on node", "ztunnel NotReady (/healthz/ready returned 503)", "✓ healthy",
			"! warning    " + e.nodeOf[PendingProxies], "2 pending proxies not draining for "} {
			if !strings.Contains(text, wantText) {
				t.Errorf("%v output lacks %q:\n%s", args, wantText, text)
			}
		}
	}
}

// tmux drives a real terminal.
type tmux struct {
	t      *testing.T
	socket string
}

func (x *tmux) run(args ...string) string {
	x.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", x.socket}, args...)...).CombinedOutput()
	if err != nil {
		x.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (x *tmux) screen() string { return x.run("capture-pane", "-p", "-t", "amb") }

// waitScreen polls the pane until every want is on it.
func (x *tmux) waitScreen(d time.Duration, want ...string) string {
	x.t.Helper()
	deadline := time.Now().Add(d)
	var s string
	for time.Now().Before(deadline) {
		s = x.screen()
		ok := true
		for _, w := range want {
			if !strings.Contains(s, w) {
				ok = false
				break
			}
		}
		if ok {
			return s
		}
		time.Sleep(200 * time.Millisecond)
	}
	x.t.Fatalf("screen never showed %q within %s:\n%s", want, d, s)
	return ""
}

func TestTUIInTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is required in CI (apt-get install tmux)")
		}
		t.Skip("tmux not installed")
	}
	e := setupE2E(t)
	x := &tmux{t: t, socket: fmt.Sprintf("kamb-tui-%d", os.Getpid())}
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", x.socket, "kill-server").Run() })
	cmdline := strings.Join(append([]string{e.bin}, e.args("tui", "--interval", "1s")...), " ")
	start := time.Now()
	x.run("new-session", "-d", "-s", "amb", "-x", "150", "-y", "30", "-e", "TERM=xterm-256color", cmdline+"; sleep 30")
	s := x.waitScreen(20*time.Second, "kubectl ambient", "no ztunnel on node", "ztunnel NotReady", "restarted 3 times")
	t.Logf("first full screen after %s", time.Since(start))
	lines := strings.Split(s, "\n")
	if !strings.Contains(lines[2], "STATE") || !strings.Contains(lines[3], "✗ unhealthy") {
		t.Fatalf("expected column titles, then the sickest node first:\n%s", s)
	}
	// Rates arrive after the second scrape.
	s = x.waitScreen(15*time.Second, "% of attempts)")
	// Each row says how old its reading is (SEEN, the cell before the
	// reason): at a 1 s interval, seconds, and never the stale mark.
	seen, found := regexp.MustCompile(`\s(\S+)\s+ok\s*$`), false
	for _, l := range strings.Split(s, "\n") {
		if f := strings.Fields(l); len(f) > 3 && f[2] == e.nodeOf[Healthy] {
			found = true
			m := seen.FindStringSubmatch(l)
			if !strings.Contains(s, "SEEN  REASON") || m == nil || !regexp.MustCompile(`^\d+s$`).MatchString(m[1]) {
				t.Fatalf("the healthy node's row should show a fresh SEEN age before its reason:\n%s", s)
			}
		}
	}
	if !found {
		t.Fatalf("no row for %s:\n%s", e.nodeOf[Healthy], s)
	}

	// Filter on a reason.
	x.run("send-keys", "-t", "amb", "/", "5", "0", "3", "Enter")
	s = x.waitScreen(5*time.Second, `filter: "503" (1 of`)
	if strings.Contains(s, e.nodeOf[NoZtunnel]) || !strings.Contains(s, e.nodeOf[NotReady]) {
		t.Fatalf("filter 503 should leave only %s:\n%s", e.nodeOf[NotReady], s)
	}
	x.run("send-keys", "-t", "amb", "Escape")
	x.waitScreen(5*time.Second, e.nodeOf[NoZtunnel], e.nodeOf[Healthy])

	// Detail of the healthy node: filter on its name, enter. (Not "the last
	// row": until its pending proxies outlast the grace, the pending-proxies
	// node is healthy too and may sort after it.)
	x.run("send-keys", "-t", "amb", "/")
	x.run("send-keys", "-t", "amb", "-l", e.nodeOf[Healthy])
	x.run("send-keys", "-t", "amb", "Enter")
	x.waitScreen(5*time.Second, fmt.Sprintf("filter: %q (1 of %d)", e.nodeOf[Healthy], len(Scenarios)))
	x.run("send-keys", "-t", "amb", "Enter")
	x.waitScreen(15*time.Second, "node "+e.nodeOf[Healthy], "WORKLOADS (2)", "CERTIFICATES (2)", "RECENT ACCESS LOG", "mTLS")
	// Escape and "?" in one write would read as alt+?; send them apart.
	x.run("send-keys", "-t", "amb", "Escape")
	x.waitScreen(5*time.Second, "STATE", "REASON")
	x.run("send-keys", "-t", "amb", "?")
	x.waitScreen(5*time.Second, "filter by node, state or reason")
	x.run("send-keys", "-t", "amb", "Escape")
	x.waitScreen(5*time.Second, "STATE")

	// Resize: the frame follows, narrower columns drop out.
	x.run("resize-window", "-t", "amb", "-x", "80", "-y", "20")
	s = x.waitScreen(5*time.Second, "REASON")
	for _, l := range strings.Split(s, "\n") {
		if len([]rune(l)) > 80 {
			t.Fatalf("line wider than 80 after resize: %q", l)
		}
	}
	if strings.Contains(s, "VERSION") {
		t.Fatalf("VERSION should be dropped at 80 columns:\n%s", s)
	}

	// q quits: the pane shows the shell's sleep, not the TUI.
	x.run("send-keys", "-t", "amb", "q")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if !strings.Contains(x.screen(), "STATE") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("q did not quit:\n%s", x.screen())
}
