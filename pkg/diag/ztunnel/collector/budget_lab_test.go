package collector

import (
	"context"
	"testing"
	"time"

	sim "github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/ztunnelsim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

// TestWatcherStaysWithinTheAPIBudget runs the direct path with a budget far
// below what the scenario nodes would take (7 ztunnels, 2 requests each, every
// second) and counts the proxy requests on the wire: the sustained rate stays
// at the budget, and the focused node is read every round anyway.
func TestWatcherStaysWithinTheAPIBudget(t *testing.T) {
	s := deployScenarios(t)
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
