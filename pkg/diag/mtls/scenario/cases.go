package scenario

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls/capture"
)

// scenarioCases pairs every client with every server.
func scenarioCases(plan []scenarioPod, pods map[string]*corev1.Pod, nodes int) []Case {
	var servers []scenarioPod
	for _, p := range plan {
		if p.role == "server" {
			servers = append(servers, p)
		}
	}
	var cases []Case
	for _, c := range plan {
		if c.role != "client" {
			continue
		}
		for _, s := range servers {
			sc := Case{
				From: c.ns + "/" + c.name, To: s.ns + "/" + s.name,
				FromEnrolled: c.enrolled, ToEnrolled: s.enrolled, Placement: c.placement,
				NegativeControl: !c.enrolled && !s.enrolled, Expected: ExpectDirect,
				fromPod: c.name, fromNS: c.ns,
			}
			if c.enrolled && s.enrolled {
				sc.Expected = ExpectHBONE
			}
			sc.fromIP = podAddr(pods[sc.From])
			sc.toIP = podAddr(pods[sc.To])
			cases = append(cases, sc)
		}
	}
	if nodes < 2 {
		// Report the cross-node cases the plan could not place.
		for _, s := range servers {
			for _, enrolled := range []bool{true, false} {
				from := plan[len(plan)-1].ns
				if enrolled {
					from = plan[0].ns
				}
				cases = append(cases, Case{
					From: from + "/client-cross-node", To: s.ns + "/" + s.name,
					FromEnrolled: enrolled, ToEnrolled: s.enrolled, Placement: CrossNode,
					NegativeControl: !enrolled && !s.enrolled, Expected: expectFor(enrolled, s.enrolled),
					Observed: "-", Result: CaseSkipped,
					Reason: "only one ready, schedulable node: no cross-node placement possible",
				})
			}
		}
	}
	return cases
}

func expectFor(from, to bool) string {
	if from && to {
		return ExpectHBONE
	}
	return ExpectDirect
}

func podAddr(p *corev1.Pod) netip.Addr {
	if p == nil {
		return netip.Addr{}
	}
	a, _ := netip.ParseAddr(p.Status.PodIP)
	return a.Unmap()
}

// captureTraffic runs one Live capture over both scenario namespaces (one
// capture pod per node, in a capture namespace of the run's own, never in
// the workload namespaces) and, once every capture pod runs, sends each
// case's traffic; it returns the verdict report.
func (o *Options) captureTraffic(ctx context.Context, cfg *rest.Config, kc kubernetes.Interface, res *Result, cases []Case, pods map[string]*corev1.Pod, rules mtls.Rules) (*mtls.Report, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var live *mtls.LiveResult
	var liveErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		live, liveErr = capture.Live(ctx, cfg, kc, capture.Options{
			LiveConfig:     mtls.LiveConfig{Namespace: res.Namespaces[0], Duration: o.Duration, Image: o.CaptureImage},
			AlsoNamespaces: res.Namespaces[1:], Progress: o.Progress,
			Suffix: o.Suffix, NamespaceLabels: map[string]string{Label: o.Suffix}})
		if liveErr != nil {
			cancel()
		}
	}()
	trafficErr := o.sendWhenCapturing(ctx, cfg, kc, res, cases)
	<-done
	if liveErr != nil {
		return nil, fmt.Errorf("capture: %w", liveErr)
	}
	if trafficErr != nil {
		return nil, trafficErr
	}
	var list []corev1.Pod
	for _, p := range pods {
		list = append(list, *p)
	}
	stats := live.Stats
	stats.Flows = len(live.Flows)
	rep := mtls.JudgeCapture(live.Flows, stats, mtls.PodMapFromPods(list), rules)
	if len(live.PerNode) > 0 {
		rep.Nodes = live.PerNode
		rep.Decide(rules)
	}
	return rep, nil
}

// sendWhenCapturing waits for the capture pods (one per node), gives
// tcpdump a moment, then runs the client command of every case at once.
func (o *Options) sendWhenCapturing(ctx context.Context, cfg *rest.Config, kc kubernetes.Interface, res *Result, cases []Case) error {
	nodes := len(res.Nodes)
	if nodes > 2 {
		nodes = 2 // the plan uses at most two nodes
	}
	// Live puts its capture pods in the run's capture namespace.
	_, err := capture.WatchPods(ctx, kc, capture.NamespaceName(o.Suffix), capture.Label, func(state map[string]*corev1.Pod) bool {
		running := 0
		for _, p := range state {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return running >= nodes
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil // Live reports why the capture did not start
		}
		return explain("wait for the capture pods", err)
	}
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(captureSettle):
	}
	fmt.Fprintf(o.Progress, "sending traffic for %d cases\n", len(cases))
	tctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	var wg sync.WaitGroup
	for i := range cases {
		c := &cases[i]
		if c.Result == CaseSkipped {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := []string{"sh", "-c", o.clientCommand(c)}
			if err := capture.ExecDiscard(tctx, cfg, kc, c.fromNS, c.fromPod, "client", cmd); err != nil {
				c.TrafficError = err.Error()
			}
		}()
	}
	wg.Wait()
	return nil
}

func (o *Options) clientCommand(c *Case) string {
	port := strconv.Itoa(o.Port)
	host := c.toIP.String()
	return strings.NewReplacer(
		"{target}", net.JoinHostPort(host, port),
		"{host}", host,
		"{port}", port,
		"{pod}", c.fromPod,
		"{namespace}", c.fromNS,
	).Replace(o.ClientCommand)
}
