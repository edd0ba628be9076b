// Package capture records live traffic for verify-mtls: one short-lived
// privileged host-network pod per involved node runs tcpdump, the pcap
// streams back over exec into the decoder, and the ztunnels on those nodes
// give their access logs and config_dumps. It also lists the cluster's pods
// for the address map and deletes capture pods left behind. Judging is
// pkg/diag/mtls's; this package only talks to the cluster.
package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel/collector"
)

// Label marks the capture pods verify-mtls creates, so leftovers can be
// found and deleted with Cleanup.
const Label = "kubectl-ambient.io/capture"

// DefaultImage is a widely used troubleshooting image that ships tcpdump.
const DefaultImage = "nicolaka/netshoot:v0.13"

// Options configures a live capture.
type Options struct {
	// LiveConfig says what to capture: namespace, workloads, duration,
	// image, the file to keep.
	mtls.LiveConfig
	// AlsoNamespaces are more namespaces whose pods are captured by the same
	// capture pods (one per node in all).
	AlsoNamespaces []string
	// Progress receives status lines (capture started, live counts, stopped).
	Progress io.Writer
	// ZtunnelSelector finds the ztunnel pods whose access logs and
	// config_dumps are joined (default app=ztunnel, in every namespace).
	ZtunnelSelector string
	// Admin reads a ztunnel's /config_dump; default a port-forward to its
	// localhost-only admin port 15000.
	Admin DumpFetcher
	// DumpTimeout bounds reading all config_dumps (default 15s).
	DumpTimeout time.Duration
	// Suffix names the run's capture pods and, without CaptureNamespace,
	// its own namespace (NamespaceName); random when empty.
	Suffix string
	// NamespaceLabels are added to the run's own namespace (the scenario
	// marks it as its own, so its --cleanup finds it).
	NamespaceLabels map[string]string
}

// DumpFetcher reads the raw /config_dump of one ztunnel pod.
type DumpFetcher interface {
	RawConfigDump(ctx context.Context, ns, pod string) ([]byte, error)
}

