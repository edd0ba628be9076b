package kubelab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one lab component started by this process (cmd set) or found
// through its pid file (cmd nil, for `down` from another process).
type process struct {
	name string
	bin  string
	pid  int
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startProcess runs bin with args, its output appended to dir/logs/name.log,
// its pid written to dir/pids/name.pid. Each component leads its own process
// group so a stop also reaches anything it spawned (kwok's exec children).
// Unless detached, the component is killed by the kernel when this process
// dies, so a crashed test binary leaves nothing running.
func startProcess(dir, name, bin string, args []string, detached bool) (*process, error) {
	logPath := filepath.Join(dir, "logs", name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o750); err != nil {
		return nil, fmt.Errorf("create log directory for %s: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "pids"), 0o750); err != nil {
		return nil, fmt.Errorf("create pid directory for %s: %w", name, err)
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", name, err)
	}
	// The child holds its own descriptor once started.
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if !detached {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := spawn(cmd); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &process{name: name, bin: bin, pid: cmd.Process.Pid, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	if err := writePidFile(dir, p); err != nil {
		p.stop(0)
		return nil, err
	}
	return p, nil
}

// The kernel delivers Pdeathsig when the OS thread that forked the child
// exits, not the process. Go ends threads whose goroutine exits while locked
// to them (network-namespace code does that on purpose), so every component
// is forked from one thread that is locked for the life of the process.
var spawner struct {
	once sync.Once
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func spawn(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread()
			for r := range spawner.reqs {
				r.done <- r.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawner.reqs <- spawnReq{cmd: cmd, done: done}
	return <-done
}

func writePidFile(dir string, p *process) error {
	content := fmt.Sprintf("%d\n%s\n", p.pid, p.bin)
	path := filepath.Join(dir, "pids", p.name+".pid")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("write pid file %s: %w", path, err)
	}
	return nil
}

// readPidFiles finds the components of a lab started by another process.
func readPidFiles(dir string) ([]*process, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "pids"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read pid files in %s: %w", dir, err)
	}
	var out []*process
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".pid") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, "pids", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read pid file %s: %w", e.Name(), err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
		if err != nil || pid <= 1 {
			continue
		}
		p := &process{name: strings.TrimSuffix(e.Name(), ".pid"), pid: pid, log: filepath.Join(dir, "logs", strings.TrimSuffix(e.Name(), ".pid")+".log")}
		if len(lines) > 1 {
			p.bin = lines[1]
		}
		out = append(out, p)
	}
	return out, nil
}

// alive reports whether the process still runs (a zombie counts as gone).
func (p *process) alive() bool {
	if p.done != nil {
		select {
		case <-p.done:
			return false
		default:
			return true
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	// A pid reused by an unrelated program must never be signalled.
	if p.bin != "" {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.pid))
		if err == nil && strings.TrimSuffix(exe, " (deleted)") != p.bin {
			return false
		}
	}
	return true
}

// stop sends SIGTERM to the component's process group, waits up to grace,
// then SIGKILLs it and waits until it is gone.
func (p *process) stop(grace time.Duration) {
	if !p.alive() {
		return
	}
	if grace > 0 {
		_ = syscall.Kill(-p.pid, syscall.SIGTERM)
		_ = syscall.Kill(p.pid, syscall.SIGTERM)
		if p.waitGone(grace) {
			return
		}
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
	p.waitGone(10 * time.Second)
}

func (p *process) waitGone(d time.Duration) bool {
	if p.done != nil {
		select {
		case <-p.done:
			return true
		case <-time.After(d):
			return false
		}
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !p.alive() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return !p.alive()
}

// stopAll stops the components in three waves: the API server's clients,
// then the API server, then etcd and the rest. Each wave stops in parallel.
// The order matters for speed only: an API server whose etcd is gone hangs
// in its graceful shutdown until SIGKILL, while one with etcd up exits in
// about a second.
func stopAll(procs []*process, grace time.Duration) {
	for wave := 0; wave < 3; wave++ {
		var wg sync.WaitGroup
		for _, p := range procs {
			if stopWave(p.name) != wave {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.stop(grace)
			}()
		}
		wg.Wait()
	}
}

func stopWave(name string) int {
	switch name {
	case "kwok", "kube-scheduler", "kube-controller-manager":
		return 0
	case "kube-apiserver":
		return 1
	default:
		return 2
	}
}

// tail returns the last n lines of a file, for error reports.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ExecMarkerEnv is set, to the lab's directory, in the environment of every
// command kwok runs for `kubectl exec` into a fake pod (ClusterExec envs),
// and inherited by whatever that command starts. kwok v0.8 does not end the
// command when the exec stream ends (the lab's exec proxy does, see
// ExecIDEnv), and commands such as timeout(1) move into a process group of
// their own, so kwok's process group does not reach them all; the marker
// lets Stop, StopDir and the watchdog end every one.
const ExecMarkerEnv = "KUBELAB_EXEC"

// execProcesses lists the live processes that carry dir's exec marker.
func execProcesses(dir string) []int { return markedProcesses(ExecMarkerEnv + "=" + dir) }

// markedProcesses lists the live processes whose environment holds entry
// ("NAME=value") as a whole.
func markedProcesses(entry string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	// NUL-separated entries: match a whole one, the first included.
	want := []byte("\x00" + entry + "\x00")
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || !bytes.Contains(append([]byte{0}, env...), want) {
			continue
		}
		if (&process{pid: pid}).alive() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// describePids names each pid with its command line, for reports.
func describePids(pids []int) string {
	parts := make([]string, 0, len(pids))
	for _, pid := range pids {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		parts = append(parts, fmt.Sprintf("pid %d (%s)", pid, strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))))
	}
	return strings.Join(parts, ", ")
}

// reapExecs ends every process kwok exec'd for the lab in dir (and what they
// started). It returns what was running before and what still runs after.
func reapExecs(dir string, grace time.Duration) (found, left []int) {
	return reapMarked(ExecMarkerEnv+"="+dir, grace)
}

// reapMarked ends every process whose environment holds entry: SIGTERM, up
// to grace to exit, then SIGKILL. It returns what was running before and
// what still runs after.
func reapMarked(entry string, grace time.Duration) (found, left []int) {
	found = markedProcesses(entry)
	if len(found) == 0 {
		return nil, nil
	}
	signalAll := func(pids []int, sig syscall.Signal) {
		for _, pid := range pids {
			_ = syscall.Kill(pid, sig)
		}
	}
	signalAll(found, syscall.SIGTERM)
	left = waitMarkedGone(entry, grace)
	if len(left) > 0 {
		signalAll(left, syscall.SIGKILL)
		left = waitMarkedGone(entry, 5*time.Second)
	}
	return found, left
}

func waitMarkedGone(entry string, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		left := markedProcesses(entry)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}
