package hbonesim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/afpacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"
)

// Netns is a named network namespace (ip netns).
type Netns struct{ Name string }

// Do runs fn on an OS thread switched into the namespace. Sockets created
// inside fn stay in the namespace after Do returns.
func (n Netns) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer func() { _ = orig.Close() }()
	target, err := os.Open("/var/run/netns/" + n.Name)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open netns %s: %w", n.Name, err)
	}
	defer func() { _ = target.Close() }()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", n.Name, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime discards it when the
		// goroutine ends, so no other goroutine runs in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("leave netns %s: %w", n.Name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Listen opens a TCP listener inside the namespace.
func (n Netns) Listen(addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// Dialer returns a dial function that connects from inside the namespace,
// from the local address src (empty: any).
func (n Netns) Dialer(src string) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		d := &net.Dialer{Timeout: 5 * time.Second}
		if src != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		}
		var c net.Conn
		err := n.Do(func() (err error) {
			c, err = d.DialContext(ctx, "tcp", addr)
			return err
		})
		return c, err
	}
}

// Topology is two namespaces joined by a veth pair: A (clients) and B
// (servers), with addresses 10.99.<subnet>.x/24 that exist only inside them.
type Topology struct {
	A, B         Netns
	VethA, VethB string
	// AddrA are the addresses of A's veth (.1 and .3); AddrB is B's (.2).
	AddrA []string
	AddrB string
}

// Available says why the topology cannot be built here, or "" when it can.
func Available() string {
	if os.Geteuid() != 0 {
		return "needs root to create network namespaces"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "needs the ip command (iproute2)"
	}
	return ""
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// NewTopology creates the namespaces and the veth pair. tag makes the names
// unique (at most 8 characters); subnet picks 10.99.<subnet>.0/24.
func NewTopology(tag string, subnet int) (*Topology, error) {
	t := &Topology{
		A: Netns{"hbone-" + tag + "-a"}, B: Netns{"hbone-" + tag + "-b"},
		VethA: "hb" + tag + "a", VethB: "hb" + tag + "b",
		AddrA: []string{fmt.Sprintf("10.99.%d.1", subnet), fmt.Sprintf("10.99.%d.3", subnet)},
		AddrB: fmt.Sprintf("10.99.%d.2", subnet),
	}
	steps := [][]string{
		{"ip", "netns", "add", t.A.Name},
		{"ip", "netns", "add", t.B.Name},
		{"ip", "link", "add", t.VethA, "netns", t.A.Name, "type", "veth", "peer", "name", t.VethB, "netns", t.B.Name},
		{"ip", "-n", t.A.Name, "addr", "add", t.AddrA[0] + "/24", "dev", t.VethA},
		{"ip", "-n", t.A.Name, "addr", "add", t.AddrA[1] + "/24", "dev", t.VethA},
		{"ip", "-n", t.B.Name, "addr", "add", t.AddrB + "/24", "dev", t.VethB},
		{"ip", "-n", t.A.Name, "link", "set", t.VethA, "up"},
		{"ip", "-n", t.B.Name, "link", "set", t.VethB, "up"},
		{"ip", "-n", t.A.Name, "link", "set", "lo", "up"},
		{"ip", "-n", t.B.Name, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			t.Close()
			return nil, err
		}
	}
	return t, nil
}

// Close deletes both namespaces (and with them the veth pair).
func (t *Topology) Close() {
	_ = run("ip", "netns", "del", t.A.Name)
	_ = run("ip", "netns", "del", t.B.Name)
}

// VXLAN joins A and B with a VXLAN device each (VNI vni, UDP dstport port)
// over the veth pair, the underlay, and returns the overlay as a topology of
// its own: the same namespaces, the VXLAN devices as VethA and VethB, and
// addresses 10.98.<subnet>.x/24 that exist only inside the tunnel. Closing
// t removes both; do not Close the overlay on its own.
func (t *Topology) VXLAN(vni, port, subnet int) (*Topology, error) {
	o := &Topology{
		A: t.A, B: t.B,
		VethA: t.VethA + "x", VethB: t.VethB + "x",
		AddrA: []string{fmt.Sprintf("10.98.%d.1", subnet), fmt.Sprintf("10.98.%d.3", subnet)},
		AddrB: fmt.Sprintf("10.98.%d.2", subnet),
	}
	id, dport := fmt.Sprint(vni), fmt.Sprint(port)
	steps := [][]string{
		{"ip", "-n", t.A.Name, "link", "add", o.VethA, "type", "vxlan", "id", id, "local", t.AddrA[0], "remote", t.AddrB, "dstport", dport, "dev", t.VethA},
		{"ip", "-n", t.B.Name, "link", "add", o.VethB, "type", "vxlan", "id", id, "local", t.AddrB, "remote", t.AddrA[0], "dstport", dport, "dev", t.VethB},
		{"ip", "-n", t.A.Name, "addr", "add", o.AddrA[0] + "/24", "dev", o.VethA},
		{"ip", "-n", t.A.Name, "addr", "add", o.AddrA[1] + "/24", "dev", o.VethA},
		{"ip", "-n", t.B.Name, "addr", "add", o.AddrB + "/24", "dev", o.VethB},
		{"ip", "-n", t.A.Name, "link", "set", o.VethA, "up"},
		{"ip", "-n", t.B.Name, "link", "set", o.VethB, "up"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return nil, fmt.Errorf("vxlan overlay: %w", err)
		}
	}
	return o, nil
}

// Capture is a running AF_PACKET capture writing a pcap file.
type Capture struct {
	tp   *afpacket.TPacket
	f    *os.File
	stop chan struct{}
	done chan error
	n    int
}

// CaptureAFPacket captures on iface inside ns with a raw AF_PACKET socket
// (gopacket/afpacket, pure Go) and writes Ethernet frames to path (0600).
func CaptureAFPacket(ns Netns, iface, path string) (*Capture, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	var tp *afpacket.TPacket
	err = ns.Do(func() (err error) {
		// TPACKET_V2 hands over every frame at once; V3 holds frames in a
		// block until it fills or times out, and a short capture loses them.
		tp, err = afpacket.NewTPacket(afpacket.OptInterface(iface), afpacket.TPacketVersion2,
			afpacket.OptPollTimeout(50*time.Millisecond), afpacket.OptFrameSize(1<<16), afpacket.OptBlockSize(1<<20), afpacket.OptNumBlocks(8))
		return err
	})
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("afpacket on %s in %s: %w", iface, ns.Name, err)
	}
	w := pcapgo.NewWriterNanos(f)
	if err := w.WriteFileHeader(1<<16, layers.LinkTypeEthernet); err != nil {
		tp.Close()
		_ = f.Close()
		return nil, err
	}
	c := &Capture{tp: tp, f: f, stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		stopping := false
		for {
			if !stopping {
				select {
				case <-c.stop:
					stopping = true
				default:
				}
			}
			data, ci, err := tp.ZeroCopyReadPacketData()
			if err != nil {
				if errors.Is(err, afpacket.ErrTimeout) || errors.Is(err, afpacket.ErrPoll) || errors.Is(err, syscall.EINTR) {
					if stopping {
						// Drained: nothing arrived within a poll timeout after Stop.
						c.done <- nil
						return
					}
					continue
				}
				c.done <- err
				return
			}
			if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ci.Timestamp, CaptureLength: ci.CaptureLength, Length: ci.Length}, data); err != nil {
				c.done <- err
				return
			}
			c.n++
		}
	}()
	return c, nil
}

