package kubelab

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPKIIssuesVerifiableCertificates(t *testing.T) {
	p, err := newPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := p.issue("apiserver", "kube-apiserver", nil, []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"}, true)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := p.issue("admin", "lab-admin", []string{"system:masters"}, nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, p.CAFile()))

	sc := readCert(t, srv.Cert)
	if _, err := sc.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"}); err != nil {
		t.Errorf("server cert does not verify for localhost: %v", err)
	}
	if err := sc.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("server cert lacks 127.0.0.1: %v", err)
	}
	cc := readCert(t, cli.Cert)
	if _, err := cc.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client cert does not verify: %v", err)
	}
	if cc.Subject.CommonName != "lab-admin" || len(cc.Subject.Organization) != 1 || cc.Subject.Organization[0] != "system:masters" {
		t.Errorf("client subject = %v, want CN=lab-admin O=system:masters", cc.Subject)
	}
	if _, err := cc.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("a client certificate must not verify for server auth")
	}
	for _, f := range []string{srv.Key, cli.Key, filepath.Join(p.dir, "ca.key")} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
	}
}

func TestSlotsAreDisjoint(t *testing.T) {
	seen := map[string]bool{}
	var nets []*net.IPNet
	for k := range maxSlots {
		all, def := slotNet(k)
		if !all.Contains(def.IP) {
			t.Errorf("slot %d: default %s outside %s", k, def, all)
		}
		for _, other := range nets {
			if other.Contains(all.IP) || all.Contains(other.IP) {
				t.Errorf("slot %d %s overlaps %s", k, all, other)
			}
		}
		nets = append(nets, all)
		if seen[all.String()] {
			t.Errorf("slot %d repeats %s", k, all)
		}
		seen[all.String()] = true
	}
	p := &podNet{}
	p.CIDR, p.Default = slotNet(0)
	tests := []struct {
		node int
		want string
	}{
		{0, "10.100.0.0/24"},
		{7, "10.100.7.0/24"},
		{255, "10.100.255.0/24"},
		{256, ""},
	}
	for _, tt := range tests {
		if got := p.NodeCIDR(tt.node); got != tt.want {
			t.Errorf("NodeCIDR(%d) = %q, want %q", tt.node, got, tt.want)
		}
		if tt.want != "" {
			_, n, err := net.ParseCIDR(tt.want)
			if err != nil || !p.CIDR.Contains(n.IP) || p.Default.Contains(n.IP) {
				t.Errorf("node CIDR %s must be in %s and outside the default %s", tt.want, p.CIDR, p.Default)
			}
		}
	}
}

func TestKwokConfigDocuments(t *testing.T) {
	cfg := kwokConfig(kwokOptions{CIDR: "10.101.0.0/16", NodeIP: "127.0.0.1", Port: 1234, CertFile: "/c", KeyFile: "/k", WorkDir: "/w", LogsFile: "/l"})
	kinds := map[string]int{}
	for _, doc := range strings.Split(cfg, "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("document does not parse: %v\n%s", err, doc)
		}
		kind, _ := obj["kind"].(string)
		kinds[kind]++
		if kind == "KwokConfiguration" {
			o := obj["options"].(map[string]any)
			if o["serverAddress"] != "127.0.0.1:1234" || o["cidr"] != "10.101.0.0/16" || o["manageNodesWithAnnotationSelector"] != NodeAnnotation+"=fake" {
				t.Errorf("options = %v", o)
			}
			if o["enableDebuggingHandlers"] != true {
				t.Error("exec, logs and port-forward need enableDebuggingHandlers")
			}
		}
	}
	want := map[string]int{"KwokConfiguration": 1, "Stage": 3, "ClusterExec": 1, "ClusterLogs": 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d documents of kind %s, want %d (all: %v)", kinds[k], k, n, kinds)
		}
	}
}

func TestStopDirStopsByPidFile(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	sleep, _ = filepath.EvalSymlinks(sleep)
	dir := t.TempDir()
	p, err := startProcess(dir, "sleeper", sleep, []string{"60"}, true)
	if err != nil {
		t.Fatal(err)
	}
	// Another process's view: only the pid files.
	ps, err := Processes(dir)
	if err != nil || len(ps) != 1 || ps[0].PID != p.pid || !ps[0].Running {
		t.Fatalf("Processes = %+v, %v; want sleeper pid %d running", ps, err, p.pid)
	}
	start := time.Now()
	if err := StopDir(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatal("sleeper still running after StopDir")
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("StopDir took %s for a process that exits on SIGTERM", d)
	}
	if _, err := os.Stat(filepath.Join(dir, "pids", "sleeper.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left behind: %v", err)
	}
}

