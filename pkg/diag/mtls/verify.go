package mtls

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

// Config is one verify-mtls run: a capture file to judge, or a live capture,
// and the ztunnel evidence to join.
type Config struct {
	// Pcap is the capture file (pcap or pcapng, optionally gzip); "-" reads
	// Deps.Stdin. Empty captures live with Live.
	Pcap string
	// PodsFile maps addresses to workloads (LoadPodMap's format). Offline it
	// replaces the cluster's pods; live it adds to them.
	PodsFile string
	// LogFiles are ztunnel logs whose "connection complete" lines give
	// identities.
	LogFiles []string
	// DumpFiles are ztunnel config_dumps that give identities and
	// certificates; offline without PodsFile their workloads map the
	// addresses, so no cluster is needed.
	DumpFiles []string
	// Live configures the live capture (Pcap empty).
	Live LiveConfig
	// Rules are --require-pqc and the --expect pairs.
	Rules Rules
}

// LiveConfig selects what a live capture records.
type LiveConfig struct {
	// Namespace holds the pods to capture.
	Namespace string
	// CaptureNamespace holds the capture pods; empty makes a namespace of
	// the run's own (labelled privileged for Pod Security) and deletes it.
	CaptureNamespace string
	// From and To select workloads by pod name, pod name prefix
	// (deployment pods) or the app label; empty means every pod.
	From, To string
	Duration time.Duration
	// MaxPackets stops each node's capture after that many packets (0: no limit).
	MaxPackets int
	// Image is the capture pod's image (with tcpdump and timeout).
	Image string
	// WriteFile, when set, keeps each node's pcap (mode 0600): the name as
	// given for one node, with "-<node>" before the extension for several.
	WriteFile string
}

// LiveResult is what a live capture produced.
type LiveResult struct {
	Flows []pcap.Flow
	Stats pcap.Stats
	// Pods maps the addresses of the pods in the captured namespaces.
	Pods  PodMap
	Nodes []string
	// PerNode is what each node's capture held, in Nodes' order.
	PerNode []NodeCapture
	Files   []string
	// Logs are the "connection complete" lines of the ztunnels on the
	// captured nodes, written during the capture.
	Logs []AccessLogEntry
	// Dumps are the config_dumps of the ztunnels on the captured nodes,
	// read after the capture; those that could not be read are warnings.
	Dumps []ZtunnelDump
}

// PodLister maps the cluster's pods (every namespace) by address.
type PodLister interface {
	PodMap(ctx context.Context) (PodMap, error)
}

// Capturer runs a live capture. Its capture pods are gone when it returns,
// also when ctx is cancelled.
type Capturer interface {
	Capture(ctx context.Context, cfg LiveConfig, progress io.Writer) (*LiveResult, error)
}

// Deps are what Verify reads and writes besides its Config.
type Deps struct {
	// Stdin is read for Config.Pcap "-".
	Stdin io.Reader
	// Pods lists the cluster's pods; nil when there is no cluster.
	Pods PodLister
	// Capturer captures live; needed only without Config.Pcap.
	Capturer Capturer
	// Progress receives progress lines and warnings; nil discards them.
	Progress io.Writer
	// Now decides which certificates expire soon (default time.Now).
	Now func() time.Time
}

// ErrInterrupted is returned (wrapped) when a live capture was cancelled;
// its capture pods are deleted on the way out.
var ErrInterrupted = errors.New("live capture interrupted")

// Verify runs verify-mtls: decode the capture (or capture live), map its
// addresses to workloads, judge every pair, join ztunnel's access logs and
// config_dumps, and flag what the identity join found. Warnings (a
// truncated capture, undecodable packets) go to deps.Progress; the verdict
// is Report.Verdict (PASS, FAIL or INCONCLUSIVE) with its reasons.
func Verify(ctx context.Context, deps Deps, cfg Config) (*Report, error) {
	if deps.Progress == nil {
		deps.Progress = io.Discard
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if cfg.Pcap == "" {
		return verifyLive(ctx, deps, cfg)
	}
	flows, stats, name, err := decodeCapture(ctx, deps.Stdin, cfg.Pcap)
	if err != nil {
		return nil, err
	}
	dumps, err := ReadDumpFiles(cfg.DumpFiles)
	if err != nil {
		return nil, err
	}
	var pods PodMap
	switch {
	case cfg.PodsFile != "":
		if pods, err = ReadPodMapFile(cfg.PodsFile); err != nil {
			return nil, err
		}
	case len(dumps) > 0:
		// ztunnel knows every workload of the mesh: judge offline from it.
		pods = PodMapFromDumps(dumps)
	case deps.Pods == nil:
		return nil, errors.New("map capture addresses to pods: no cluster to list pods from; pass a pod mapping file to judge offline")
	default:
		if pods, err = deps.Pods.PodMap(ctx); err != nil {
			return nil, err
		}
	}
	return judgeAndJoin(deps, cfg, flows, stats, pods, name, nil, dumps, nil)
}

func verifyLive(ctx context.Context, deps Deps, cfg Config) (*Report, error) {
	fileDumps, err := ReadDumpFiles(cfg.DumpFiles)
	if err != nil {
		return nil, err
	}
	if deps.Capturer == nil {
		return nil, errors.New("live capture: no cluster to capture in; judge a capture file instead")
	}
	res, err := deps.Capturer.Capture(ctx, cfg.Live, deps.Progress)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w; its capture pods were deleted", ErrInterrupted, ctx.Err())
		}
		return nil, err
	}
	// Pods of other namespaces (the far end of a pair) and a mapping file
	// complete the namespace's own mapping.
	pods := res.Pods
	if pods == nil {
		pods = PodMap{}
	}
	if deps.Pods != nil {
		if m, err := deps.Pods.PodMap(ctx); err == nil {
			for k, v := range m {
				pods[k] = v
			}
		}
	}
	if cfg.PodsFile != "" {
		m, err := ReadPodMapFile(cfg.PodsFile)
		if err != nil {
			return nil, err
		}
		for k, v := range m {
			pods[k] = v
		}
	}
	dumps := append(res.Dumps, fileDumps...)
	// Addresses no pod has (gone since, or host addresses) may still be
	// workloads ztunnel knows.
	for k, v := range PodMapFromDumps(dumps) {
		if _, ok := pods[k]; !ok {
			pods[k] = v
		}
	}
	for _, f := range res.Files {
		fmt.Fprintf(deps.Progress, "capture kept in %s\n", f)
	}
	return judgeAndJoin(deps, cfg, res.Flows, res.Stats, pods, "live capture", res.Logs, dumps, res.PerNode)
}

