package ztunnel

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// Thresholds tune the health rules.
type Thresholds struct {
	// CertExpiry warns about certificates that expire sooner than this (or
	// than half their lifetime, if shorter: ambient.CertWarnWindow).
	CertExpiry time.Duration
	// RestartWindow flags restarts that happened within it.
	RestartWindow time.Duration
	// PendingGrace is how long pending proxies may stay without draining.
	PendingGrace time.Duration
	// FailureRatio of failed to attempted connections makes a node unhealthy
	// (any failure at all is a warning).
	FailureRatio float64
}

// DefaultThresholds are the rules' defaults: a day for certificates, an hour
// for restarts, 30 s for pending proxies, half the connections failing.
func DefaultThresholds() Thresholds {
	return Thresholds{CertExpiry: ambient.CertWarnLimit, RestartWindow: time.Hour, PendingGrace: 30 * time.Second, FailureRatio: 0.5}
}

// Observation is what the watchers know about one node at one moment.
type Observation struct {
	Node        string
	NodeReady   bool
	Schedulable bool
	Conditions  []NodeCondition
	Ztunnel     *Pod
	Probe       *Probe
	Metrics     *Metrics
	// Rates come from the two latest scrapes (nil after the first).
	Rates       *Rates
	ScrapeError string
	// PendingStuck is how long pending proxies have been present without
	// draining; see PendingTracker.
	PendingStuck time.Duration
	Pods         PodCounts
	// Certificates and CertError are set once the config_dump has been read.
	Certificates []Certificate
	CertError    string
}

// Evaluate applies the health rules to an observation. Reasons come out
// worst first; among equals, in the order below (a missing ztunnel first).
func Evaluate(o Observation, now time.Time, th Thresholds) NodeHealth {
	h := NodeHealth{
		Node: o.Node, NodeReady: o.NodeReady, Schedulable: o.Schedulable, Conditions: o.Conditions,
		Ztunnel: o.Ztunnel, Probe: o.Probe, Metrics: o.Metrics, Rates: o.Rates, ScrapeError: o.ScrapeError,
		Pods: o.Pods, Certificates: o.Certificates, CertError: o.CertError,
	}
	add := func(code string, sev State, format string, args ...any) {
		h.Reasons = append(h.Reasons, Reason{Code: code, Severity: sev, Message: fmt.Sprintf(format, args...)})
	}
	z := o.Ztunnel
	switch {
	case z == nil && o.Schedulable:
		add(ReasonNoZtunnel, StateUnhealthy, "no ztunnel on node")
	case z == nil:
		add(ReasonNotScheduled, StateHealthy, "node cordoned; no ztunnel")
	}
	if !o.NodeReady {
		add(ReasonNodeNotReady, StateUnhealthy, "node NotReady%s", condReason(o.Conditions, "Ready"))
	}
	if z != nil {
		switch {
		case z.Waiting == "CrashLoopBackOff":
			add(ReasonCrashLoop, StateUnhealthy, "ztunnel in CrashLoopBackOff (%d restarts)", z.Restarts)
		case z.Phase != "Running":
			add(ReasonZtunnelNotRun, StateUnhealthy, "ztunnel pod %s", z.Phase)
		case !z.Ready:
			add(ReasonZtunnelNotReady, StateUnhealthy, "ztunnel NotReady (pod not ready)")
		case o.Probe != nil && !o.Probe.Ready:
			detail := o.Probe.Error
			if o.Probe.Status != 0 {
				detail = fmt.Sprintf("returned %d", o.Probe.Status)
			}
			add(ReasonZtunnelNotReady, StateUnhealthy, "ztunnel NotReady (/healthz/ready %s)", detail)
		}
		if z.LastRestartAt != nil && now.Sub(*z.LastRestartAt) < th.RestartWindow && z.Waiting != "CrashLoopBackOff" {
			why := ""
			if z.LastRestartReason != "" {
				why = ", " + z.LastRestartReason
			}
			add(ReasonRecentRestart, StateWarning, "restarted %d times, last %s ago%s", z.Restarts, Age(now.Sub(*z.LastRestartAt)), why)
		}
	}
	if o.Metrics != nil && o.Metrics.PendingProxies > 0 && o.PendingStuck >= th.PendingGrace && o.Rates != nil {
		add(ReasonPendingProxies, StateWarning, "%.0f pending proxies not draining for %s", o.Metrics.PendingProxies, Age(o.PendingStuck))
	}
	for _, c := range o.Certificates {
		switch {
		case !strings.EqualFold(c.State, "Available"):
			sev := StateUnhealthy
			if strings.EqualFold(c.State, "Initializing") {
				sev = StateWarning
			}
			add(ReasonCertUnavailable, sev, "certificate %s %s", shortIdentity(c.Identity), c.State)
		case ambient.CertExpiry(c.ValidFrom, c.Expiration, now, th.CertExpiry) == ambient.CertExpired:
			add(ReasonCertExpiring, StateUnhealthy, "certificate %s expired %s ago", shortIdentity(c.Identity), Age(now.Sub(*c.Expiration)))
		case ambient.CertExpiry(c.ValidFrom, c.Expiration, now, th.CertExpiry) == ambient.CertExpiring:
			add(ReasonCertExpiring, StateWarning, "certificate %s expires in %s", shortIdentity(c.Identity), Age(c.Expiration.Sub(now)))
		}
	}
	if o.CertError != "" && z != nil {
		add(ReasonCertUnavailable, StateWarning, "certificates unreadable: %s", o.CertError)
	}
	if r := o.Rates; r != nil {
		if r.Failed > 0 {
			sev := StateWarning
			attempts := r.Opened + r.Failed
			ratio := r.Failed / attempts
			if ratio >= th.FailureRatio {
				sev = StateUnhealthy
			}
			add(ReasonConnFailures, sev, "%.1f connection failures/s (%.0f%% of attempts)", r.FailedPerSec, ratio*100)
		}
		if r.XDSTerminations > 0 {
			add(ReasonXDSDisconnects, StateWarning, "%.0f xDS disconnects in %s", r.XDSTerminations, Age(r.Window))
		}
	}
	if o.ScrapeError != "" && z != nil {
		add(ReasonMetricsUnreached, StateUnknown, "metrics unavailable: %s", o.ScrapeError)
	}
	sort.SliceStable(h.Reasons, func(i, j int) bool { return h.Reasons[i].Severity > h.Reasons[j].Severity })
	h.State = StateHealthy
	for _, r := range h.Reasons {
		if r.Severity > h.State {
			h.State = r.Severity
		}
	}
	return h
}

