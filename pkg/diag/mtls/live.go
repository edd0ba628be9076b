package mtls

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
	kwatch "k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel/collector"
)

// CaptureLabel marks the capture pods verify-mtls creates, so leftovers can
// be found and deleted with --cleanup.
const CaptureLabel = "kubectl-ambient.io/capture"

// DefaultCaptureImage is a widely used troubleshooting image that ships tcpdump.
const DefaultCaptureImage = "nicolaka/netshoot:v0.13"

// LiveOptions configures a live capture.
type LiveOptions struct {
	// Namespace holds the pods to capture, and the capture pods.
	Namespace string
	// AlsoNamespaces are more namespaces whose pods are captured by the same
	// capture pods (one per node in all).
	AlsoNamespaces []string
	// From and To select workloads by pod name, pod name prefix
	// (deployment pods) or the app label; empty means every pod.
	From, To string
	Duration time.Duration
	// MaxPackets stops each node's capture after that many packets (0: no limit).
	MaxPackets int
	Image      string
	// WriteFile, when set, keeps each node's pcap (mode 0600): the name as
	// given for one node, with "-<node>" before the extension for several.
	WriteFile string
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
}

// DumpFetcher reads the raw /config_dump of one ztunnel pod.
type DumpFetcher interface {
	RawConfigDump(ctx context.Context, ns, pod string) ([]byte, error)
}

// LiveResult is what a live capture produced.
type LiveResult struct {
	Flows []pcap.Flow
	Stats pcap.Stats
	Pods  PodMap
	Nodes []string
	Files []string
	// Logs are the "connection complete" lines of the ztunnels on the
	// captured nodes, written during the capture.
	Logs []AccessLogEntry
	// Dumps are the config_dumps of the ztunnels on the captured nodes,
	// read after the capture; those that could not be read are warnings.
	Dumps []ZtunnelDump
}

