package kubelab

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNoPodNetwork is returned (wrapped) by ListenPod and RunInPodNetwork when
// the lab runs without its network namespace (not root, or no `ip` command).
var ErrNoPodNetwork = errors.New("lab pod network unavailable")

// maxSlots bounds how many labs can run on one machine at once; each slot
// owns one /15 of pod addresses and one network namespace.
const maxSlots = 64

// claimDir records which process owns which slot, so a slot left behind by a
// killed lab can be recognised and reclaimed.
const claimDir = "/run/kubectl-ambient-lab"

// podNet is a lab's pod address plan and, when root, its network namespace.
//
// Slot k owns 10.(100+2k).0.0/15: node i (< 256) gets podCIDR 10.(100+2k).i.0/24
// and kwok hands pods of other nodes addresses from 10.(101+2k).0.0/16. In the
// namespace kamb-k the whole /15 is a local route on lo, so every pod IP is a
// local address there; the root namespace routes the /15 over a veth pair
// (169.254.(100+k).1 <-> .2) into it. Nothing is added to lo in the root
// namespace.
type podNet struct {
	Slot    int
	CIDR    *net.IPNet // the whole /15
	Default *net.IPNet // kwok's CIDR for nodes without their own podCIDR
	NetNS   string     // empty when there is no namespace
	host    string     // veth in the root namespace
	reason  string     // why there is no namespace
}

func slotNet(k int) (*net.IPNet, *net.IPNet) {
	base := byte(100 + 2*k)
	all := &net.IPNet{IP: net.IPv4(10, base, 0, 0).To4(), Mask: net.CIDRMask(15, 32)}
	def := &net.IPNet{IP: net.IPv4(10, base+1, 0, 0).To4(), Mask: net.CIDRMask(16, 32)}
	return all, def
}

// NodeCIDR returns node i's podCIDR, or "" past the 256 /24s of the slot's
// first half (kwok then uses the default CIDR).
func (p *podNet) NodeCIDR(i int) string {
	if i < 0 || i > 255 {
		return ""
	}
	ip := p.CIDR.IP.To4()
	return fmt.Sprintf("%d.%d.%d.0/24", ip[0], ip[1], i)
}

// canNetNS reports whether this process may create network namespaces.
func canNetNS() bool {
	if os.Geteuid() != 0 {
		return false
	}
	_, err := exec.LookPath("ip")
	return err == nil
}

// setupPodNet claims a free slot. With root it also creates the namespace,
// veth pair and routes; owner is the pid whose death marks the slot stale.
func setupPodNet(owner int, labDir string) (*podNet, error) {
	order := rand.Perm(maxSlots) //nolint:gosec // G404: the order only spreads labs over slots; nothing secret
	if !canNetNS() {
		all, def := slotNet(order[0])
		return &podNet{Slot: order[0], CIDR: all, Default: def, reason: "needs root and the ip command"}, nil
	}
	if err := os.MkdirAll(claimDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", claimDir, err)
	}
	unlock, err := lockSlots()
	if err != nil {
		return nil, err
	}
	defer unlock()
	var lastErr error
	for _, k := range order {
		p, err := trySlot(k, owner, labDir)
		if err == nil {
			return p, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "File exists") {
			// Not a slot taken by another lab but a machine that cannot do
			// it (root without CAP_SYS_ADMIN/CAP_NET_ADMIN in a container,
			// no /run/netns): run without pod networking rather than not at
			// all; ListenPod reports why.
			all, def := slotNet(k)
			return &podNet{Slot: k, CIDR: all, Default: def, reason: err.Error()}, nil
		}
	}
	return nil, fmt.Errorf("no free lab network slot of %d (stop other labs with `go run ./hack/lab down`): %w", maxSlots, lastErr)
}