// Live captures traffic of the selected pods: one privileged host-network
// capture pod per involved node runs tcpdump for the duration with a BPF
// filter on the pods' addresses; the pcap streams back over exec into the
// decoder. Capture pods are always deleted, also when ctx is cancelled.
func Live(ctx context.Context, cfg *rest.Config, kc kubernetes.Interface, o Options) (*mtls.LiveResult, error) {
	if o.Image == "" {
		o.Image = DefaultImage
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	var all []corev1.Pod
	for _, ns := range append([]string{o.Namespace}, o.AlsoNamespaces...) {
		list, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list pods in namespace %q: %w", ns, err)
		}
		all = append(all, list.Items...)
	}
	var selected []corev1.Pod
	for _, p := range all {
		if p.Status.PodIP == "" || p.Spec.HostNetwork || p.Labels[Label] != "" {
			continue
		}
		if o.From == "" && o.To == "" || matchWorkload(&p, o.From) || matchWorkload(&p, o.To) {
			selected = append(selected, p)
		}
	}
	if len(selected) == 0 {
		return nil, fmt.Errorf("%w (from %q, to %q) in namespace %q; list them with kubectl get pods -n %s -o wide", ErrNoPods, o.From, o.To, o.Namespace, o.Namespace)
	}
	res := &mtls.LiveResult{Pods: mtls.PodMapFromPods(all)}
	nodes := map[string]bool{}
	var hosts []string
	for _, p := range selected {
		if p.Spec.NodeName != "" {
			nodes[p.Spec.NodeName] = true
		}
		for _, ip := range p.Status.PodIPs {
			hosts = append(hosts, "host "+ip.IP)
		}
		if len(p.Status.PodIPs) == 0 {
			hosts = append(hosts, "host "+p.Status.PodIP)
		}
	}
	for n := range nodes {
		res.Nodes = append(res.Nodes, n)
	}
	sort.Strings(res.Nodes)
	filter := "tcp and (" + strings.Join(hosts, " or ") + ")"

	suffix := o.Suffix
	if suffix == "" {
		suffix = rand.String(5)
	}
	// The capture pods never run in the application's namespace: a
	// namespace of the run's own (privileged for Pod Security, deleted at
	// the end) or the one the user named.
	capNS, own := o.CaptureNamespace, o.CaptureNamespace == ""
	if own {
		capNS = NamespaceName(suffix)
		if err := createCaptureNamespace(ctx, kc, capNS, o.NamespaceLabels); err != nil {
			return nil, err
		}
		defer deleteCaptureNamespace(kc, capNS, progress)
	}
	o.CaptureNamespace = capNS

	// Cleanup runs on its own context: it must happen after Ctrl-C too.
	var created []string
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, name := range created {
			zero := int64(0)
			if err := kc.CoreV1().Pods(capNS).Delete(cctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
				_, _ = fmt.Fprintf(progress, "warning: delete capture pod %s/%s: %v; remove leftovers with verify-mtls --cleanup\n", capNS, name, err)
			}
		}
	}()
	started := time.Now()
	podFor := map[string]string{}
	for _, node := range res.Nodes {
		pod := capturePod(capNS, node, suffix, o.Image, o.Duration)
		if _, err := kc.CoreV1().Pods(capNS).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return nil, explainCreate(capNS, own, err)
		}
		created = append(created, pod.Name)
		podFor[node] = pod.Name
	}
	for _, node := range res.Nodes {
		if err := waitRunning(ctx, kc, capNS, podFor[node], 90*time.Second); err != nil {
			return nil, err
		}
	}

	secs := strconv.Itoa(int((o.Duration + time.Second - 1) / time.Second))
	// --immediate-mode and a 16 MiB ring (-B): otherwise libpcap holds
	// packets up to a second and a full-snaplen ring of 2 MiB holds only
	// eight, so a short capture on a busy node loses packets.
	cmd := []string{"timeout", "-s", "INT", secs, "tcpdump", "--immediate-mode", "-B", "16384", "-i", "any", "-U", "-s", "0", "-w", "-"}
	if o.MaxPackets > 0 {
		cmd = append(cmd, "-c", strconv.Itoa(o.MaxPackets))
	}
	cmd = append(cmd, filter)

	type nodeOut struct {
		flows []pcap.Flow
		stats pcap.Stats
		err   error
		file  string
	}
	outs := make([]nodeOut, len(res.Nodes))
	counts := make([]atomic.Uint64, len(res.Nodes))
	stopTicker := make(chan struct{})
	go func() {
		// Live counts while the capture runs.
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopTicker:
				return
			case <-t.C:
				parts := make([]string, len(res.Nodes))
				for i, n := range res.Nodes {
					parts[i] = fmt.Sprintf("%s %d", n, counts[i].Load())
				}
				_, _ = fmt.Fprintf(progress, "packets so far: %s\n", strings.Join(parts, ", "))
			}
		}
	}()
	var wg sync.WaitGroup
	for i, node := range res.Nodes {
		wg.Add(1)
		go func(i int, node string) {
			defer wg.Done()
			_, _ = fmt.Fprintf(progress, "capturing on node %s for %s (pod %s/%s)\n", node, o.Duration, capNS, podFor[node])
			outs[i].file, outs[i].flows, outs[i].stats, outs[i].err = captureNode(ctx, cfg, kc, o, podFor[node], node, len(res.Nodes) > 1, cmd, &counts[i])
		}(i, node)
	}
	wg.Wait()
	close(stopTicker)
	// Ctrl-C ends the capture streams early: what they carried is no proof.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("capture interrupted: %w", err)
	}
	seen := map[[2]netip.AddrPort]int{}
	for i, out := range outs {
		if out.err != nil {
			return nil, fmt.Errorf("capture on node %s: %w", res.Nodes[i], out.err)
		}
		if out.file != "" {
			res.Files = append(res.Files, out.file)
		}
		res.PerNode = append(res.PerNode, mtls.NodeCapture{Node: res.Nodes[i], Packets: out.stats.Packets, TCP: out.stats.TCP, Flows: len(out.flows)})
		res.Stats.Packets += out.stats.Packets
		res.Stats.Bytes += out.stats.Bytes
		res.Stats.TCP += out.stats.TCP
		res.Stats.NonTCP += out.stats.NonTCP
		res.Stats.NonIP += out.stats.NonIP
		res.Stats.Undecodable += out.stats.Undecodable
		if out.stats.InputError != "" {
			res.Stats.InputError = out.stats.InputError
		}
		// A connection between two nodes is seen on both: keep the richer view.
		for _, f := range out.flows {
			k := [2]netip.AddrPort{f.Client, f.Server}
			if j, ok := seen[k]; ok {
				if f.Packets > res.Flows[j].Packets {
					res.Flows[j] = f
				}
				continue
			}
			seen[k] = len(res.Flows)
			res.Flows = append(res.Flows, f)
		}
	}
	res.Stats.Flows = len(res.Flows)
	zpods := ztunnelPods(ctx, kc, o, res.Nodes, progress)
	res.Logs = ztunnelLogs(ctx, kc, zpods, started, progress)
	admin := o.Admin
	if admin == nil {
		admin = collector.PortForwardAdmin{Config: cfg, Client: kc}
	}
	res.Dumps = ztunnelDumps(ctx, admin, zpods, o.DumpTimeout, progress)
	_, _ = fmt.Fprintf(progress, "captured %d packets, %d connections on %d node(s)\n", res.Stats.Packets, len(res.Flows), len(res.Nodes))
	return res, nil
}

