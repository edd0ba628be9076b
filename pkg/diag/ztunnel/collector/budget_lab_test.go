package collector

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sim "github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/ztunnelsim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

// TestWatcherStaysWithinTheAPIBudget runs the direct path with a budget far
// below what the scenario nodes would take (7 ztunnels, 2 requests each, every
// second) and counts the proxy requests on the wire: the sustained rate stays
// at the budget, and the focused node is read every round anyway.
func TestWatcherStaysWithinTheAPIBudget(t *testing.T) {
	s := deployScenarios(t)
	removeAppPods(t, s)
	clients, counter := countingClients(t, s.lab.Config)
	cfg := s.config()
	cfg.MaxRPS = 4
	cfg.CertInterval = -1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := New(clients.Kube, cfg)
	focus := s.nodeOf[sim.Healthy]
	w.Focus([]string{focus})
	go func() { _ = w.Run(ctx) }()
	waitFor(t, w, 30*time.Second, func(u *ztunnel.Update) bool { return u.Snapshot != nil })
	start, before := time.Now(), counter.snapshot()["GET proxy"]
	seen := map[time.Time]bool{}
	for time.Since(start) < 8*time.Second {
		u := waitFor(t, w, 10*time.Second, func(u *ztunnel.Update) bool { return u.Snapshot != nil })
		if n := nodeByName(u.Snapshot, focus); n != nil && n.Metrics != nil {
			seen[n.Metrics.At] = true
		}
	}
	elapsed := time.Since(start).Seconds()
	got := float64(counter.snapshot()["GET proxy"]-before) / elapsed
	t.Logf("%.1f proxy requests/s with a budget of %g/s over %.1fs; focused node read %d times", got, cfg.MaxRPS, elapsed, len(seen))
	if got > cfg.MaxRPS*1.25 {
		t.Errorf("sustained %.1f requests/s, budget %g/s", got, cfg.MaxRPS)
	}
	if got < cfg.MaxRPS*0.5 {
		t.Errorf("only %.1f requests/s: the budget should be used, not wasted", got)
	}
	if len(seen) < 5 {
		t.Errorf("focused node read %d times in %.0fs; it must be read every round", len(seen), elapsed)
	}
}

// removeAppPods deletes the scenario's application pods when the test ends
// and waits until they are gone: other tests in this lab count the pods on
// the healthy node, and a namespace's deletion finishes too late for them.
func removeAppPods(t *testing.T, s *scenarioLab) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pods := s.lab.Clients.Kube.CoreV1().Pods(s.appNS)
		zero := int64(0)
		_ = pods.DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		for ctx.Err() == nil {
			l, err := pods.List(ctx, metav1.ListOptions{})
			if err == nil && len(l.Items) == 0 {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Errorf("application pods in %s still there after 30s", s.appNS)
	})
}
