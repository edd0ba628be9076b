package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	jsoniter "github.com/json-iterator/go"

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
	client  api.Client
	http    *http.Client
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
	if rt == nil {
		rt = api.DefaultRoundTripper
	}
	c, err := api.NewClient(api.Config{Address: address, RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("prometheus address %q: %w", address, err)
	}
	if name == "" {
		name = address
	}
	return &Prometheus{client: c, http: &http.Client{Transport: rt}, api: promv1.NewAPI(c), address: address, Name: name, Namespace: namespace, PodLabel: "pod", NamespaceLabel: "namespace", Window: time.Minute}, nil
}

func (p *Prometheus) String() string { return "prometheus " + p.Name }

// Address is the URL the API client sends its queries under.
func (p *Prometheus) Address() string { return p.address }

// The series the query returns, told apart by their metric name (the plain
// gauges and counters, one aggregation for all of them) or by the label
// kambKey (the rate() and increase() parts, which lose the metric name).
const kambKey = "kamb_metric"

// Query is the one PromQL expression of a refresh. Its cost on the server
// is measured (docs/benchmarks.md): the plain gauges and counters share one
// selector grouped by metric name; rates that are zero on a healthy node
// (failures, xDS disconnects, pending proxies) come back only when they are
// not, so a healthy fleet returns fewer series; and the parts are joined by
// a balanced tree of `or`, because a chain makes each `or` hash everything
// before it (the 15-part chain cost 0.6 s of evaluation at 5,000 ztunnels).
func (p *Prometheus) Query() string {
	sel := fmt.Sprintf(`%s=%q`, p.NamespaceLabel, p.Namespace)
	by := fmt.Sprintf("sum by (%s, %s)", p.NamespaceLabel, p.PodLabel)
	w := model.Duration(p.Window).String()
	part := func(key, expr string) string {
		return fmt.Sprintf(`label_replace(%s, %q, %q, "", "")`, expr, kambKey, key)
	}
	rate := func(fn, metric string) string {
		return fmt.Sprintf("%s(%s(%s{%s}[%s]))", by, fn, metric, sel, w)
	}
	parts := []string{
		fmt.Sprintf(`sum by (%s, %s, __name__) ({__name__=~%q, %s})`, p.NamespaceLabel, p.PodLabel, strings.Join(ztunnel.SummedMetrics, "|"), sel),
		part("opened_rate", rate("rate", ztunnel.MetricConnOpened)),
		part("closed_rate", rate("rate", ztunnel.MetricConnClosed)),
		part("bytes_rate", rate("rate", ztunnel.MetricBytesSent)+" + "+rate("rate", ztunnel.MetricBytesReceived)),
		part("failed_rate", rate("rate", ztunnel.MetricConnFailed)+" > 0"),
		part("pending_min", rate("min_over_time", ztunnel.MetricPendingProxies)+" > 0"),
		part("xds_increase", rate("increase", ztunnel.MetricXDSTerminations)+" > 0"),
		fmt.Sprintf(`max by (%s, %s, tag) (%s{%s, component="ztunnel"})`, p.NamespaceLabel, p.PodLabel, ztunnel.MetricBuild, sel),
	}
	return orTree(parts)
}

// orTree joins PromQL expressions with `or` as a balanced tree.
func orTree(parts []string) string {
	if len(parts) == 1 {
		return parts[0]
	}
	m := len(parts) / 2
	return "(" + orTree(parts[:m]) + ") or (" + orTree(parts[m:]) + ")"
}

// Fetch implements MetricsSource with one query. The answer (several
// megabytes at 5,000 ztunnels) is decoded as a stream into the pods'
// metrics, never into a generic vector with a label map per sample.
func (p *Prometheus) Fetch(ctx context.Context, at time.Time) (map[string]PodMetrics, error) {
	p.Queries++
	u := p.client.URL("/api/v1/query", nil)
	form := url.Values{"query": {p.Query()}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1e3, 'f', -1, 64)}}
	// GET, not POST: through the API server's service proxy a POST needs
	// create on services/proxy where a GET needs only get (the query is
	// about 2 KB, well within any URL limit on the way).
	u.RawQuery = form.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", p, err)
	}
	// The API client's Do would read the whole answer into memory first
	// (12 MB of buffer at 5,000 ztunnels, the largest item of status's heap):
	// the request goes through the same transport and the answer is decoded
	// as it arrives.
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", p, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var body bytes.Buffer
	src := io.Reader(resp.Body)
	if resp.StatusCode/100 != 2 {
		// Kept for the message when the answer is not Prometheus's.
		src = io.TeeReader(io.LimitReader(resp.Body, 1<<20), &body)
	}
	out, err := p.decode(src, at)
	if resp.StatusCode/100 != 2 {
		var ae *AnswerError
		if errors.As(err, &ae) {
			return nil, fmt.Errorf("query %s: HTTP %d: %w", p, resp.StatusCode, err)
		}
		return nil, fmt.Errorf("query %s: HTTP %d: %s", p, resp.StatusCode, snippet(body.Bytes()))
	}
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", p, err)
	}
	return out, nil
}

// AnswerError is an answer that reports a failure: Prometheus's own
// ("status": "error" with its errorType), or a Kubernetes Status from the API
// server's service proxy (its reason, Forbidden when services/proxy is not
// granted).
type AnswerError struct {
	Type, Message string
}

func (e *AnswerError) Error() string {
	if e.Type == "" {
		return e.Message
	}
	return e.Type + ": " + e.Message
}