func captureNode(ctx context.Context, cfg *rest.Config, kc kubernetes.Interface, o Options, pod, node string, many bool, cmd []string, count *atomic.Uint64) (string, []pcap.Flow, pcap.Stats, error) {
	pr, pw := io.Pipe()
	var stream io.Writer = pw
	var file string
	var f *os.File
	if o.WriteFile != "" {
		file = o.WriteFile
		if many {
			ext := ""
			if i := strings.LastIndex(file, "."); i > strings.LastIndex(file, "/") {
				file, ext = file[:i], file[i:]
			}
			file = file + "-" + node + ext
		}
		var err error
		f, err = os.OpenFile(file, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return "", nil, pcap.Stats{}, fmt.Errorf("%w %s: %w", ErrWriteFile, file, err)
		}
		defer func() { _ = f.Close() }()
		stream = io.MultiWriter(pw, f)
	}
	var stderr strings.Builder
	errc := make(chan error, 1)
	go func() {
		err := Exec(ctx, cfg, kc, o.CaptureNamespace, pod, "capture", cmd, stream, &limitedWriter{w: &stderr, n: 4096})
		_ = pw.CloseWithError(io.EOF)
		errc <- err
	}()
	d := pcap.NewDecoder()
	d.Progress = count.Store
	derr := d.ReadAll(ctx, pr)
	_ = pr.Close()
	serr := <-errc
	if derr != nil {
		msg := strings.TrimSpace(stderr.String())
		if errors.Is(derr, pcap.ErrNotCapture) && msg != "" {
			return file, nil, pcap.Stats{}, fmt.Errorf("tcpdump in pod %s failed: %s", pod, firstLine(msg))
		}
		return file, nil, pcap.Stats{}, derr
	}
	// timeout(1) ends tcpdump with SIGINT: exit status 124 is the normal end.
	if serr != nil && !strings.Contains(serr.Error(), "124") && ctx.Err() == nil {
		return file, nil, pcap.Stats{}, fmt.Errorf("exec tcpdump in pod %s: %w: %s", pod, serr, firstLine(strings.TrimSpace(stderr.String())))
	}
	return file, d.Flows(), d.Stats(), nil
}
