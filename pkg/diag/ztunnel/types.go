// Package ztunnel is the per-node ztunnel health model of kubectl-ambient:
// the data gathered for every node (node conditions, the ztunnel pod,
// its readiness and metrics, the pods it serves), the rules that turn that
// data into a state with reasons, and parsers for ztunnel's own formats
// (Prometheus text, the admin config_dump, the access log).
//
// The package is pure: it imports no Kubernetes client, so the TUI and the
// check command can both consume its types. The watchers that fill it from a
// cluster live in the sub-package watch.
package ztunnel

import (
	"time"
)

// State is the health of one node's ztunnel, ordered from best to worst.
type State int

// The states, best first. Sorting "sickest first" sorts by descending State.
const (
	StateHealthy State = iota
	StateUnknown
	StateWarning
	StateUnhealthy
)

// String returns the lower-case name used in tables, JSON and YAML.
func (s State) String() string {
	switch s {
	case StateHealthy:
		return "healthy"
	case StateWarning:
		return "warning"
	case StateUnhealthy:
		return "unhealthy"
	default:
		return "unknown"
	}
}

// Symbol returns a one-cell mark for the state, so state never depends on
// colour alone.
func (s State) Symbol() string {
	switch s {
	case StateHealthy:
		return "✓"
	case StateWarning:
		return "!"
	case StateUnhealthy:
		return "✗"
	default:
		return "?"
	}
}

// MarshalText makes State print as its name in JSON and YAML.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a State name.
func (s *State) UnmarshalText(b []byte) error {
	switch string(b) {
	case "healthy":
		*s = StateHealthy
	case "warning":
		*s = StateWarning
	case "unhealthy":
		*s = StateUnhealthy
	default:
		*s = StateUnknown
	}
	return nil
}

// Reason codes: stable identifiers a script (or `check`) can branch on.
const (
	ReasonNoZtunnel        = "NoZtunnel"
	ReasonNodeNotReady     = "NodeNotReady"
	ReasonZtunnelNotReady  = "ZtunnelNotReady"
	ReasonZtunnelNotRun    = "ZtunnelNotRunning"
	ReasonCrashLoop        = "CrashLoopBackOff"
	ReasonRecentRestart    = "RecentRestart"
	ReasonPendingProxies   = "PendingProxies"
	ReasonCertExpiring     = "CertificateExpiring"
	ReasonCertUnavailable  = "CertificateUnavailable"
	ReasonConnFailures     = "ConnectionFailures"
	ReasonXDSDisconnects   = "XDSDisconnects"
	ReasonMetricsUnreached = "MetricsUnavailable"
	ReasonNotScheduled     = "Unschedulable"
)

// Reason explains one finding about a node. The first reason of a node is
// the most severe one.
type Reason struct {
	Code     string `json:"code"`
	Severity State  `json:"severity"`
	Message  string `json:"message"`
}

// NodeCondition is one condition of the node object.
type NodeCondition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// Pod describes the ztunnel pod on a node.
type Pod struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	IP        string `json:"ip,omitempty"`
	Phase     string `json:"phase"`
	// Ready is the pod's Ready condition as Kubernetes reports it.
	Ready    bool  `json:"ready"`
	Restarts int32 `json:"restarts"`
	// LastRestartReason is the reason the previous container ended (OOMKilled, Error, ...).
	LastRestartReason string     `json:"lastRestartReason,omitempty"`
	LastRestartAt     *time.Time `json:"lastRestartAt,omitempty"`
	// Waiting is the reason the container is waiting (CrashLoopBackOff, ...), if it is.
	Waiting string    `json:"waiting,omitempty"`
	Created time.Time `json:"created"`
	// Version is the image tag of the ztunnel container.
	Version string `json:"version,omitempty"`
}

