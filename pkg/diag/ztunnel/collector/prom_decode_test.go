package collector

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/promlab"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

// TestPrometheusAnswerAgreesWithPlainQueries loads a real Prometheus with
// ztunnel series shaped as a real ztunnel exports them (several label sets
// per counter, per pod) and checks every field Fetch decodes from its one
// combined query against a plain query per field, decoded by client_golang:
// the balanced `or` tree, the metric-name grouping, the parts filtered to
// non-zero values and the streaming decoder must together say what the
// plain queries say.
func TestPrometheusAnswerAgreesWithPlainQueries(t *testing.T) {
	const ns = "istio-system"
	end := time.Now().Truncate(time.Second)
	var b strings.Builder
	type pod struct {
		name                  string
		failPerSec, xdsPerMin float64
		pending               float64
		active                float64
		tag                   string
		destinations          int
	}
	pods := []pod{
		{name: "ztunnel-a", active: 4, tag: "1.31.2", destinations: 3},
		{name: "ztunnel-failing", active: 2, failPerSec: 1.5, tag: "1.31.2", destinations: 2},
		{name: "ztunnel-pending", active: 1, pending: 3, tag: "1.31.2", destinations: 1},
		{name: "ztunnel-xds", active: 5, xdsPerMin: 2, tag: "1.31.2", destinations: 2},
		{name: "ztunnel-nobuild", active: 0, destinations: 1},
		{name: "ztunnel-odd", active: math.NaN(), tag: `1.32.0-"dev"\build`, destinations: 1},
	}
	series := func(name, labels string, v func(s int) float64) {
		for s := 8; s >= 0; s-- {
			fmt.Fprintf(&b, "%s{%s} %s %d\n", name, labels, model.SampleValue(v(s)).String(), end.Add(-time.Duration(s)*15*time.Second).Unix())
		}
	}
	counter := func(perSec float64) func(int) float64 {
		return func(s int) float64 { return perSec * float64(120-15*s) }
	}
	gauge := func(v float64) func(int) float64 { return func(int) float64 { return v } }
	fams := []struct {
		name, typ string
		per       func(p pod, dest int) func(int) float64
	}{
		{ztunnel.MetricConnOpened, "counter", func(p pod, d int) func(int) float64 { return counter(float64(10 + d)) }},
		{ztunnel.MetricConnClosed, "counter", func(p pod, d int) func(int) float64 { return counter(float64(9 + d)) }},
		{ztunnel.MetricConnFailed, "counter", func(p pod, d int) func(int) float64 { return counter(p.failPerSec) }},
		{ztunnel.MetricBytesSent, "counter", func(p pod, d int) func(int) float64 { return counter(1500 * float64(d+1)) }},
		{ztunnel.MetricBytesReceived, "counter", func(p pod, d int) func(int) float64 { return counter(400) }},
		{ztunnel.MetricXDSTerminations, "counter", func(p pod, d int) func(int) float64 { return counter(p.xdsPerMin / 60) }},
		{ztunnel.MetricActiveProxies, "gauge", func(p pod, d int) func(int) float64 { return gauge(p.active) }},
		{ztunnel.MetricPendingProxies, "gauge", func(p pod, d int) func(int) float64 { return gauge(p.pending) }},
	}
	for _, f := range fams {
		base := strings.TrimSuffix(f.name, "_total")
		fmt.Fprintf(&b, "# TYPE %s %s\n", base, f.typ)
		for _, p := range pods {
			n := 1
			if strings.HasPrefix(f.name, "istio_tcp_") {
				n = p.destinations
			}
			for d := 0; d < n; d++ {
				labels := fmt.Sprintf(`namespace=%q,pod=%q`, ns, p.name)
				if n > 1 || strings.HasPrefix(f.name, "istio_tcp_") {
					labels += fmt.Sprintf(`,destination_workload="app-%d",reporter="destination"`, d)
				}
				series(f.name, labels, f.per(p, d))
			}
		}
		// Another namespace's pod of the same name must not be read.
		series(f.name, `namespace="other",pod="ztunnel-a"`, gauge(1e6))
	}
	b.WriteString("# TYPE istio_build gauge\n")
	for _, p := range pods {
		if p.tag != "" {
			series(ztunnel.MetricBuild, fmt.Sprintf(`component="ztunnel",namespace=%q,pod=%q,tag=%q`, ns, p.name, p.tag), gauge(1))
		}
	}
	b.WriteString("# EOF\n")
	om := filepath.Join(t.TempDir(), "series.om")
	if err := os.WriteFile(om, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	prom := promlab.StartWithBlocks(t, om)
	src, err := NewPrometheus(prom.URL, "", nil, ns)
	if err != nil {
		t.Fatal(err)
	}
	src.Window = 2 * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := src.Fetch(ctx, end)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(pods) {
		t.Errorf("Fetch read %d pods, want %d: %v", len(got), len(pods), got)
	}

	// The oracle: one plain query per field, decoded by client_golang.
	plain := func(expr string) map[string]float64 {
		t.Helper()
		v, _, _, err := src.api.Query(ctx, expr, end)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		out := map[string]float64{}
		for _, s := range v.(model.Vector) {
			out[string(s.Metric["pod"])] = float64(s.Value)
		}
		return out
	}
	sel := fmt.Sprintf(`{namespace=%q}`, ns)
	sum := func(m string) map[string]float64 { return plain("sum by (pod) (" + m + sel + ")") }
	rate := func(fn, m string) map[string]float64 { return plain("sum by (pod) (" + fn + "(" + m + sel + "[2m]))") }
	same := func(a, b float64) bool {
		return (math.IsNaN(a) && math.IsNaN(b)) || math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b))
	}
	check := func(field string, want map[string]float64, read func(PodMetrics) float64) {
		t.Helper()
		for _, p := range pods {
			pm, ok := got[ns+"/"+p.name]
			if !ok {
				continue
			}
			if g := read(pm); !same(g, want[p.name]) {
				t.Errorf("%s %s: Fetch read %v, the plain query says %v", p.name, field, g, want[p.name])
			}
		}
	}
	m := func(f func(*ztunnel.Metrics) float64) func(PodMetrics) float64 {
		return func(pm PodMetrics) float64 { return f(pm.Metrics) }
	}
	r := func(f func(*ztunnel.Rates) float64) func(PodMetrics) float64 {
		return func(pm PodMetrics) float64 {
			if pm.Rates == nil {
				return math.Inf(-1)
			}
			return f(pm.Rates)
		}
	}
	check("active proxies", sum(ztunnel.MetricActiveProxies), m(func(m *ztunnel.Metrics) float64 { return m.ActiveProxies }))
	check("pending proxies", sum(ztunnel.MetricPendingProxies), m(func(m *ztunnel.Metrics) float64 { return m.PendingProxies }))
	check("opened", sum(ztunnel.MetricConnOpened), m(func(m *ztunnel.Metrics) float64 { return m.ConnOpened }))
	check("closed", sum(ztunnel.MetricConnClosed), m(func(m *ztunnel.Metrics) float64 { return m.ConnClosed }))
	check("failed", sum(ztunnel.MetricConnFailed), m(func(m *ztunnel.Metrics) float64 { return m.ConnFailed }))
	check("sent", sum(ztunnel.MetricBytesSent), m(func(m *ztunnel.Metrics) float64 { return m.BytesSent }))
	check("received", sum(ztunnel.MetricBytesReceived), m(func(m *ztunnel.Metrics) float64 { return m.BytesReceived }))
	check("xds", sum(ztunnel.MetricXDSTerminations), m(func(m *ztunnel.Metrics) float64 { return m.XDSTerminations }))
	check("opened/s", rate("rate", ztunnel.MetricConnOpened), r(func(r *ztunnel.Rates) float64 { return r.OpenedPerSec }))
	check("closed/s", rate("rate", ztunnel.MetricConnClosed), r(func(r *ztunnel.Rates) float64 { return r.ClosedPerSec }))
	check("failed/s", rate("rate", ztunnel.MetricConnFailed), r(func(r *ztunnel.Rates) float64 { return r.FailedPerSec }))
	sent, recv := rate("rate", ztunnel.MetricBytesSent), rate("rate", ztunnel.MetricBytesReceived)
	bytes := map[string]float64{}
	for k := range sent {
		bytes[k] = sent[k] + recv[k]
	}
	check("bytes/s", bytes, r(func(r *ztunnel.Rates) float64 { return r.BytesPerSec }))
	check("xds increase", rate("increase", ztunnel.MetricXDSTerminations), r(func(r *ztunnel.Rates) float64 { return r.XDSTerminations }))
	minPending := rate("min_over_time", ztunnel.MetricPendingProxies)
	for _, p := range pods {
		want := time.Duration(0)
		if minPending[p.name] > 0 {
			want = src.Window
		}
		if pm := got[ns+"/"+p.name]; pm.PendingFor != want {
			t.Errorf("%s: pending for %s, want %s (min_over_time %v)", p.name, pm.PendingFor, want, minPending[p.name])
		}
		wantTag := p.tag
		if pm := got[ns+"/"+p.name]; pm.Metrics == nil || pm.Metrics.Build != wantTag {
			t.Errorf("%s: build %+v, want %q", p.name, pm.Metrics, wantTag)
		}
	}
	// The fixture is only a test when the filtered parts were non-zero
	// somewhere and zero elsewhere.
	if got[ns+"/ztunnel-failing"].Rates.FailedPerSec == 0 || got[ns+"/ztunnel-xds"].Rates.XDSTerminations == 0 || got[ns+"/ztunnel-a"].Rates.FailedPerSec != 0 {
		t.Errorf("fixture did not exercise the filtered parts: %+v %+v", got[ns+"/ztunnel-failing"].Rates, got[ns+"/ztunnel-xds"].Rates)
	}

	// Prometheus's own error comes back with its type and the HTTP status.
	bad := *src
	bad.PodLabel = "not a label"
	if _, err := bad.Fetch(ctx, end); err == nil || !strings.Contains(err.Error(), "bad_data") || !strings.Contains(err.Error(), "HTTP 400") {
		t.Errorf("bad query: %v, want prometheus's bad_data and HTTP 400", err)
	}
}