// snippet is the start of a body that is not a Prometheus answer, for an
// error message.
func snippet(body []byte) string {
	s := strings.Join(strings.Fields(string(body[:min(len(body), 200)])), " ")
	if s == "" {
		return "empty body"
	}
	return strconv.Quote(s)
}

// decode reads a Prometheus instant-query answer. An answer with status
// "error" is returned as an error with Prometheus's own type and message.
func (p *Prometheus) decode(body io.Reader, at time.Time) (map[string]PodMetrics, error) {
	it := jsoniter.Parse(jsoniter.ConfigFastest, body, 64<<10)
	d := promDecoder{p: p, at: at, byPod: map[string]*PodMetrics{}}
	var status, errType, errMsg, reason, message, resultType string
	it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		switch field {
		case "status":
			status = it.ReadString()
		case "errorType":
			errType = it.ReadString()
		case "error":
			errMsg = it.ReadString()
		case "reason": // a Kubernetes Status
			reason = it.ReadString()
		case "message":
			message = it.ReadString()
		case "data":
			it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
				switch field {
				case "resultType":
					resultType = it.ReadString()
				case "result":
					if resultType != "" && resultType != "vector" {
						it.Skip()
						return true
					}
					it.ReadArrayCB(d.sample)
				default:
					it.Skip()
				}
				return true
			})
		default:
			it.Skip()
		}
		return it.Error == nil
	})
	switch {
	case status == "error":
		return nil, &AnswerError{Type: errType, Message: errMsg}
	case status == "Failure" && message != "":
		return nil, &AnswerError{Type: reason, Message: message}
	case it.Error != nil && !errors.Is(it.Error, io.EOF):
		return nil, fmt.Errorf("read the answer: %w", it.Error)
	case d.err != nil:
		return nil, d.err
	case status != "success":
		return nil, fmt.Errorf("read the answer: status %q, want success", status)
	case resultType != "vector":
		return nil, fmt.Errorf("read the answer: got a %q, want a vector", resultType)
	}
	out := make(map[string]PodMetrics, len(d.byPod))
	for pod, pm := range d.byPod {
		out[p.Namespace+"/"+pod] = *pm
	}
	return out, nil
}

// promDecoder collects one answer's samples per pod.
type promDecoder struct {
	p     *Prometheus
	at    time.Time
	byPod map[string]*PodMetrics
	err   error
}

// known are the metric names and part keys the answer repeats on every
// sample; intern returns the string without allocating one per sample.
var known = func() map[string]string {
	m := map[string]string{}
	for _, k := range append(append([]string{}, ztunnel.SummedMetrics...), "opened_rate", "closed_rate", "bytes_rate", "failed_rate", "pending_min", "xds_increase") {
		m[k] = k
	}
	return m
}()

func (d *promDecoder) intern(b []byte) string {
	if s, ok := known[string(b)]; ok {
		return s
	}
	return string(b)
}

// sample reads one {"metric": {...}, "value": [t, "v"]} of the result.
func (d *promDecoder) sample(it *jsoniter.Iterator) bool {
	var name, key, tag string
	var pm *PodMetrics
	var v float64
	it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		switch field {
		case "metric":
			it.ReadObjectCB(func(it *jsoniter.Iterator, label string) bool {
				switch label {
				case d.p.PodLabel:
					// Pod names need no escapes; the bytes are the name
					// (a copy when the name crosses the read buffer's end).
					b := it.ReadStringAsSlice()
					if pm = d.byPod[string(b)]; pm == nil {
						pm = &PodMetrics{Metrics: &ztunnel.Metrics{At: d.at}}
						d.byPod[string(b)] = pm
					}
				case "__name__":
					name = d.intern(it.ReadStringAsSlice())
				case kambKey:
					key = d.intern(it.ReadStringAsSlice())
				case "tag":
					tag = it.ReadString()
				default:
					it.Skip()
				}
				return true
			})
		case "value":
			n := 0
			it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
				if n++; n == 2 {
					s := it.ReadStringAsSlice()
					f, err := strconv.ParseFloat(string(s), 64)
					if err != nil && d.err == nil {
						d.err = fmt.Errorf("read the answer: sample value %q: %w", s, err)
					}
					v = f
					return true
				}
				it.Skip()
				return true
			})
		default:
			it.Skip()
		}
		return true
	})
	if pm != nil {
		d.set(pm, name, key, tag, v)
	}
	return it.Error == nil
}

// set files one sample under its pod.
func (d *promDecoder) set(pm *PodMetrics, name, key, tag string, v float64) {
	m, win := pm.Metrics, d.p.Window
	rates := func() *ztunnel.Rates {
		if pm.Rates == nil {
			pm.Rates = &ztunnel.Rates{Window: win}
		}
		return pm.Rates
	}
	if f := m.Field(name); f != nil {
		*f = v
	} else if name == "" && tag != "" {
		m.Build = tag // the istio_build part: no metric name, a tag
	}
	// The filtered parts (failures, pending, xDS) are absent when zero, so
	// the rates exist as soon as any rate part answered.
	switch key {
	case "opened_rate":
		r := rates()
		r.OpenedPerSec, r.Opened = v, v*win.Seconds()
	case "closed_rate":
		rates().ClosedPerSec = v
	case "failed_rate":
		r := rates()
		r.FailedPerSec, r.Failed = v, v*win.Seconds()
	case "bytes_rate":
		rates().BytesPerSec = v
	case "pending_min":
		pm.PendingFor = win
	case "xds_increase":
		rates().XDSTerminations = v
	}
}