func condReason(conds []NodeCondition, typ string) string {
	for _, c := range conds {
		if c.Type == typ && c.Reason != "" {
			return " (" + c.Reason + ")"
		}
	}
	return ""
}

// shortIdentity turns spiffe://td/ns/x/sa/y into x/y for messages.
func shortIdentity(id string) string {
	if i := strings.Index(id, "/ns/"); i >= 0 {
		rest := id[i+4:]
		if ns, sa, ok := strings.Cut(rest, "/sa/"); ok {
			return ns + "/" + sa
		}
	}
	return id
}

// Age formats a duration the way kubectl prints ages: 45s, 12m, 3h, 2d.
func Age(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// PendingTracker remembers, per node, since when pending proxies have been
// present without draining. Not safe for concurrent use.
type PendingTracker struct {
	since map[string]time.Time
	last  map[string]float64
}

// Observe records a scrape and returns how long pending proxies have been stuck.
func (p *PendingTracker) Observe(node string, pending float64, at time.Time) time.Duration {
	if p.since == nil {
		p.since, p.last = map[string]time.Time{}, map[string]float64{}
	}
	prev, seen := p.last[node]
	p.last[node] = pending
	switch {
	case pending <= 0:
		delete(p.since, node)
		return 0
	case !seen || pending < prev:
		// First sight, or draining: start (again) from now.
		p.since[node] = at
		return 0
	}
	s, ok := p.since[node]
	if !ok {
		p.since[node] = at
		return 0
	}
	return at.Sub(s)
}

// Forget drops a node that went away.
func (p *PendingTracker) Forget(node string) {
	delete(p.since, node)
	delete(p.last, node)
}

// Sort orders for node lists.
const (
	SortState    = "state"
	SortName     = "name"
	SortRestarts = "restarts"
	SortFailures = "failures"
	SortPods     = "pods"
)

// SortOrders lists the orders in the order the TUI cycles through them.
var SortOrders = []string{SortState, SortName, SortRestarts, SortFailures, SortPods}

// SortNodes sorts in place; the default (state) puts the sickest first, ties by name.
func SortNodes(nodes []NodeHealth, by string) {
	sort.SliceStable(nodes, func(i, j int) bool { return lessNode(&nodes[i], &nodes[j], by) })
}

func lessNode(a, b *NodeHealth, by string) bool {
	switch by {
	case SortName:
		return a.Node < b.Node
	case SortRestarts:
		if ra, rb := restarts(a), restarts(b); ra != rb {
			return ra > rb
		}
	case SortFailures:
		if fa, fb := failures(a), failures(b); fa != fb {
			return fa > fb
		}
	case SortPods:
		if a.Pods.Captured != b.Pods.Captured {
			return a.Pods.Captured > b.Pods.Captured
		}
	}
	if a.State != b.State {
		return a.State > b.State
	}
	return a.Node < b.Node
}

func restarts(n *NodeHealth) int32 {
	if n.Ztunnel == nil {
		return 0
	}
	return n.Ztunnel.Restarts
}

func failures(n *NodeHealth) float64 {
	if n.Rates == nil {
		return 0
	}
	return n.Rates.FailedPerSec
}

// NewSnapshot totals the nodes and sorts them sickest first.
func NewSnapshot(cluster, istio string, at time.Time, nodes []NodeHealth) Snapshot {
	s := Snapshot{Cluster: cluster, IstioVersion: istio, Time: at, Nodes: nodes}
	SortNodes(s.Nodes, SortState)
	s.Totals.Nodes = len(nodes)
	for i := range nodes {
		switch nodes[i].State {
		case StateHealthy:
			s.Totals.Healthy++
		case StateWarning:
			s.Totals.Warning++
		case StateUnhealthy:
			s.Totals.Unhealthy++
		default:
			s.Totals.Unknown++
		}
		if nodes[i].Ztunnel != nil {
			s.Totals.Ztunnels++
		}
		s.Totals.Captured += nodes[i].Pods.Captured
	}
	return s
}
