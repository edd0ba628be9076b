package ztunnel

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Metric names ztunnel exports on :15020/metrics.
const (
	MetricConnOpened      = "istio_tcp_connections_opened_total"
	MetricConnClosed      = "istio_tcp_connections_closed_total"
	MetricConnFailed      = "istio_tcp_connections_failed_total"
	MetricBytesSent       = "istio_tcp_sent_bytes_total"
	MetricBytesReceived   = "istio_tcp_received_bytes_total"
	MetricXDSTerminations = "istio_xds_connection_terminations_total"
	MetricBuild           = "istio_build"
	MetricActiveProxies   = "workload_manager_active_proxy_count"
	MetricPendingProxies  = "workload_manager_pending_proxy_count"
)

// SummedMetrics are the gauges and counters a Metrics holds, each summed
// over all its label sets (istio_build is read for its tag instead).
var SummedMetrics = []string{
	MetricActiveProxies, MetricPendingProxies, MetricConnOpened, MetricConnClosed,
	MetricConnFailed, MetricBytesSent, MetricBytesReceived, MetricXDSTerminations,
}

// Field returns where m keeps the metric name (one of SummedMetrics), or
// nil for a metric it does not keep.
func (m *Metrics) Field(name string) *float64 {
	switch name {
	case MetricConnOpened:
		return &m.ConnOpened
	case MetricConnClosed:
		return &m.ConnClosed
	case MetricConnFailed:
		return &m.ConnFailed
	case MetricBytesSent:
		return &m.BytesSent
	case MetricBytesReceived:
		return &m.BytesReceived
	case MetricXDSTerminations:
		return &m.XDSTerminations
	case MetricActiveProxies:
		return &m.ActiveProxies
	case MetricPendingProxies:
		return &m.PendingProxies
	}
	return nil
}

// ParseMetrics reads Prometheus text exposition format and sums the samples
// of the metrics ztunnel health needs over all their label sets. Unknown
// metrics are skipped; a malformed sample line is an error naming the line.
func ParseMetrics(body []byte, at time.Time) (*Metrics, error) {
	m := &Metrics{At: at}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		name, labels, rest, err := splitSample(text)
		if err != nil {
			return nil, fmt.Errorf("parse metrics line %d: %w", line, err)
		}
		if name == MetricBuild {
			if tag := labelValue(labels, "tag"); tag != "" {
				m.Build = tag
			}
			continue
		}
		target := m.Field(name)
		if target == nil {
			continue
		}
		v, err := sampleValue(rest)
		if err != nil {
			return nil, fmt.Errorf("parse metrics line %d (%s): %w", line, name, err)
		}
		if !math.IsNaN(v) {
			*target += v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return m, nil
}

// splitSample splits `name{labels} value [ts]` into its parts.
func splitSample(s string) (name, labels, rest string, err error) {
	i := strings.IndexAny(s, "{ \t")
	if i <= 0 {
		return "", "", "", fmt.Errorf("no value in %q", truncate(s, 80))
	}
	name = s[:i]
	if s[i] == '{' {
		end := labelsEnd(s, i+1)
		if end < 0 {
			return "", "", "", fmt.Errorf("unterminated labels in %q", truncate(s, 80))
		}
		labels = s[i+1 : end]
		rest = s[end+1:]
	} else {
		rest = s[i:]
	}
	return name, labels, strings.TrimSpace(rest), nil
}

// labelsEnd finds the closing brace, skipping quoted values with escapes.
func labelsEnd(s string, from int) int {
	inQuote := false
	for j := from; j < len(s); j++ {
		switch c := s[j]; {
		case c == '\\' && inQuote:
			j++
		case c == '"':
			inQuote = !inQuote
		case c == '}' && !inQuote:
			return j
		}
	}
	return -1
}

// labelValue returns the unescaped value of label key in a label list.
func labelValue(labels, key string) string {
	for len(labels) > 0 {
		labels = strings.TrimLeft(labels, " ,")
		eq := strings.IndexByte(labels, '=')
		if eq < 0 || eq+1 >= len(labels) || labels[eq+1] != '"' {
			return ""
		}
		k := strings.TrimSpace(labels[:eq])
		var b strings.Builder
		j := eq + 2
		for ; j < len(labels) && labels[j] != '"'; j++ {
			if labels[j] == '\\' && j+1 < len(labels) {
				j++
				switch labels[j] {
				case 'n':
					b.WriteByte('\n')
				default:
					b.WriteByte(labels[j])
				}
				continue
			}
			b.WriteByte(labels[j])
		}
		if k == key {
			return b.String()
		}
		if j >= len(labels) {
			return ""
		}
		labels = labels[j+1:]
	}
	return ""
}

func sampleValue(rest string) (float64, error) {
	if i := strings.IndexAny(rest, " \t"); i >= 0 {
		rest = rest[:i] // drop the optional timestamp
	}
	switch rest {
	case "+Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	}
	v, err := strconv.ParseFloat(rest, 64)
	if err != nil {
		return 0, fmt.Errorf("bad sample value %q", rest)
	}
	return v, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ComputeRates returns the per-second change from prev to cur, or nil when
// there is no usable earlier scrape. A counter that went down means ztunnel
// restarted; its new value is then the change since the restart.
func ComputeRates(prev, cur *Metrics) *Rates {
	if prev == nil || cur == nil {
		return nil
	}
	dt := cur.At.Sub(prev.At)
	if dt <= 0 {
		return nil
	}
	delta := func(a, b float64) float64 {
		if b < a {
			return b
		}
		return b - a
	}
	secs := dt.Seconds()
	r := &Rates{Window: dt}
	r.Opened = delta(prev.ConnOpened, cur.ConnOpened)
	r.Failed = delta(prev.ConnFailed, cur.ConnFailed)
	r.OpenedPerSec = r.Opened / secs
	r.ClosedPerSec = delta(prev.ConnClosed, cur.ConnClosed) / secs
	r.FailedPerSec = r.Failed / secs
	r.BytesPerSec = (delta(prev.BytesSent, cur.BytesSent) + delta(prev.BytesReceived, cur.BytesReceived)) / secs
	r.XDSTerminations = delta(prev.XDSTerminations, cur.XDSTerminations)
	return r
}
