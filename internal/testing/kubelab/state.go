package kubelab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// State is what a lab records in its directory so another process can find
// it (`lab env`, `lab status`) and stop it (`lab down`).
type State struct {
	Server               string    `json:"server"`
	Kubeconfig           string    `json:"kubeconfig"`
	RestrictedKubeconfig string    `json:"restrictedKubeconfig"`
	PodCIDR              string    `json:"podCIDR"`
	NetNS                string    `json:"netns,omitempty"`
	Slot                 int       `json:"slot"`
	EtcdData             string    `json:"etcdData"`
	BinDir               string    `json:"binDir"`
	Started              time.Time `json:"started"`
}

const (
	stateFile = "state.json"
	keepFile  = "kept"
)

func (l *Lab) saveState() error {
	st := State{
		Server: l.Server, Kubeconfig: l.Kubeconfig, RestrictedKubeconfig: l.RestrictedKubeconfig,
		PodCIDR: l.PodCIDR, NetNS: l.NetNS, EtcdData: l.etcdData, BinDir: l.BinDir, Started: l.startedAt,
	}
	if l.net != nil {
		st.Slot = l.net.Slot
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab state: %w", err)
	}
	return writeFile(filepath.Join(l.Dir, stateFile), data)
}

// ReadState reads the state of the lab in dir.
func ReadState(dir string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("read lab state in %s: %w", dir, err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("decode lab state %s: %w", filepath.Join(dir, stateFile), err)
	}
	return &st, nil
}

// ProcessStatus is one lab component as seen through its pid file.
type ProcessStatus struct {
	Name    string `json:"name"`
	PID     int    `json:"pid"`
	Running bool   `json:"running"`
	Log     string `json:"log"`
}

// Processes lists the components recorded in dir's pid files.
func Processes(dir string) ([]ProcessStatus, error) {
	procs, err := readPidFiles(dir)
	if err != nil {
		return nil, err
	}
	out := make([]ProcessStatus, 0, len(procs))
	for _, p := range procs {
		out = append(out, ProcessStatus{Name: p.name, PID: p.pid, Running: p.alive(), Log: p.log})
	}
	return out, nil
}

// StopDir stops the lab recorded in dir from any process: every component
// by the pid in its pid file (SIGTERM, then SIGKILL), then its network
// namespace and etcd data. The pid files are removed; the directory stays.
func StopDir(dir string) error {
	procs, err := readPidFiles(dir)
	if err != nil {
		return err
	}
	stopAll(procs, 3*time.Second)
	var still []string
	if _, left := reapExecs(dir, 2*time.Second); len(left) > 0 {
		still = append(still, "exec'd "+describePids(left))
	}
	for _, p := range procs {
		if p.alive() {
			still = append(still, fmt.Sprintf("%s (pid %d)", p.name, p.pid))
			continue
		}
		_ = os.Remove(filepath.Join(dir, "pids", p.name+".pid"))
	}
	st, err := ReadState(dir)
	if err == nil {
		// The slot may have been reclaimed by a newer lab since this one
		// died: remove the namespace only while the claim still names dir.
		if st.NetNS != "" {
			if unlock, err := lockSlots(); err == nil {
				if claimOwner(st.Slot) == dir {
					(&podNet{Slot: st.Slot, NetNS: st.NetNS, host: fmt.Sprintf("kambr%d", st.Slot)}).teardown()
				}
				unlock()
			}
		}
		if isEtcdDataDir(st.EtcdData) {
			_ = os.RemoveAll(st.EtcdData)
		}
	} else if data, err := os.ReadFile(filepath.Join(dir, "etcd-data")); err == nil {
		// Died before writing its state: the etcd data is still known.
		if d := strings.TrimSpace(string(data)); isEtcdDataDir(d) {
			_ = os.RemoveAll(d) //nolint:gosec // G703: isEtcdDataDir checked it is a lab's etcd directory
		}
	}
	if len(still) > 0 {
		return fmt.Errorf("lab in %s: still running after SIGKILL: %s", dir, strings.Join(still, ", "))
	}
	return nil
}

// isEtcdDataDir guards every removal of a recorded etcd data path: only a
// directory the lab created (kamb-etcd-*) is ever removed.
func isEtcdDataDir(d string) bool {
	return d != "" && filepath.IsAbs(d) && strings.HasPrefix(filepath.Base(d), "kamb-etcd-")
}

// cleanupStale removes what labs killed without a Stop left behind: temporary
// lab directories and etcd data whose etcd process is gone, and their
// network namespaces. Labs that are running are never touched.
func cleanupStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "kamb-lab-*"))
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, keepFile)); err == nil {
			continue
		}
		procs, err := readPidFiles(d)
		if err != nil {
			continue
		}
		st, _ := os.Stat(d)
		if len(procs) == 0 {
			// Still starting (no pid written yet) or an empty leftover: only
			// an old one is safe to remove.
			if st != nil && time.Since(st.ModTime()) > time.Hour {
				_ = os.RemoveAll(d) //nolint:gosec // G703: d matched $TMPDIR/kamb-lab-*, a lab directory
			}
			continue
		}
		anyAlive := false
		for _, p := range procs {
			if p.alive() {
				anyAlive = true
				break
			}
		}
		if anyAlive {
			continue
		}
		if StopDir(d) == nil {
			_ = os.RemoveAll(d) //nolint:gosec // G703: d matched $TMPDIR/kamb-lab-*, a lab directory
		}
	}
	if !canNetNS() {
		return
	}
	unlock, err := lockSlots()
	if err != nil {
		return
	}
	defer unlock()
	for k := range maxSlots {
		if _, err := os.Stat(filepath.Join("/run/netns", fmt.Sprintf("kamb-%d", k))); errors.Is(err, os.ErrNotExist) {
			continue
		}
		reclaimStale(k)
	}
}