func trySlot(k, owner int, labDir string) (*podNet, error) {
	all, def := slotNet(k)
	p := &podNet{Slot: k, CIDR: all, Default: def, NetNS: fmt.Sprintf("kamb-%d", k), host: fmt.Sprintf("kambr%d", k)}
	// `ip netns add` fails when the name exists: that makes it the lock.
	if err := ipCmd("netns", "add", p.NetNS); err != nil {
		if !reclaimStale(k) {
			return nil, err
		}
		if err := ipCmd("netns", "add", p.NetNS); err != nil {
			return nil, err
		}
	}
	claim := fmt.Sprintf("%d\n%s\n", owner, labDir)
	if err := os.WriteFile(claimFile(k), []byte(claim), 0o600); err != nil {
		p.teardown()
		return nil, fmt.Errorf("write slot claim: %w", err)
	}
	peer := fmt.Sprintf("kambn%d", k)
	hostIP := fmt.Sprintf("169.254.%d.1", 100+k)
	nsIP := fmt.Sprintf("169.254.%d.2", 100+k)
	steps := [][]string{
		{"link", "add", p.host, "type", "veth", "peer", "name", peer, "netns", p.NetNS},
		{"addr", "add", hostIP + "/30", "dev", p.host},
		{"link", "set", p.host, "up"},
		{"-n", p.NetNS, "link", "set", "lo", "up"},
		{"-n", p.NetNS, "addr", "add", nsIP + "/30", "dev", peer},
		{"-n", p.NetNS, "link", "set", peer, "up"},
		{"-n", p.NetNS, "route", "add", "default", "via", hostIP},
		{"-n", p.NetNS, "route", "add", "local", all.String(), "dev", "lo"},
		{"route", "add", all.String(), "via", nsIP, "dev", p.host},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			p.teardown()
			return nil, err
		}
	}
	return p, nil
}

// lockSlots serialises claiming, reclaiming and releasing slots between
// the labs on this machine, so two labs never reclaim the same stale slot.
func lockSlots() (func(), error) {
	if err := os.MkdirAll(claimDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", claimDir, err)
	}
	f, err := os.OpenFile(filepath.Join(claimDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lab slot lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock lab slots: %w", err)
	}
	// Closing the file releases the lock.
	return func() { _ = f.Close() }, nil
}

func claimFile(k int) string { return filepath.Join(claimDir, fmt.Sprintf("kamb-%d", k)) }

// claimOwner returns the lab directory recorded in slot k's claim, or "".
func claimOwner(k int) string {
	data, err := os.ReadFile(claimFile(k))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 2 {
		return ""
	}
	return lines[1]
}

// reclaimStale removes slot k's namespace when the lab that claimed it is
// gone (its owner process is dead), and reports whether it did.
func reclaimStale(k int) bool {
	data, err := os.ReadFile(claimFile(k))
	if err != nil {
		// A namespace without a claim file is being set up right now, or
		// belongs to someone else: leave it.
		return false
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return false
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil || pid <= 1 {
		return false
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		return false // the owner lives (or is not ours to judge)
	}
	p := &podNet{Slot: k, NetNS: fmt.Sprintf("kamb-%d", k), host: fmt.Sprintf("kambr%d", k)}
	p.teardown()
	return true
}

// teardown removes the veth pair (and with it the route), the namespace and
// the claim. It is safe to call on a partly built or already removed slot.
func (p *podNet) teardown() {
	if p == nil || p.NetNS == "" {
		return
	}
	_ = ipCmd("link", "del", p.host)
	_ = ipCmd("netns", "del", p.NetNS)
	_ = os.Remove(claimFile(p.Slot))
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %s: %w", strings.Join(args, " "), strings.TrimSpace(string(out)), err)
	}
	return nil
}

// inNetNS runs fn on an OS thread switched into the named namespace. Sockets
// created by fn stay in that namespace after the thread switches back.
func inNetNS(name string, fn func() error) error {
	target, err := os.Open(filepath.Join("/run/netns", name))
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", name, err)
	}
	defer func() { _ = target.Close() }()
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open current network namespace: %w", err)
	}
	defer func() { _ = orig.Close() }()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %s: %w", name, err)
	}
	fnErr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the lab namespace: leave it locked so the
		// runtime discards it when this goroutine ends.
		return fmt.Errorf("return from network namespace %s: %w", name, err)
	}
	runtime.UnlockOSThread()
	return fnErr
}
