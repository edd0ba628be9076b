package pcap

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/pcapgen"
)

// Benchmark capture: 10,000 HBONE-like flows of 150 packets each (1.5M
// packets), 100 flows active at a time with their packets interleaved, so
// the flow table and the last-flow shortcut see realistic locality. Every
// flow carries a real recorded ClientHello and server flight, then small
// TLS application-data records.
const (
	benchFlows       = 10000
	benchPktsPerFlow = 150
	benchActive      = 100
)

var (
	benchOnce sync.Once
	benchPath string
	benchErr  error
	benchPkts int
	// benchDir is the temporary directory made for the capture (never the
	// directory of a KAMB_BENCH_PCAP path, which the caller owns).
	benchDir string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchPath != "" && benchDir != "" {
		_ = os.RemoveAll(benchDir)
	}
	for _, c := range tunnelBench {
		if c.dir != "" {
			_ = os.RemoveAll(c.dir)
		}
	}
	os.Exit(code)
}

// benchCapture writes the benchmark capture once per test binary.
func benchCapture(b *testing.B) string {
	b.Helper()
	recordings(b)
	benchOnce.Do(func() {
		// KAMB_BENCH_PCAP keeps the capture at that path and reuses it on
		// later runs (A/B comparisons, profiling under callgrind).
		if p := os.Getenv("KAMB_BENCH_PCAP"); p != "" {
			benchPath = p
			if n, err := countPackets(p); err == nil && n > 0 {
				benchPkts = n
				return
			}
			benchPkts, benchErr = writeBenchCapture(benchPath)
			return
		}
		dir, err := os.MkdirTemp("", "pcap-bench-")
		if err != nil {
			benchErr = err
			return
		}
		benchDir = dir
		benchPath = filepath.Join(dir, "bench.pcap")
		benchPkts, benchErr = writeBenchCapture(benchPath)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchPath
}

type benchFlow struct {
	c    *pcapgen.Conn
	step int
}

func writeBenchCapture(path string) (int, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := pcapgen.NewWriter(bw, layers.LinkTypeEthernet, 0)
	if err != nil {
		return 0, err
	}
	w.Step = time.Microsecond
	w.Tunnel = benchTunnel
	ch, sh := recHBONE[0].Data, recHBONE[1].Data
	record := func(n int) []byte {
		r := make([]byte, 5+n)
		r[0], r[1], r[2], r[3], r[4] = 23, 3, 3, byte(n>>8), byte(n)
		for i := 5; i < len(r); i++ {
			r[i] = byte(i * 7)
		}
		return r
	}
	small, big := record(90), record(300)
	next := 0
	active := make([]*benchFlow, 0, benchActive)
	newFlow := func() *benchFlow {
		i := next
		next++
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), uint16(30000+i%30000))
		server := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, byte(i % 50), 1}), 15008)
		return &benchFlow{c: pcapgen.NewConn(client, server)}
	}
	for len(active) < benchActive && next < benchFlowsVar {
		active = append(active, newFlow())
	}
	// Steps per flow: handshake (3 packets), ClientHello (2 segments), server
	// flight (2 segments), data records (1 packet each), close (3 packets).
	lastData := 2 + benchPktsPerFlow - 10
	for len(active) > 0 {
		for i := 0; i < len(active); i++ {
			fl := active[i]
			var err error
			switch s := fl.step; {
			case s == 0:
				err = w.Handshake(fl.c)
			case s == 1:
				err = w.Send(fl.c, true, ch)
			case s == 2:
				err = w.Send(fl.c, false, sh)
			case s <= lastData:
				rec := small
				if s%3 == 0 {
					rec = big
				}
				err = w.Send(fl.c, s%2 == 0, rec)
			default:
				err = w.Close(fl.c)
			}
			if err != nil {
				return 0, err
			}
			fl.step++
			if fl.step > lastData+1 {
				if next < benchFlowsVar {
					active[i] = newFlow()
				} else {
					active = append(active[:i], active[i+1:]...)
					i--
				}
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	return w.Packets, nil
}

// BenchmarkDecode decodes the whole capture per iteration: file read
// (page cache), zero-copy pcap parsing, layer decoding, flow table, TLS
// record walk and classification.
func BenchmarkDecode(b *testing.B) {
	benchDecode(b, benchCapture(b), benchPkts)
}

// The tunnel benchmarks' captures: the same flows, every packet inside one
// encapsulation between two underlay hosts, written once per kind.
var (
	benchTunnel  *pcapgen.Tunnel // set while writing a tunnel capture
	tunnelBench  = map[pcapgen.TunnelKind]*tunnelCapture{}
	tunnelBenchM sync.Mutex
)

type tunnelCapture struct {
	dir, path string
	pkts      int
	err       error
}

// benchTunnelCapture writes the benchmark capture inside t once.
func benchTunnelCapture(t pcapgen.Tunnel) (string, int, error) {
	tunnelBenchM.Lock()
	defer tunnelBenchM.Unlock()
	if c := tunnelBench[t.Kind]; c != nil {
		return c.path, c.pkts, c.err
	}
	c := &tunnelCapture{}
	tunnelBench[t.Kind] = c
	if c.dir, c.err = os.MkdirTemp("", "pcap-bench-tunnel-"); c.err != nil {
		return "", 0, c.err
	}
	c.path = filepath.Join(c.dir, "tunnel.pcap")
	t.Client, t.Server = netip.MustParseAddr("192.168.7.1"), netip.MustParseAddr("192.168.7.2")
	benchTunnel = &t
	defer func() { benchTunnel = nil }()
	c.pkts, c.err = writeBenchCapture(c.path)
	return c.path, c.pkts, c.err
}

// BenchmarkDecodeVXLAN is BenchmarkDecode with every packet inside VXLAN:
// the tunnel path (outer headers through gopacket's layers, the VXLAN
// header, then the inner packet through the hand-written parser).
func BenchmarkDecodeVXLAN(b *testing.B) {
	recordings(b)
	path, pkts, err := benchTunnelCapture(pcapgen.Tunnel{Kind: pcapgen.VXLAN, Port: 8472, VNI: 1})
	if err != nil {
		b.Fatal(err)
	}
	benchDecode(b, path, pkts)
}

// BenchmarkDecodeTunnel is BenchmarkDecode inside the encapsulations whose
// decoding differs from VXLAN's: Geneve with bare IP inside (no inner
// Ethernet) and ERSPAN type I (GRE through gopacket's layer, no ERSPAN
// header); both must stay at 0 allocations per packet.
func BenchmarkDecodeTunnel(b *testing.B) {
	recordings(b)
	for _, tc := range []struct {
		name string
		kind pcapgen.TunnelKind
	}{{"geneve-ip", pcapgen.GeneveIP}, {"erspan-i", pcapgen.ERSPANI}} {
		b.Run(tc.name, func(b *testing.B) {
			path, pkts, err := benchTunnelCapture(pcapgen.Tunnel{Kind: tc.kind, VNI: 1})
			if err != nil {
				b.Fatal(err)
			}
			benchDecode(b, path, pkts)
		})
	}
}

// benchDecode decodes the capture at path (of pkts packets) b.N times and
// reports per-packet figures; every flow must be HBONE.
func benchDecode(b *testing.B, path string, benchPkts int) {
	var flows int
	var ms0, ms1 runtime.MemStats
	var peak uint64
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		d := NewDecoder()
		if err := d.ReadAll(context.Background(), f); err != nil {
			b.Fatal(err)
		}
		_ = f.Close()
		if i == 0 {
			b.StopTimer()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = ms.HeapInuse
			out := d.Flows()
			flows = len(out)
			for _, fl := range out {
				if fl.Class != ClassHBONE {
					b.Fatalf("flow %s -> %s is %s (%v)", fl.Client, fl.Server, fl.Class, fl.Notes)
				}
			}
			if st := d.Stats(); st.Packets != uint64(benchPkts) || st.Undecodable != 0 {
				b.Fatalf("stats %+v, wrote %d packets", st, benchPkts)
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&ms1)
	pk := float64(benchPkts) * float64(b.N)
	b.ReportMetric(float64(cpu.Nanoseconds())/pk, "cpu-ns/packet")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/pk, "ns/packet")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/pk, "allocs/packet")
	b.ReportMetric(float64(peak)/(1<<20), "heap-MB")
	b.ReportMetric(float64(flows), "flows")
	b.ReportMetric(float64(benchPkts), "packets")
}

// BenchmarkBareRead is the floor: zero-copy pcap reading with the same large
// read buffer and nothing else.
func BenchmarkBareRead(b *testing.B) {
	benchRead(b, func(r io.Reader) (func() error, error) {
		pr, err := pcapgo.NewReader(bufio.NewReaderSize(r, ReadBufferSize))
		if err != nil {
			return nil, err
		}
		return func() error { _, _, err := pr.ZeroCopyReadPacketData(); return err }, nil
	})
}

// BenchmarkBareReadInPlace is BenchmarkBareRead through NewSource: the
// in-place record reader with nothing else.
func BenchmarkBareReadInPlace(b *testing.B) {
	benchRead(b, func(r io.Reader) (func() error, error) {
		src, err := NewSource(r)
		if err != nil {
			return nil, err
		}
		return func() error { _, _, _, err := src.Next(); return err }, nil
	})
}

// benchRead times reading every packet of the benchmark capture with the
// reader open builds, and nothing else.
func benchRead(b *testing.B, open func(io.Reader) (func() error, error)) {
	path := benchCapture(b)
	cpu0 := cpuTime()
	b.ResetTimer()
	var n int
	for i := 0; i < b.N; i++ {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		next, err := open(f)
		if err != nil {
			b.Fatal(err)
		}
		n = 0
		for {
			err := next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		_ = f.Close()
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	if n != benchPkts {
		b.Fatalf("read %d packets, wrote %d", n, benchPkts)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/(float64(n)*float64(b.N)), "cpu-ns/packet")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/(float64(n)*float64(b.N)), "ns/packet")
}

func BenchmarkTshark(b *testing.B) {
	if _, err := exec.LookPath("tshark"); err != nil {
		b.Skip("tshark not installed")
	}
	path := benchCapture(b)
	var cpu time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := exec.Command("tshark", "-n", "-r", path, "-q", "-d", "tcp.port==15008,tls", "-z", "conv,tcp")
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("tshark: %v: %s", err, out)
		}
		cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/(float64(benchPkts)*float64(b.N)), "cpu-ns/packet")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/(float64(benchPkts)*float64(b.N)), "ns/packet")
}