// TestPrometheusAnswerErrors covers answers that are not a Prometheus
// vector: the API server's service proxy refusing (a Kubernetes Status),
// a proxy's HTML error page, and a body that is not JSON at all.
func TestPrometheusAnswerErrors(t *testing.T) {
	cases := []struct {
		name   string
		code   int
		body   string
		expect []string
	}{
		{"service proxy forbidden", http.StatusForbidden,
			`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"services \"prometheus:web\" is forbidden: User \"dev\" cannot get resource \"services/proxy\" in API group \"\" in the namespace \"istio-system\"","reason":"Forbidden","details":{"name":"prometheus:web","kind":"services"},"code":403}`,
			[]string{"HTTP 403", "Forbidden", `cannot get resource "services/proxy"`}},
		{"bad gateway page", http.StatusBadGateway, "<html><body>502 Bad Gateway</body></html>", []string{"HTTP 502", "502 Bad Gateway"}},
		{"not json", http.StatusOK, "hello", []string{"read the answer"}},
		{"a matrix", http.StatusOK, `{"status":"success","data":{"resultType":"matrix","result":[]}}`, []string{`got a "matrix", want a vector`}},
		{"bad value", http.StatusOK, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"z"},"value":[1,"x1"]}]}}`, []string{`sample value "x1"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/v1/query" || r.FormValue("query") == "" || r.FormValue("time") == "" {
					http.Error(w, "unexpected request "+r.URL.String(), http.StatusTeapot)
					return
				}
				w.WriteHeader(c.code)
				_, _ = w.Write([]byte(c.body))
			}))
			defer srv.Close()
			src, err := NewPrometheus(srv.URL, "", nil, "istio-system")
			if err != nil {
				t.Fatal(err)
			}
			_, err = src.Fetch(context.Background(), time.Now())
			if err == nil {
				t.Fatal("no error")
			}
			for _, e := range c.expect {
				if !strings.Contains(err.Error(), e) {
					t.Errorf("error %q lacks %q", err, e)
				}
			}
		})
	}
}