// Probe is the result of asking ztunnel's own readiness endpoint (:15021/healthz/ready).
type Probe struct {
	Ready  bool   `json:"ready"`
	Status int    `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Metrics is one scrape of ztunnel's :15020/metrics, summed over labels.
type Metrics struct {
	At              time.Time `json:"at"`
	ActiveProxies   float64   `json:"activeProxies"`
	PendingProxies  float64   `json:"pendingProxies"`
	ConnOpened      float64   `json:"connectionsOpened"`
	ConnClosed      float64   `json:"connectionsClosed"`
	ConnFailed      float64   `json:"connectionsFailed"`
	BytesSent       float64   `json:"bytesSent"`
	BytesReceived   float64   `json:"bytesReceived"`
	XDSTerminations float64   `json:"xdsTerminations"`
	// Build is the tag label of istio_build, the ztunnel version it reports.
	Build string `json:"build,omitempty"`
}

// Rates are per-second changes between two successive scrapes.
type Rates struct {
	Window          time.Duration `json:"window"`
	OpenedPerSec    float64       `json:"connectionsOpenedPerSec"`
	ClosedPerSec    float64       `json:"connectionsClosedPerSec"`
	FailedPerSec    float64       `json:"connectionsFailedPerSec"`
	BytesPerSec     float64       `json:"bytesPerSec"`
	XDSTerminations float64       `json:"xdsTerminations"`
	// Opened and Failed are the raw deltas in the window, for ratios.
	Opened float64 `json:"-"`
	Failed float64 `json:"-"`
}

// PodCounts counts the application pods scheduled on a node.
type PodCounts struct {
	// Enrolled pods are in an ambient namespace and not opted out.
	Enrolled int `json:"enrolled"`
	// Captured pods carry ambient.istio.io/redirection=enabled.
	Captured int `json:"captured"`
	// Pending pods carry ambient.istio.io/redirection=pending.
	Pending int `json:"pending"`
	// Sidecar pods still run an injected sidecar.
	Sidecar int `json:"sidecar"`
}

// Certificate is one workload certificate held by ztunnel.
type Certificate struct {
	Identity   string     `json:"identity"`
	State      string     `json:"state"`
	Serial     string     `json:"serialNumber,omitempty"`
	ValidFrom  *time.Time `json:"validFrom,omitempty"`
	Expiration *time.Time `json:"expiration,omitempty"`
}

// Workload is one workload ztunnel knows about.
type Workload struct {
	Name           string   `json:"name"`
	Namespace      string   `json:"namespace"`
	ServiceAccount string   `json:"serviceAccount,omitempty"`
	Node           string   `json:"node,omitempty"`
	Addresses      []string `json:"addresses,omitempty"`
	Protocol       string   `json:"protocol,omitempty"`
	Status         string   `json:"status,omitempty"`
	// ProxyState is ztunnel's in-pod proxy for the pod (workloadState):
	// Up, or Pending while ztunnel has not started it; empty for pods on
	// other nodes.
	ProxyState string `json:"proxyState,omitempty"`
}

// ConfigDump is the part of ztunnel's admin /config_dump the tool uses.
type ConfigDump struct {
	Workloads    []Workload    `json:"workloads"`
	Certificates []Certificate `json:"certificates"`
	// Services counts the services in the dump.
	Services int `json:"services"`
}

// NodeHealth is everything known about one node's ztunnel, and the verdict.
type NodeHealth struct {
	Node        string          `json:"node"`
	State       State           `json:"state"`
	Reasons     []Reason        `json:"reasons,omitempty"`
	NodeReady   bool            `json:"nodeReady"`
	Schedulable bool            `json:"schedulable"`
	Conditions  []NodeCondition `json:"conditions,omitempty"`
	Ztunnel     *Pod            `json:"ztunnel,omitempty"`
	Probe       *Probe          `json:"probe,omitempty"`
	Metrics     *Metrics        `json:"metrics,omitempty"`
	Rates       *Rates          `json:"rates,omitempty"`
	ScrapeError string          `json:"scrapeError,omitempty"`
	Pods        PodCounts       `json:"pods"`
	// Certificates are filled when the config_dump was read for this node.
	Certificates []Certificate `json:"certificates,omitempty"`
	CertError    string        `json:"certificateError,omitempty"`
}

// Summary is the first reason's message, or "ok".
func (n *NodeHealth) Summary() string {
	if len(n.Reasons) == 0 {
		return "ok"
	}
	return n.Reasons[0].Message
}

// Totals summarises a snapshot.
type Totals struct {
	Nodes     int `json:"nodes"`
	Healthy   int `json:"healthy"`
	Warning   int `json:"warning"`
	Unhealthy int `json:"unhealthy"`
	Unknown   int `json:"unknown"`
	Ztunnels  int `json:"ztunnels"`
	Captured  int `json:"capturedPods"`
}

// Snapshot is the whole cluster at one moment.
type Snapshot struct {
	Cluster      string       `json:"cluster"`
	IstioVersion string       `json:"istioVersion,omitempty"`
	Time         time.Time    `json:"time"`
	Totals       Totals       `json:"totals"`
	Nodes        []NodeHealth `json:"nodes"`
}

// Unhealthy reports whether any node is unhealthy (the snapshot's exit code).
func (s *Snapshot) Unhealthy() bool { return s.Totals.Unhealthy > 0 }

// NodeDetail is the on-demand view of one node: its config_dump and log.
type NodeDetail struct {
	Node         string        `json:"node"`
	Pod          string        `json:"pod"`
	Workloads    []Workload    `json:"workloads"`
	Certificates []Certificate `json:"certificates"`
	AccessLog    []AccessLog   `json:"accessLog"`
	// Errors says which part could not be read and why.
	Errors []string `json:"errors,omitempty"`
}

// Update is one message from a watcher: a snapshot, or the connection state.
type Update struct {
	// Snapshot is nil while connecting or when the cluster is unreachable.
	Snapshot *Snapshot
	// Connecting is true until the first full LIST of every informer.
	Connecting bool
	// Err is set while the cluster cannot be reached (watches failing); the
	// watcher keeps retrying and clears it when the cluster answers again.
	Err error
}