// Stop ends the capture (after a short drain) and closes the file; it
// returns the number of packets written.
func (c *Capture) Stop() (int, error) {
	time.Sleep(200 * time.Millisecond)
	close(c.stop)
	err := <-c.done
	c.tp.Close()
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	return c.n, err
}

// Tcpdump is a running tcpdump.
type Tcpdump struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	mu     *sync.Mutex
	exited chan struct{}
	path   string
}

// StartTcpdump runs `tcpdump -i iface -w path` inside ns with extra args
// (for example "-y", "LINUX_SLL2") and waits until it listens.
func StartTcpdump(ctx context.Context, ns Netns, iface, path string, extra ...string) (*Tcpdump, error) {
	return StartTcpdumpFilter(ctx, ns, iface, path, "tcp", extra...)
}

// StartTcpdumpFilter is StartTcpdump with a capture filter of its own ("" for
// none: an underlay capture needs the UDP that carries VXLAN).
func StartTcpdumpFilter(ctx context.Context, ns Netns, iface, path, filter string, extra ...string) (*Tcpdump, error) {
	// --immediate-mode: without it libpcap holds packets in its ring buffer
	// for up to a second, and a short capture stopped early writes nothing.
	// -B 65536: a 64 MiB ring. With the full snap length each ring frame is
	// 256 KiB, so the default 2 MiB holds 8 packets and a busy machine that
	// schedules tcpdump late drops most of a short capture.
	args := append([]string{"netns", "exec", ns.Name, "tcpdump", "--immediate-mode", "-B", "65536", "-i", iface, "-U", "-s", "0", "-w", path}, extra...)
	if filter != "" {
		args = append(args, filter)
	}
	cmd := exec.CommandContext(ctx, "ip", args...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t := &Tcpdump{cmd: cmd, path: path, stderr: &bytes.Buffer{}, mu: &sync.Mutex{}, exited: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			t.mu.Lock()
			t.stderr.WriteString(sc.Text() + "\n")
			t.mu.Unlock()
			if strings.Contains(sc.Text(), "listening on") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	go func() { _ = cmd.Wait(); _ = pw.Close(); close(t.exited) }()
	select {
	case <-ready:
		return t, nil
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.mu.Lock()
		defer t.mu.Unlock()
		return nil, fmt.Errorf("tcpdump did not start: %s", t.stderr.String())
	}
}

// Stop sends SIGINT so tcpdump flushes and exits, and waits for it.
func (t *Tcpdump) Stop() (string, error) {
	// tcpdump drops what it has not written yet when interrupted: wait until
	// the file stops growing (it writes every packet at once with -U).
	last, still := int64(-1), 0
	for deadline := time.Now().Add(5 * time.Second); still < 4 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		if st, err := os.Stat(t.path); err == nil && st.Size() == last {
			still++
		} else if err == nil {
			last, still = st.Size(), 0
		}
	}
	_ = t.cmd.Process.Signal(os.Interrupt)
	var err error
	select {
	case <-t.exited:
	case <-time.After(10 * time.Second):
		_ = t.cmd.Process.Kill()
		<-t.exited
		err = errors.New("tcpdump did not stop on SIGINT")
	}
	// tcpdump creates the file 0644 as its own user; captured traffic is 0600.
	if cerr := os.Chmod(t.path, 0o600); err == nil {
		err = cerr
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stderr.String(), err
}
