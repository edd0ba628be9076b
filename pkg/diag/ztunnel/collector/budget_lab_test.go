package collector

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sim "github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/ztunnelsim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/tui"
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

// TestScrolledRowsAreReadFirst drives the real TUI model against the direct
// path under a budget too small for every ztunnel: 6 requests/s at a 1 s
// interval is three ztunnels a round out of six. The user sorts by name and
// scrolls to the end of a two-row table; the model tells the watcher, and
// from then on the two rows on screen are read every round while the rows
// off screen share what is left.
func TestScrolledRowsAreReadFirst(t *testing.T) {
	s := deployScenarios(t)
	removeAppPods(t, s)
	cfg := s.config()
	cfg.MaxRPS, cfg.CertInterval = 6, -1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := New(s.lab.Clients.Kube, cfg)
	m := tui.New(tui.Options{Cluster: "lab", Focus: w, Interval: cfg.Interval})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 6}) // two table rows
	go func() { _ = w.Run(ctx) }()
	next := func() *ztunnel.Snapshot {
		u := waitFor(t, w, 10*time.Second, func(u *ztunnel.Update) bool { return u.Snapshot != nil })
		m.Update(tui.UpdateMsg(*u))
		return u.Snapshot
	}
	next()
	m.Update(keyPress("s")) // sort by name
	m.Update(keyPress("G")) // to the last row
	var shown []string
	for _, l := range strings.Split(ansi.Strip(m.View().Content), "\n")[3:] {
		if f := strings.Fields(l); len(f) >= 3 && strings.HasPrefix(f[2], "lab-node-") {
			shown = append(shown, f[2])
		}
	}
	onScreen := map[string]bool{}
	for _, n := range shown {
		if s.byNode[n] != sim.NoZtunnel {
			onScreen[n] = true
		}
	}
	if len(shown) != 2 || len(onScreen) == 0 {
		t.Fatalf("after s and G the screen shows %v; want two rows, one with a ztunnel at least", shown)
	}
	// Until the next round the rows shown keep what they had; then they are
	// read first. Count the distinct readings of every node from here on.
	scrolled := time.Now()
	reads := map[string]map[time.Time]bool{}
	bad := map[string]bool{}
	for time.Since(scrolled) < 7*time.Second {
		snap := next()
		for _, n := range snap.Nodes {
			if n.Metrics != nil && n.Metrics.At.After(scrolled) {
				if reads[n.Node] == nil {
					reads[n.Node] = map[time.Time]bool{}
				}
				reads[n.Node][n.Metrics.At] = true
				bad[n.Node] = n.ScrapeError != "" || (n.Probe != nil && !n.Probe.Ready) || n.Metrics.PendingProxies > 0
			}
		}
	}
	minShown, maxOff := 1<<30, 0
	for node, sc := range s.byNode {
		if sc == sim.NoZtunnel {
			continue
		}
		got := len(reads[node])
		switch {
		case onScreen[node]:
			minShown = min(minShown, got)
		case !bad[node]:
			maxOff = max(maxOff, got)
		}
		t.Logf("%s (%s, on screen %v, bad reading %v): read %d times in 7 s", node, sc, onScreen[node], bad[node], got)
	}
	// 7 rounds: the rows on screen are read in each (one round of slack for
	// the one in flight when the user scrolled). The one spare read a round
	// goes first to an off-screen ztunnel whose last reading was bad (the
	// not-ready stand-in: unhealthy nodes come round sooner), so the healthy
	// rows off screen get at most a few.
	if minShown < 6 {
		t.Errorf("a row on screen was read %d times in 7 rounds; it must be read every round", minShown)
	}
	if maxOff > minShown/2 {
		t.Errorf("a healthy row off screen was read %d times, against %d for the rows on screen: the focus did not reach the watcher", maxOff, minShown)
	}
}

// keyPress is a plain key as Bubble Tea delivers it.
func keyPress(s string) tea.KeyPressMsg { return tea.KeyPressMsg{Code: []rune(s)[0], Text: s} }

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
