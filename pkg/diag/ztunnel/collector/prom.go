package collector

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

// MetricsSource reads the metrics of every ztunnel at once, keyed by pod
// "namespace/name"; the watcher joins pods to nodes through its pod list.
type MetricsSource interface {
	Fetch(ctx context.Context, at time.Time) (map[string]PodMetrics, error)
	// String names the source for the header and messages.
	String() string
}

// PodMetrics is one ztunnel's metrics and rates from a MetricsSource.
type PodMetrics struct {
	Metrics *ztunnel.Metrics
	Rates   *ztunnel.Rates
	// PendingFor is how long pending proxies have stayed above zero without
	// a break, as far as the source can tell (the whole window or nothing).
	PendingFor time.Duration
}

// Prometheus is a MetricsSource backed by a Prometheus server: one instant
// query per refresh returns every ztunnel's gauges, counters and rates.
type Prometheus struct {
	api     promv1.API
	address string
	// Name says which server this is (its URL, or the Service found).
	Name string
	// Namespace is ztunnel's namespace; PodLabel and NamespaceLabel are the
	// target labels the scrape configuration gives each series (Istio's
	// Prometheus add-on and the kube-prometheus pod monitors use pod and
	// namespace).
	Namespace, PodLabel, NamespaceLabel string
	// Window is the range of rate() and increase().
	Window time.Duration
	// Queries counts the queries sent.
	Queries int64
}

// NewPrometheus builds a source for the server at address, whose requests go
// through rt (nil: a plain HTTP transport; the API server's service proxy
// needs the cluster's authenticated transport).
func NewPrometheus(address, name string, rt http.RoundTripper, namespace string) (*Prometheus, error) {
	c, err := api.NewClient(api.Config{Address: address, RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("prometheus address %q: %w", address, err)
	}
	if name == "" {
		name = address
	}
	return &Prometheus{api: promv1.NewAPI(c), address: address, Name: name, Namespace: namespace, PodLabel: "pod", NamespaceLabel: "namespace", Window: time.Minute}, nil
}

func (p *Prometheus) String() string { return "prometheus " + p.Name }

// Address is the URL the API client sends its queries under.
func (p *Prometheus) Address() string { return p.address }

// The series the query returns, told apart by the label kambKey.
const kambKey = "kamb_metric"

// Query is the one PromQL expression of a refresh.
func (p *Prometheus) Query() string {
	sel := fmt.Sprintf(`{%s=%q}`, p.NamespaceLabel, p.Namespace)
	by := fmt.Sprintf("sum by (%s, %s)", p.NamespaceLabel, p.PodLabel)
	w := model.Duration(p.Window).String()
	part := func(key, expr string) string {
		return fmt.Sprintf(`label_replace(%s, %q, %q, "", "")`, expr, kambKey, key)
	}
	parts := []string{
		part("active", by+"(workload_manager_active_proxy_count"+sel+")"),
		part("pending", by+"(workload_manager_pending_proxy_count"+sel+")"),
		part("opened", by+"(istio_tcp_connections_opened_total"+sel+")"),
		part("closed", by+"(istio_tcp_connections_closed_total"+sel+")"),
		part("failed", by+"(istio_tcp_connections_failed_total"+sel+")"),
		part("sent", by+"(istio_tcp_sent_bytes_total"+sel+")"),
		part("received", by+"(istio_tcp_received_bytes_total"+sel+")"),
		part("xds", by+"(istio_xds_connection_terminations_total"+sel+")"),
		part("opened_rate", by+"(rate(istio_tcp_connections_opened_total"+sel+"["+w+"]))"),
		part("closed_rate", by+"(rate(istio_tcp_connections_closed_total"+sel+"["+w+"]))"),
		part("failed_rate", by+"(rate(istio_tcp_connections_failed_total"+sel+"["+w+"]))"),
		part("bytes_rate", by+"(rate(istio_tcp_sent_bytes_total"+sel+"["+w+"])) + "+by+"(rate(istio_tcp_received_bytes_total"+sel+"["+w+"]))"),
		part("pending_min", by+"(min_over_time(workload_manager_pending_proxy_count"+sel+"["+w+"]))"),
		part("xds_increase", by+"(increase(istio_xds_connection_terminations_total"+sel+"["+w+"]))"),
		part("build", fmt.Sprintf(`max by (%s, %s, tag) (istio_build{%s=%q,component="ztunnel"})`, p.NamespaceLabel, p.PodLabel, p.NamespaceLabel, p.Namespace)),
	}
	return strings.Join(parts, " or ")
}

// Fetch implements MetricsSource with one query.
func (p *Prometheus) Fetch(ctx context.Context, at time.Time) (map[string]PodMetrics, error) {
	p.Queries++
	v, _, _, err := p.api.Query(ctx, p.Query(), at)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", p, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query %s: got a %s, want a vector", p, v.Type())
	}
	return p.decode(vec, at), nil
}

func (p *Prometheus) decode(vec model.Vector, at time.Time) map[string]PodMetrics {
	out := map[string]PodMetrics{}
	get := func(key string) PodMetrics {
		pm, ok := out[key]
		if !ok {
			pm = PodMetrics{Metrics: &ztunnel.Metrics{At: at}}
		}
		return pm
	}
	for _, s := range vec {
		ns, pod := string(s.Metric[model.LabelName(p.NamespaceLabel)]), string(s.Metric[model.LabelName(p.PodLabel)])
		if ns == "" || pod == "" {
			continue
		}
		key := ns + "/" + pod
		pm := get(key)
		m, v := pm.Metrics, float64(s.Value)
		rates := func() *ztunnel.Rates {
			if pm.Rates == nil {
				pm.Rates = &ztunnel.Rates{Window: p.Window}
			}
			return pm.Rates
		}
		switch string(s.Metric[kambKey]) {
		case "active":
			m.ActiveProxies = v
		case "pending":
			m.PendingProxies = v
		case "opened":
			m.ConnOpened = v
		case "closed":
			m.ConnClosed = v
		case "failed":
			m.ConnFailed = v
		case "sent":
			m.BytesSent = v
		case "received":
			m.BytesReceived = v
		case "xds":
			m.XDSTerminations = v
		case "build":
			m.Build = string(s.Metric["tag"])
		case "opened_rate":
			r := rates()
			r.OpenedPerSec, r.Opened = v, v*p.Window.Seconds()
		case "closed_rate":
			rates().ClosedPerSec = v
		case "failed_rate":
			r := rates()
			r.FailedPerSec, r.Failed = v, v*p.Window.Seconds()
		case "bytes_rate":
			rates().BytesPerSec = v
		case "pending_min":
			if v > 0 {
				pm.PendingFor = p.Window
			}
		case "xds_increase":
			rates().XDSTerminations = v
		}
		out[key] = pm
	}
	return out
}
