// Package rollout upgrades ztunnel node by node: the recipe users run by hand
// (istio/istio#51126) as one resumable operation. It switches the ztunnel
// DaemonSet to updateStrategy OnDelete through the chart's values, then per
// node (or batch of nodes) records what the node carries, cordons it, drains
// its captured workloads through the eviction API (PodDisruptionBudgets
// hold), deletes its ztunnel pod, waits for the new one to be Ready with its
// certificates Available and no pending proxies, judges the node with the
// rules of `status`, uncordons it and only then moves on. A journal in a
// ConfigMap beside the DaemonSet lets a re-run resume where a run stopped.
package rollout

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel/collector"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/install"
)

// JournalName is the ConfigMap (in ztunnel's namespace) that records a rollout.
const JournalName = "ztunnel-rollout"

// ErrNodeFailed is returned (wrapped) when a node did not come back healthy:
// the rollout stopped there and left the node cordoned.
var ErrNodeFailed = errors.New("node failed")

// ErrHeldByBudget is returned (wrapped) when a drain gives up on pods that
// PodDisruptionBudgets keep from being evicted.
var ErrHeldByBudget = errors.New("still held by PodDisruptionBudgets")

// ErrNotOnDelete is returned (wrapped) when the rollout has no chart to
// switch the DaemonSet to OnDelete and it is not OnDelete already.
var ErrNotOnDelete = errors.New("not OnDelete")

// ErrInterrupted is returned (wrapped) when the run was cancelled (Ctrl-C).
var ErrInterrupted = errors.New("rollout interrupted")

// Defaults of Options.
const (
	DefaultDrainTimeout = 5 * time.Minute
	DefaultReadyTimeout = 5 * time.Minute
	pollInterval        = 250 * time.Millisecond
)

// Chart is the Helm upgrade the rollout applies first: pkg/install's own
// entry point, to which the rollout adds the OnDelete values for ztunnel.
type Chart struct {
	Installer *install.Installer
	Options   install.Options
}

// Options describe one rollout.
type Options struct {
	Kube kubernetes.Interface
	// Namespace and DaemonSet name ztunnel's DaemonSet (istio-system/ztunnel).
	Namespace, DaemonSet string
	// Chart, when set, is applied first (a version change); nil replaces
	// outdated pods under the DaemonSet's current template only.
	Chart *Chart
	// MaxUnavailable is how many nodes are handled at once (default 1).
	MaxUnavailable int
	// NoDrain skips the eviction of captured workloads: their connections
	// are reset when ztunnel is replaced.
	NoDrain bool
	// DryRun plans and prints, and writes nothing.
	DryRun bool
	// DrainTimeout bounds the drain of one node (PDBs may hold it);
	// ReadyTimeout bounds the wait for the new ztunnel.
	DrainTimeout, ReadyTimeout time.Duration
	// Admin reads config_dump; nil uses the API server's pod proxy.
	Admin collector.AdminFetcher
	// Progress receives one line per step and node (stderr); nil is silent.
	Progress io.Writer
}

func (o *Options) defaults() {
	if o.Namespace == "" {
		o.Namespace = collector.DefaultZtunnelNamespace
	}
	if o.DaemonSet == "" {
		o.DaemonSet = "ztunnel"
	}
	if o.MaxUnavailable <= 0 {
		o.MaxUnavailable = 1
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.Admin == nil {
		o.Admin = collector.ProxyAdmin{Client: o.Kube}
	}
}

// Results of one node.
const (
	ResultUpgraded    = "upgraded"
	ResultUpToDate    = "up-to-date"
	ResultPlanned     = "planned"
	ResultFailed      = "failed"
	ResultInterrupted = "interrupted"
	ResultNotReached  = "not-reached"
)

// StepTime is how long one step of a node took.
type StepTime struct {
	Step    string  `json:"step"`
	Seconds float64 `json:"seconds"`
}

// NodeResult is what happened on one node.
type NodeResult struct {
	Node   string `json:"node"`
	Result string `json:"result"`
	// OldPod/NewPod and OldVersion/NewVersion are the ztunnel pods and
	// their image versions before and after.
	OldPod     string `json:"oldPod,omitempty"`
	NewPod     string `json:"newPod,omitempty"`
	OldVersion string `json:"oldVersion,omitempty"`
	NewVersion string `json:"newVersion,omitempty"`
	// Captured counts the node's captured pods before the drain; Connections
	// is ztunnel's open connections then (opened minus closed, from metrics;
	// -1 when the metrics could not be read).
	Captured    int        `json:"capturedPods"`
	Connections float64    `json:"openConnections"`
	Evicted     int        `json:"evicted"`
	Steps       []StepTime `json:"steps,omitempty"`
	// OverheadSeconds is the time spent beyond the drain and the wait for
	// the new ztunnel: the rollout's own cost on this node.
	OverheadSeconds float64  `json:"overheadSeconds"`
	Reason          string   `json:"reason,omitempty"`
	Warnings        []string `json:"warnings,omitempty"`
	// LeftCordoned says the node is cordoned by this rollout and stays so.
	LeftCordoned bool `json:"leftCordoned,omitempty"`
}

// Report is the outcome of Run.
type Report struct {
	Namespace string `json:"namespace"`
	DaemonSet string `json:"daemonSet"`
	// Version is the chart version applied ("" without a chart).
	Version string `json:"version,omitempty"`
	// Revision is the DaemonSet's controller-revision-hash every pod must reach.
	Revision string `json:"revision,omitempty"`
	DryRun   bool   `json:"dryRun,omitempty"`
	// Steps are what each node goes through, in order (for --dry-run).
	Steps    []string     `json:"steps"`
	Nodes    []NodeResult `json:"nodes"`
	Complete bool         `json:"complete"`
	// Stopped says where and why the run stopped, and how to resume.
	Stopped string `json:"stopped,omitempty"`
	Resume  string `json:"resume,omitempty"`
	// Notes are things the user should know (a leftover field cleared, ...).
	Notes []string `json:"notes,omitempty"`
}

// PrintTable prints one row per node.
func (r *Report) PrintTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if r.DryRun {
		_, _ = fmt.Fprintf(tw, "steps per node: %s\n", strings.Join(r.Steps, " -> "))
	}
	_, _ = fmt.Fprintln(tw, "NODE\tRESULT\tVERSION\tCAPTURED\tCONNECTIONS\tEVICTED\tOVERHEAD\tREASON")
	for _, n := range r.Nodes {
		v := n.OldVersion
		if n.NewVersion != "" && n.NewVersion != n.OldVersion {
			v += " -> " + n.NewVersion
		}
		conns := "-"
		if n.Connections >= 0 && n.Result != ResultPlanned && n.Result != ResultUpToDate && n.Result != ResultNotReached {
			conns = fmt.Sprintf("%.0f", n.Connections)
		}
		over := "-"
		if n.Result == ResultUpgraded {
			over = (time.Duration(n.OverheadSeconds * float64(time.Second))).Round(time.Millisecond).String()
		}
		reason := n.Reason
		if n.LeftCordoned {
			reason += " (left cordoned)"
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\n", n.Node, n.Result, v, n.Captured, conns, n.Evicted, over, strings.TrimSpace(reason))
	}
	return tw.Flush()
}