func TestBenchCaptureIsValid(t *testing.T) {
	// A small version of the benchmark capture, checked by the decoder so the
	// generator cannot silently produce something the benchmark misreads.
	recordings(t)
	path := filepath.Join(t.TempDir(), "small.pcap")
	n, err := writeBenchCaptureN(path, 300)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := NewDecoder()
	if err := d.ReadAll(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	flows := d.Flows()
	if len(flows) != 300 || int(d.Stats().Packets) != n || n != 300*benchPktsPerFlow {
		t.Fatalf("flows %d packets %d (wrote %d)", len(flows), d.Stats().Packets, n)
	}
	for _, fl := range flows {
		if fl.Class != ClassHBONE || fl.Packets != benchPktsPerFlow {
			t.Fatalf("flow %+v", fl)
		}
	}
}

func writeBenchCaptureN(path string, n int) (int, error) {
	old := benchFlowsVar
	benchFlowsVar = n
	defer func() { benchFlowsVar = old }()
	return writeBenchCapture(path)
}

var benchFlowsVar = benchFlows

// cpuTime is this process's user+system CPU time: under a loaded machine it
// is a steadier measure than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countPackets counts the records of a classic pcap file.
func countPackets(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	r, err := pcapgo.NewReader(bufio.NewReaderSize(f, ReadBufferSize))
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		_, _, err := r.ZeroCopyReadPacketData()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}