func TestStopNeverSignalsAReusedPid(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	sleep, _ = filepath.EvalSymlinks(sleep)
	dir := t.TempDir()
	p, err := startProcess(dir, "other", sleep, []string{"60"}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(0) })
	// The pid file claims a different program: the pid was reused.
	if err := os.WriteFile(filepath.Join(dir, "pids", "other.pid"), []byte(strings.Join([]string{strconv.Itoa(p.pid), "/nonexistent/kube-apiserver"}, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := StopDir(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		t.Fatal("StopDir killed a process that is not the recorded program")
	case <-time.After(300 * time.Millisecond):
	}
}

func TestListenPodWithoutNetworkNamespace(t *testing.T) {
	l := &Lab{PodCIDR: "10.100.0.0/15"}
	_, err := l.ListenPod("10.100.0.5", 8080)
	if !errors.Is(err, ErrNoPodNetwork) {
		t.Fatalf("ListenPod without a namespace: %v, want ErrNoPodNetwork", err)
	}
	if _, err := l.ListenPod("not-an-ip", 1); err == nil || !strings.Contains(err.Error(), "not an ip address") {
		t.Fatalf("ListenPod with a bad ip: %v", err)
	}
}

func TestCRILogLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	if err := appendCRILines(path, []string{"one", "two\nthree\n"}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	want := []string{"one", "two", "three"}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d: %q", len(lines), len(want), data)
	}
	for i, l := range lines {
		f := strings.SplitN(l, " ", 4)
		if len(f) != 4 || f[1] != "stdout" || f[2] != "F" || f[3] != want[i] {
			t.Errorf("line %d = %q, want '<time> stdout F %s'", i, l, want[i])
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Errorf("line %d time %q: %v", i, f[0], err)
		}
	}
	if got := lastLine([]string{"a", "b\n\n"}); got != "b" {
		t.Errorf("lastLine = %q, want b", got)
	}
}

func TestKwokConfigPointsNodesAtTheExecProxy(t *testing.T) {
	cfg := kwokConfig(kwokOptions{CIDR: "10.101.0.0/16", NodeIP: "127.0.0.1", Port: 1234, CertFile: "/c", KeyFile: "/k", WorkDir: "/w", LogsFile: "/l", KubeletPort: 4321})
	if !strings.Contains(cfg, "Port: 4321") || strings.Contains(cfg, "Port: {{ NodePort }}") {
		t.Errorf("nodes do not advertise the proxy's port 4321:\n%s", cfg)
	}
	if !strings.Contains(cfg, "name: "+ExecMarkerEnv+"\n        value: \"/w\"") {
		t.Errorf("ClusterExec does not mark exec'd commands with %s=/w:\n%s", ExecMarkerEnv, cfg)
	}
	if direct := kwokConfig(kwokOptions{Port: 1234}); !strings.Contains(direct, "Port: {{ NodePort }}") {
		t.Error("without a proxy port the nodes must advertise kwok's own port")
	}
}

// TestReapMarkedEndsEscapedProcesses: a marked command that left its parent's
// process group (as timeout(1) does) and its child are found by the marker
// and ended; an unmarked process is left alone.
func TestReapMarkedEndsEscapedProcesses(t *testing.T) {
	entry := ExecIDEnv + "=" + t.TempDir() + ":1"
	marked := exec.Command("timeout", "600", "sleep", "600")
	marked.Env = append(os.Environ(), entry)
	other := exec.Command("sleep", "600")
	for _, c := range []*exec.Cmd{marked, other} {
		if err := c.Start(); err != nil {
			t.Skip(err)
		}
		go func() { _ = c.Wait() }()
	}
	defer func() { _ = other.Process.Kill() }()
	deadline := time.Now().Add(5 * time.Second)
	for len(markedProcesses(entry)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("marked processes = %v, want timeout and its sleep", markedProcesses(entry))
		}
		time.Sleep(20 * time.Millisecond)
	}
	found, left := reapMarked(entry, 2*time.Second)
	if len(found) != 2 || len(left) != 0 {
		t.Fatalf("reapMarked found %v, left %v; want 2 found, none left", found, left)
	}
	if !(&process{pid: other.Process.Pid}).alive() {
		t.Error("an unmarked process was ended")
	}
}
