package capture

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

// ztunnelPods lists the ztunnel pods on nodes. Failing to is a warning:
// identities are extra evidence.
func ztunnelPods(ctx context.Context, kc kubernetes.Interface, o Options, nodes []string, progress io.Writer) []corev1.Pod {
	sel := o.ZtunnelSelector
	if sel == "" {
		sel = ambient.ZtunnelSelector
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
func ztunnelLogs(ctx context.Context, kc kubernetes.Interface, pods []corev1.Pod, start time.Time, progress io.Writer) []mtls.AccessLogEntry {
	since := metav1.NewTime(start.Add(-5 * time.Second))
	limit := int64(32 << 20)
	var out []mtls.AccessLogEntry
	for _, p := range pods {
		rc, err := kc.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{SinceTime: &since, LimitBytes: &limit}).Stream(ctx)
		if err != nil {
			_, _ = fmt.Fprintf(progress, "warning: read logs of %s/%s: %v; identities from that node not joined\n", p.Namespace, p.Name, err)
			continue
		}
		es, err := mtls.ParseAccessLog(rc)
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
func ztunnelDumps(ctx context.Context, admin DumpFetcher, pods []corev1.Pod, timeout time.Duration, progress io.Writer) []mtls.ZtunnelDump {
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := make([]*mtls.ZtunnelDump, len(pods))
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
					out[i] = &mtls.ZtunnelDump{Source: name, Node: p.Spec.NodeName, Dump: d}
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
	var dumps []mtls.ZtunnelDump
	for _, d := range out {
		if d != nil {
			dumps = append(dumps, *d)
		}
	}
	return dumps
}
