package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

// ztunnel's ports as the pod proxy and port-forward take them.
var (
	portAdmin     = strconv.Itoa(ambient.PortAdmin)
	portMetrics   = strconv.Itoa(ambient.PortMetrics)
	portReadiness = strconv.Itoa(ambient.PortReadiness)
)

// proxyGet reads path on a pod port through the API server's pod proxy.
func proxyGet(ctx context.Context, c kubernetes.Interface, ns, pod, port, path string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, err := c.CoreV1().Pods(ns).ProxyGet("http", pod, port, path, nil).DoRaw(ctx)
	if err != nil {
		return nil, proxyError(err, body)
	}
	return body, nil
}

// proxyError recovers the API server's own Status when the proxy itself
// failed (it could not dial the pod, say). client-go does not decode that
// Status for a proxy subresource, least of all in protobuf, so the error
// would only read "the server is currently unable to handle the request";
// the Status says "error trying to reach service: dial tcp ...".
func proxyError(err error, body []byte) error {
	if len(body) == 0 {
		return err
	}
	obj, _, derr := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
	if derr != nil {
		return err
	}
	if st, ok := obj.(*metav1.Status); ok && st.Status == metav1.StatusFailure && st.Message != "" {
		return &apierrors.StatusError{ErrStatus: *st}
	}
	return err
}