// Live captures traffic of the selected pods: one privileged host-network
// capture pod per involved node runs tcpdump for the duration with a BPF
// filter on the pods' addresses; the pcap streams back over exec into the
// decoder. Capture pods are always deleted, also when ctx is cancelled.
func Live(ctx context.Context, cfg *rest.Config, kc kubernetes.Interface, o LiveOptions) (*LiveResult, error) {
	if o.Image == "" {
		o.Image = DefaultCaptureImage
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
		if p.Status.PodIP == "" || p.Spec.HostNetwork || p.Labels[CaptureLabel] != "" {
			continue
		}
		if o.From == "" && o.To == "" || matchWorkload(&p, o.From) || matchWorkload(&p, o.To) {
			selected = append(selected, p)
		}
	}
	if len(selected) == 0 {
		return nil, fmt.Errorf("no running pods with an ip match --from %q --to %q in namespace %q; list them with kubectl get pods -n %s -o wide", o.From, o.To, o.Namespace, o.Namespace)
	}
	res := &LiveResult{Pods: PodMapFromPods(all)}
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

	// Cleanup runs on its own context: it must happen after Ctrl-C too.
	var created []string
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, name := range created {
			zero := int64(0)
			if err := kc.CoreV1().Pods(o.Namespace).Delete(cctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
				_, _ = fmt.Fprintf(progress, "warning: delete capture pod %s/%s: %v; remove leftovers with verify-mtls --cleanup\n", o.Namespace, name, err)
			}
		}
	}()
	started := time.Now()
	suffix := rand.String(5)
	podFor := map[string]string{}
	for _, node := range res.Nodes {
		pod := capturePod(o.Namespace, node, suffix, o.Image, o.Duration)
		if _, err := kc.CoreV1().Pods(o.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return nil, explainCreate(o.Namespace, err)
		}
		created = append(created, pod.Name)
		podFor[node] = pod.Name
	}
	for _, node := range res.Nodes {
		if err := waitRunning(ctx, kc, o.Namespace, podFor[node], 90*time.Second); err != nil {
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
			_, _ = fmt.Fprintf(progress, "capturing on node %s for %s (pod %s/%s)\n", node, o.Duration, o.Namespace, podFor[node])
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
		res.Stats.Packets += out.stats.Packets
		res.Stats.Bytes += out.stats.Bytes
		res.Stats.TCP += out.stats.TCP
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

func captureNode(ctx context.Context, cfg *rest.Config, kc kubernetes.Interface, o LiveOptions, pod, node string, many bool, cmd []string, count *atomic.Uint64) (string, []pcap.Flow, pcap.Stats, error) {
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
			return "", nil, pcap.Stats{}, fmt.Errorf("--write %s: %w", file, err)
		}
		defer func() { _ = f.Close() }()
		stream = io.MultiWriter(pw, f)
	}
	var stderr strings.Builder
	errc := make(chan error, 1)
	go func() {
		err := execInPod(ctx, cfg, kc, o.Namespace, pod, "capture", cmd, stream, &limitedWriter{w: &stderr, n: 4096})
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

// ztunnelPods lists the ztunnel pods on nodes. Failing to is a warning:
// identities are extra evidence.
func ztunnelPods(ctx context.Context, kc kubernetes.Interface, o LiveOptions, nodes []string, progress io.Writer) []corev1.Pod {
	sel := o.ZtunnelSelector
	if sel == "" {
		sel = "app=ztunnel"
	}
	list, err := kc.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		_, _ = fmt.Fprintf(progress, "warning: list ztunnel pods (%s): %v; identities not joined\n", sel, err)
		return nil
	}
	on := map[string]bool{}
	for _, n := range nodes {
		on[n] = true
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if on[p.Spec.NodeName] {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		_, _ = fmt.Fprintf(progress, "warning: no ztunnel pods (%s) on nodes %s; identities not joined\n", sel, strings.Join(nodes, ", "))
	}
	return out
}

// ztunnelLogs reads the access logs of the ztunnel pods since start.
// Missing log access is a warning.
func ztunnelLogs(ctx context.Context, kc kubernetes.Interface, pods []corev1.Pod, start time.Time, progress io.Writer) []AccessLogEntry {
	since := metav1.NewTime(start.Add(-5 * time.Second))
	limit := int64(32 << 20)
	var out []AccessLogEntry
	for _, p := range pods {
		rc, err := kc.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{SinceTime: &since, LimitBytes: &limit}).Stream(ctx)
		if err != nil {
			_, _ = fmt.Fprintf(progress, "warning: read logs of %s/%s: %v; identities from that node not joined\n", p.Namespace, p.Name, err)
			continue
		}
		es, err := ParseAccessLog(rc)
		_ = rc.Close()
		if err != nil {
			_, _ = fmt.Fprintf(progress, "warning: read logs of %s/%s: %v\n", p.Namespace, p.Name, err)
		}
		out = append(out, es...)
	}
	return out
}

// ztunnelDumps reads the config_dumps of the ztunnel pods in parallel,
// within timeout for all of them. A dump that cannot be read is a warning,
// never a failure of the verdict.
func ztunnelDumps(ctx context.Context, admin DumpFetcher, pods []corev1.Pod, timeout time.Duration, progress io.Writer) []ZtunnelDump {
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := make([]*ZtunnelDump, len(pods))
	var wg sync.WaitGroup
	for i := range pods {
		wg.Add(1)
		go func(i int, p *corev1.Pod) {
			defer wg.Done()
			name := p.Namespace + "/" + p.Name
			body, err := admin.RawConfigDump(ctx, p.Namespace, p.Name)
			if err == nil {
				var d *ztunnel.IdentityDump
				if d, err = ztunnel.ParseIdentityDump(body); err == nil {
					out[i] = &ZtunnelDump{Source: name, Node: p.Spec.NodeName, Dump: d}
					return
				}
			}
			hint := "is its admin port 15000 serving?"
			if strings.Contains(strings.ToLower(err.Error()), "forbidden") {
				hint = "needs RBAC create pods/portforward in " + p.Namespace
			}
			_, _ = fmt.Fprintf(progress, "warning: config_dump of ztunnel %s on node %s (port-forward to 15000): %v; its certificates not checked (%s)\n", name, p.Spec.NodeName, err, hint)
		}(i, &pods[i])
	}
	wg.Wait()
	var dumps []ZtunnelDump
	for _, d := range out {
		if d != nil {
			dumps = append(dumps, *d)
		}
	}
	return dumps
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		q := p
		if len(q) > l.n {
			q = q[:l.n]
		}
		l.n -= len(q)
		_, _ = l.w.Write(q)
	}
	return len(p), nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// matchWorkload: the pod's name, a name prefix followed by "-" (pods of a
// Deployment or StatefulSet), or the app / app.kubernetes.io/name label.
func matchWorkload(p *corev1.Pod, w string) bool {
	if w == "" {
		return false
	}
	return p.Name == w || strings.HasPrefix(p.Name, w+"-") || p.Labels["app"] == w || p.Labels["app.kubernetes.io/name"] == w
}

func capturePod(ns, node, suffix, image string, d time.Duration) *corev1.Pod {
	priv := true
	no := false
	zero := int64(0)
	name := "ambient-capture-" + suffix + "-" + node
	if len(name) > 63 {
		name = name[:63]
	}
	name = strings.TrimRight(name, "-.")
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels: map[string]string{CaptureLabel: "true", "app.kubernetes.io/managed-by": "kubectl-ambient"},
		},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			HostNetwork:                   true,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &zero,
			AutomountServiceAccountToken:  &no,
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name:    "capture",
				Image:   image,
				Command: []string{"sleep", strconv.Itoa(int(d/time.Second) + 120)},
				SecurityContext: &corev1.SecurityContext{
					Privileged:   &priv,
					Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}},
				},
			}},
		},
	}
}