// promAnswer writes an instant-query answer shaped as Prometheus writes the
// answer to Query() for pods healthy ztunnels (the shape
// TestPrometheusAnswerAgreesWithPlainQueries reads from a real server).
func promAnswer(pods int) []byte {
	var b strings.Builder
	b.WriteString(`{"status":"success","data":{"resultType":"vector","result":[`)
	first := true
	sample := func(labels string, v string) {
		if !first {
			b.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&b, `{"metric":{%s},"value":[1796612400.036,"%s"]}`, labels, v)
	}
	for _, m := range ztunnel.SummedMetrics {
		for i := 0; i < pods; i++ {
			sample(fmt.Sprintf(`"__name__":%q,"namespace":"istio-system","pod":"ztunnel-node-%d"`, m, i), "1080")
		}
	}
	for _, k := range []string{"opened_rate", "closed_rate", "bytes_rate"} {
		for i := 0; i < pods; i++ {
			sample(fmt.Sprintf(`"kamb_metric":%q,"namespace":"istio-system","pod":"ztunnel-node-%d"`, k, i), "9.5")
		}
	}
	for i := 0; i < pods; i++ {
		sample(fmt.Sprintf(`"namespace":"istio-system","pod":"ztunnel-node-%d","tag":"1.31.2"`, i), "1")
	}
	b.WriteString(`]}}`)
	return []byte(b.String())
}