// judgeAndJoin judges the flows, joins ztunnel's evidence and writes the
// warnings about the capture itself.
func judgeAndJoin(deps Deps, cfg Config, flows []pcap.Flow, stats pcap.Stats, pods PodMap, name string, logs []AccessLogEntry, dumps []ZtunnelDump, nodes []NodeCapture) (*Report, error) {
	rep := JudgeCapture(flows, stats, pods, cfg.Rules)
	if len(nodes) > 0 {
		rep.Nodes = nodes
		rep.Decide(cfg.Rules)
	}
	if len(logs) > 0 {
		JoinIdentities(rep, logs)
	}
	for _, path := range cfg.LogFiles {
		entries, err := ReadAccessLogFile(path)
		if err != nil {
			return nil, err
		}
		JoinIdentities(rep, entries)
	}
	if len(dumps) > 0 {
		JoinConfigDumps(rep, dumps, deps.Now())
	}
	FlagMissingIdentities(rep, len(logs) > 0 || len(cfg.LogFiles) > 0 || len(dumps) > 0)

	if stats.InputError != "" {
		fmt.Fprintf(deps.Progress, "warning: capture %s: %s; judged the %d packets before it\n", name, stats.InputError, stats.Packets)
	}
	if stats.Undecodable > 0 {
		fmt.Fprintf(deps.Progress, "warning: %d of %d packets could not be decoded\n", stats.Undecodable, stats.Packets)
	}
	return rep, nil
}

// decodeCapture decodes the capture at path ("-": stdin) and returns the name
// warnings use for it.
func decodeCapture(ctx context.Context, stdin io.Reader, path string) ([]pcap.Flow, pcap.Stats, string, error) {
	in, name := stdin, "standard input"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, pcap.Stats{}, "", fmt.Errorf("open capture %s: %w", path, err)
		}
		defer func() { _ = f.Close() }()
		in, name = f, path
	}
	if in == nil {
		return nil, pcap.Stats{}, "", fmt.Errorf("decode capture %s: nothing to read", name)
	}
	dec := pcap.NewDecoder()
	if err := dec.ReadAll(ctx, in); err != nil {
		return nil, pcap.Stats{}, "", fmt.Errorf("decode capture %s: %w", name, err)
	}
	return dec.Flows(), dec.Stats(), name, nil
}

// ReadPodMapFile reads a mapping file (see LoadPodMap).
func ReadPodMapFile(path string) (PodMap, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open pod mapping %s: %w", path, err)
	}
	defer func() { _ = f.Close() }()
	m, err := LoadPodMap(f)
	if err != nil {
		return nil, fmt.Errorf("pod mapping %s: %w", path, err)
	}
	return m, nil
}

// ReadAccessLogFile reads the "connection complete" lines of a ztunnel log file.
func ReadAccessLogFile(path string) ([]AccessLogEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open ztunnel log %s: %w", path, err)
	}
	defer func() { _ = f.Close() }()
	entries, err := ParseAccessLog(f)
	if err != nil {
		return nil, fmt.Errorf("read ztunnel log %s: %w", path, err)
	}
	return entries, nil
}

// ReadDumpFiles reads ztunnel config_dump files (the JSON of its admin
// port's /config_dump).
func ReadDumpFiles(paths []string) ([]ZtunnelDump, error) {
	var out []ZtunnelDump
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read ztunnel config_dump %s: %w", path, err)
		}
		d, err := ztunnel.ParseIdentityDump(b)
		if err != nil {
			return nil, fmt.Errorf("ztunnel config_dump %s: %w; want the JSON of curl localhost:15000/config_dump", path, err)
		}
		out = append(out, ZtunnelDump{Source: path, Dump: d})
	}
	return out, nil
}