func explainCreate(ns string, err error) error {
	switch {
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "PodSecurity"):
		return fmt.Errorf("create capture pod in namespace %q: %w; the capture pod is privileged with host networking: label the namespace pod-security.kubernetes.io/enforce=privileged or capture offline with --pcap", ns, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("create capture pod in namespace %q: %w; verify-mtls needs RBAC create/delete pods and create pods/exec there", ns, err)
	}
	return fmt.Errorf("create capture pod in namespace %q: %w", ns, err)
}

func waitRunning(ctx context.Context, kc kubernetes.Interface, ns, name string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var phase corev1.PodPhase
	_, err := watchPods(ctx, kc, ns, CaptureLabel, func(state map[string]*corev1.Pod) bool {
		if p := state[name]; p != nil {
			phase = p.Status.Phase
		}
		return phase == corev1.PodRunning || phase == corev1.PodFailed || phase == corev1.PodSucceeded
	})
	switch {
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("capture pod %s/%s not running after %s (image pull or scheduling?); check kubectl describe pod -n %s %s", ns, name, limit, ns, name)
	case err != nil:
		return fmt.Errorf("wait for capture pod %s/%s: %w", ns, name, err)
	case phase != corev1.PodRunning:
		return fmt.Errorf("capture pod %s/%s ended (%s) before the capture; check kubectl describe pod -n %s %s", ns, name, phase, ns, name)
	}
	return nil
}

// watchPods lists the pods matching selector in ns, then follows a watch
// until done holds for the current state (pods by name) or ctx ends.
func watchPods(ctx context.Context, kc kubernetes.Interface, ns, selector string, done func(map[string]*corev1.Pod) bool) (map[string]*corev1.Pod, error) {
	for {
		list, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return nil, fmt.Errorf("list pods in namespace %s: %w", ns, err)
		}
		state := map[string]*corev1.Pod{}
		for i := range list.Items {
			state[list.Items[i].Name] = &list.Items[i]
		}
		if done(state) {
			return state, nil
		}
		w, err := kc.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: selector, ResourceVersion: list.ResourceVersion})
		if err != nil {
			return nil, fmt.Errorf("watch pods in namespace %s: %w", ns, err)
		}
		finished, err := follow(ctx, w, state, done)
		w.Stop()
		if finished || err != nil {
			return state, err
		}
		// The watch closed (server timeout): list again and resume.
	}
}

func follow(ctx context.Context, w kwatch.Interface, state map[string]*corev1.Pod, done func(map[string]*corev1.Pod) bool) (bool, error) {
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false, nil
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod {
				continue
			}
			switch ev.Type {
			case kwatch.Added, kwatch.Modified:
				state[p.Name] = p
			case kwatch.Deleted:
				delete(state, p.Name)
			}
			if done(state) {
				return true, nil
			}
		}
	}
}

func execInPod(ctx context.Context, cfg *rest.Config, kc kubernetes.Interface, ns, pod, container string, cmd []string, stdout, stderr io.Writer) error {
	req := kc.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return err
	}
	return ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: stdout, Stderr: stderr})
}

// Cleanup deletes capture pods left behind (all namespaces when ns is
// empty) and returns their names.
func Cleanup(ctx context.Context, kc kubernetes.Interface, ns string) ([]string, error) {
	list, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: CaptureLabel})
	if err != nil {
		return nil, fmt.Errorf("list capture pods: %w", err)
	}
	var gone []string
	for _, p := range list.Items {
		zero := int64(0)
		if err := kc.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
			return gone, fmt.Errorf("delete capture pod %s/%s: %w", p.Namespace, p.Name, err)
		}
		gone = append(gone, p.Namespace+"/"+p.Name)
	}
	return gone, nil
}