// BenchmarkPrometheusDecode decodes the answer for 5,000 ztunnels: ours,
// and client_golang's model.Vector (what its API's Query returns) for
// comparison.
//
//	go test -run '^$' -bench BenchmarkPrometheusDecode -benchmem ./pkg/diag/ztunnel/collector
func BenchmarkPrometheusDecode(b *testing.B) {
	body := promAnswer(5000)
	p := &Prometheus{Namespace: "istio-system", PodLabel: "pod", NamespaceLabel: "namespace", Window: time.Minute}
	b.Run("stream", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			out, err := p.decode(bytes.NewReader(body), time.Now())
			if err != nil || len(out) != 5000 {
				b.Fatalf("%d pods, %v", len(out), err)
			}
		}
	})
	b.Run("model.Vector", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var a struct {
				Data struct {
					Result model.Vector `json:"result"`
				} `json:"data"`
			}
			if err := jsoniter.ConfigCompatibleWithStandardLibrary.Unmarshal(body, &a); err != nil || len(a.Data.Result) != 60000 {
				b.Fatalf("%d samples, %v", len(a.Data.Result), err)
			}
		}
	})
}

// TestCollectTellsTheFleetSize: status sizes its memory limit by the node
// count Collect reports once the nodes are listed, before the pods.
func TestCollectTellsTheFleetSize(t *testing.T) {
	var objs []runtime.Object
	for i := 0; i < 3; i++ {
		objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("n%d", i)}})
	}
	client := fake.NewClientset(objs...)
	told := -1
	_, err := Collect(context.Background(), client, Config{CertInterval: -1, FleetSize: func(n int) { told = n }}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if told != 3 {
		t.Errorf("FleetSize told %d nodes, want 3", told)
	}
}
