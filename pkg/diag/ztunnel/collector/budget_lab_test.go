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

// budgetedWatcher builds a watcher on the scenario lab under a budget of rps
// requests/s (a 1 s interval, no certificates) and returns it with the
// function that starts it; it stops when the test ends.
func budgetedWatcher(t *testing.T, rps float64) (*scenarioLab, *Watcher, func()) {
	s := deployScenarios(t)
	removeAppPods(t, s)
	cfg := s.config()
	cfg.MaxRPS, cfg.CertInterval = rps, -1
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w := New(s.lab.Clients.Kube, cfg)
	return s, w, func() {
		go func() { _ = w.Run(ctx) }()
		waitFor(t, w, 30*time.Second, func(u *ztunnel.Update) bool { return u.Snapshot != nil })
	}
}

// readsFor counts each node's distinct readings (metrics times) taken during
// the next d, handing every snapshot to each first.
func readsFor(t *testing.T, w *Watcher, d time.Duration, each func(*ztunnel.Snapshot)) map[string]int {
	from := time.Now()
	seen := map[string]map[time.Time]bool{}
	for time.Since(from) < d {
		u := waitFor(t, w, 10*time.Second, func(u *ztunnel.Update) bool { return u.Snapshot != nil })
		each(u.Snapshot)
		for _, n := range u.Snapshot.Nodes {
			if n.Metrics != nil && n.Metrics.At.After(from) {
				if seen[n.Node] == nil {
					seen[n.Node] = map[time.Time]bool{}
				}
				seen[n.Node][n.Metrics.At] = true
			}
		}
	}
	out := map[string]int{}
	for node, at := range seen {
		out[node] = len(at)
	}
	return out
}

// TestScrolledRowsAreReadFirst drives the real TUI model against the direct
// path under a budget too small for every ztunnel: 6 requests/s at a 1 s
// interval is three ztunnels a round out of six. The user sorts by name and
// scrolls to the end of a two-row table; the model tells the watcher, and
// from then on the two rows on screen are read every round while the rows
// off screen share what is left.
func TestScrolledRowsAreReadFirst(t *testing.T) {
	s, w, start := budgetedWatcher(t, 6)
	m := tui.New(tui.Options{Cluster: "lab", Focus: w, Interval: time.Second})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 6}) // two table rows
	start()
	toModel := func(snap *ztunnel.Snapshot) { m.Update(tui.UpdateMsg{Snapshot: snap}) }
	toModel(waitFor(t, w, 10*time.Second, func(u *ztunnel.Update) bool { return u.Snapshot != nil }).Snapshot)
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
	bad := map[string]bool{}
	reads := readsFor(t, w, 7*time.Second, func(snap *ztunnel.Snapshot) {
		toModel(snap)
		for _, n := range snap.Nodes {
			if n.Metrics != nil {
				bad[n.Node] = n.ScrapeError != "" || (n.Probe != nil && !n.Probe.Ready) || n.Metrics.PendingProxies > 0
			}
		}
	})
	minShown, maxOff := 1<<30, 0
	for node, sc := range s.byNode {
		if sc == sim.NoZtunnel {
			continue
		}
		switch {
		case onScreen[node]:
			minShown = min(minShown, reads[node])
		case !bad[node]:
			maxOff = max(maxOff, reads[node])
		}
		t.Logf("%s (%s, on screen %v, bad reading %v): read %d times in 7 s", node, sc, onScreen[node], bad[node], reads[node])
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

// TestFocusRowsAndDetailAreApart gives the watcher a budget for two ztunnels a
// round, one visible row and one open node detail: both are read every round.
// When the rows change, the detail node is still read every round and the row
// that left the screen is not: a new set of rows does not clear the detail.
func TestFocusRowsAndDetailAreApart(t *testing.T) {
	s, w, start := budgetedWatcher(t, 4)
	row, detail, next := s.nodeOf[sim.Healthy], s.nodeOf[sim.ExpiringCerts], s.nodeOf[sim.Restarting]
	w.Focus([]string{row})
	w.FocusDetail(detail)
	start()
	got := readsFor(t, w, 5*time.Second, func(*ztunnel.Snapshot) {})
	t.Logf("row %s, detail %s: reads in 5 rounds %v", row, detail, got)
	if got[row] < 4 || got[detail] < 4 || got[next] > 1 {
		t.Errorf("the focused row and the open node must be read every round, the rest not: %v", got)
	}
	w.Focus([]string{next})
	got = readsFor(t, w, 5*time.Second, func(*ztunnel.Snapshot) {})
	t.Logf("rows now %s, detail still %s: reads in 5 rounds %v", next, detail, got)
	if got[detail] < 4 {
		t.Errorf("a new set of rows cleared the open node's focus: %s read %d times in 5 rounds", detail, got[detail])
	}
	if got[next] < 4 || got[row] > 2 {
		t.Errorf("the new row must take the old one's place: %v", got)
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