// Probe asks ztunnel's readiness endpoint (:15021/healthz/ready).
func Probe(ctx context.Context, c kubernetes.Interface, ns, pod string, timeout time.Duration) ztunnel.Probe {
	_, err := proxyGet(ctx, c, ns, pod, portReadiness, "/healthz/ready", timeout)
	if err == nil {
		return ztunnel.Probe{Ready: true, Status: http.StatusOK}
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Code != 0 {
		code := int(st.Status().Code)
		// The proxy answers 503 itself when it cannot dial the pod; the
		// message says so. A 503 from ztunnel is "not ready yet".
		if msg := st.Status().Message; strings.Contains(msg, "dial") || strings.Contains(msg, "connect:") {
			return ztunnel.Probe{Error: "unreachable: " + shortErr(msg)}
		}
		return ztunnel.Probe{Status: code}
	}
	return ztunnel.Probe{Error: shortErr(err.Error())}
}

// Scrape reads and parses ztunnel's :15020/metrics.
func Scrape(ctx context.Context, c kubernetes.Interface, ns, pod string, timeout time.Duration, now func() time.Time) (*ztunnel.Metrics, error) {
	body, err := proxyGet(ctx, c, ns, pod, portMetrics, "/metrics", timeout)
	if err != nil {
		return nil, errors.New(shortErr(err.Error()))
	}
	return ztunnel.ParseMetrics(body, now())
}

// shortErr keeps an error message to one short line for a table cell.
func shortErr(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s) > 80 {
		s = s[i+2:]
	}
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// AdminFetcher reads ztunnel's admin config_dump, which listens on
// localhost:15000 inside the pod in real clusters.
type AdminFetcher interface {
	ConfigDump(ctx context.Context, ns, pod string) (*ztunnel.ConfigDump, error)
}

// ProxyAdmin reads the admin port through the API server's pod proxy. It
// works where the admin port listens on the pod IP (the lab's stand-ins).
type ProxyAdmin struct {
	Client  kubernetes.Interface
	Timeout time.Duration
}

// ConfigDump implements AdminFetcher.
func (p ProxyAdmin) ConfigDump(ctx context.Context, ns, pod string) (*ztunnel.ConfigDump, error) {
	t := p.Timeout
	if t <= 0 {
		t = 10 * time.Second
	}
	body, err := proxyGet(ctx, p.Client, ns, pod, portAdmin, "/config_dump", t)
	if err != nil {
		return nil, fmt.Errorf("read config_dump of %s/%s through the pod proxy: %s", ns, pod, shortErr(err.Error()))
	}
	return ztunnel.ParseConfigDump(body)
}

// PortForwardAdmin reads the admin port through a port-forward, the way
// `kubectl port-forward` does; it reaches ztunnel's localhost-only admin port.
type PortForwardAdmin struct {
	Config  *rest.Config
	Client  kubernetes.Interface
	Timeout time.Duration
}

// ConfigDump implements AdminFetcher.
func (p PortForwardAdmin) ConfigDump(ctx context.Context, ns, pod string) (*ztunnel.ConfigDump, error) {
	t := p.Timeout
	if t <= 0 {
		t = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	body, err := p.get(ctx, ns, pod, "/config_dump")
	if err != nil {
		return nil, fmt.Errorf("read config_dump of %s/%s through a port-forward to %s: %w", ns, pod, portAdmin, err)
	}
	return ztunnel.ParseConfigDump(body)
}

func (p PortForwardAdmin) get(ctx context.Context, ns, pod, path string) ([]byte, error) {
	rt, upgrader, err := spdy.RoundTripperFor(p.Config)
	if err != nil {
		return nil, err
	}
	req := p.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("portforward")
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, req.URL())
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + portAdmin}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		return nil, err
	}
	errc := make(chan error, 1)
	go func() { errc <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-errc:
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) == 0 {
		if err == nil {
			err = errors.New("no ports")
		}
		return nil, fmt.Errorf("port-forward gave no local port: %w", err)
	}
	url := fmt.Sprintf("http://%s%s", net.JoinHostPort("127.0.0.1", fmt.Sprint(ports[0].Local)), path)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }() // read-only body: nothing to report
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("admin %s returned %s", path, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

// FallbackAdmin tries the pod proxy first and a port-forward second.
type FallbackAdmin []AdminFetcher

// ConfigDump implements AdminFetcher.
func (f FallbackAdmin) ConfigDump(ctx context.Context, ns, pod string) (*ztunnel.ConfigDump, error) {
	var errs []error
	for _, a := range f {
		d, err := a.ConfigDump(ctx, ns, pod)
		if err == nil {
			return d, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// Logs returns the last lines of the ztunnel container's log.
func Logs(ctx context.Context, c kubernetes.Interface, ns, pod string, lines int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err := c.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{TailLines: &lines}).DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("read logs of %s/%s: %w", ns, pod, err)
	}
	return b, nil
}

// Detail reads one node's config_dump and recent access log. Parts that
// fail are named in Errors; the rest is still returned.
func (w *Watcher) Detail(ctx context.Context, node string) (ztunnel.NodeDetail, error) {
	// The focus on this node is the caller's to set (FocusDetail) and to
	// clear: set here, a late fetch would focus a node the user has left.
	ns, pod, err := w.ZtunnelPod(node)
	if err != nil {
		return ztunnel.NodeDetail{Node: node}, err
	}
	return FetchDetail(ctx, w.client, w.cfg.Admin, node, ns, pod), nil
}

// FetchDetail reads the config_dump and the access log of one ztunnel pod.
func FetchDetail(ctx context.Context, c kubernetes.Interface, admin AdminFetcher, node, ns, pod string) ztunnel.NodeDetail {
	d := ztunnel.NodeDetail{Node: node, Pod: ns + "/" + pod}
	dump, err := admin.ConfigDump(ctx, ns, pod)
	if err != nil {
		d.Errors = append(d.Errors, err.Error())
	} else {
		d.Workloads, d.Certificates = dump.Workloads, dump.Certificates
	}
	logs, err := Logs(ctx, c, ns, pod, 500)
	if err != nil {
		d.Errors = append(d.Errors, err.Error())
	} else {
		d.AccessLog = ztunnel.ParseAccessLog(logs)
		if len(d.AccessLog) > 50 {
			d.AccessLog = d.AccessLog[len(d.AccessLog)-50:]
		}
	}
	return d
}

// LogLines returns the last raw log lines of the ztunnel on node.
func (w *Watcher) LogLines(ctx context.Context, node string, lines int64) ([]string, error) {
	ns, pod, err := w.ZtunnelPod(node)
	if err != nil {
		return nil, err
	}
	b, err := Logs(ctx, w.client, ns, pod, lines)
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n"), nil
}
