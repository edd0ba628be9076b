package collector

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	sim "github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/ztunnelsim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/tui"
)

// TestTUIFrameFromPrometheus drives two watchers as `tui` does, over the
// same stand-ins at the same time: one scraping them through the API
// server, one reading the add-on's real Prometheus found with
// `--prometheus auto`. The table the TUI draws from each must be the same
// frame: the same rows in the same order, the same states, versions,
// proxies, pods and reasons; the numbers a rate or a duration gives may
// differ only as two reads of a moving counter do.
//
// The Prometheus watcher is told the rows on screen (Watcher.Focus; all
// seven fit), so it reads their readiness and certificates directly as
// the direct path does. Without that, a node whose only trouble is an
// expiring certificate looks healthy: certificates are not in the metrics.
func TestTUIFrameFromPrometheus(t *testing.T) {
	s := deployScenarios(t)
	removeAppPods(t, s)
	markZtunnelNotReady(t, s)
	addonPrometheus(t, s, s.ztunnelNS)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src, err := DiscoverPrometheus(ctx, s.lab.Clients.Kube, s.lab.Config, s.ztunnelNS)
	if err != nil {
		t.Fatal(err)
	}
	src.Window = promWindow

	// The direct path's rates span one interval: give it the same window.
	direct := s.config()
	direct.Interval = promWindow
	fromProm := s.config()
	fromProm.Metrics = src
	wd, wp := New(s.lab.Clients.Kube, direct), New(s.lab.Clients.Kube, fromProm)
	wp.Focus(s.lab.Nodes)
	go func() { _ = wd.Run(ctx) }()
	go func() { _ = wp.Run(ctx) }()

	// Both complete: rates everywhere, the expiring certificate read, and
	// pending proxies past their grace.
	complete := func(snap *ztunnel.Snapshot) bool {
		for node, sc := range s.byNode {
			n := nodeByName(snap, node)
			switch {
			case sc == sim.NoZtunnel:
			case n == nil || n.Rates == nil || n.Metrics == nil:
				return false
			case sc == sim.ExpiringCerts && len(n.Certificates) == 0:
				return false
			case sc == sim.PendingProxies && (len(n.Reasons) == 0 || n.Reasons[0].Code != ztunnel.ReasonPendingProxies):
				return false
			}
		}
		return true
	}
	var sd, sp ztunnel.Snapshot
	for {
		sd, sp = wd.Snapshot(), wp.Snapshot()
		if complete(&sd) && complete(&sp) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no complete snapshot from both watchers within 60s:\ndirect:\n%s\nprometheus:\n%s", frame(&sd), frame(&sp))
		case <-time.After(200 * time.Millisecond):
		}
	}
	if src.Queries == 0 {
		t.Fatal("the prometheus watcher sent no query")
	}
	// The same moment on both screens ("updated", the AGE column).
	sp.Time = sd.Time
	fd, fp := frame(&sd), frame(&sp)
	t.Logf("direct:\n%s\nfrom %s:\n%s", fd, src, fp)
	for _, d := range frameDiff(fd, fp) {
		t.Error(d)
	}
}

// frame is what the TUI draws for snap on a 200x20 terminal, without the
// colours.
func frame(snap *ztunnel.Snapshot) string {
	m := tui.New(tui.Options{Cluster: "lab"})
	m.Update(tea.WindowSizeMsg{Width: 200, Height: 20})
	m.Update(tui.UpdateMsg(ztunnel.Update{Snapshot: snap}))
	return ansi.Strip(m.View().Content)
}

var frameNumber = regexp.MustCompile(`\d+(\.\d+)?`)

// frameDiff compares two frames line by line: the text around the numbers
// exactly (spacing aside: a right-aligned "9.8" and "10" pad differently),
// the numbers within 25% or 1 of each other.
func frameDiff(a, b string) []string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(la) != len(lb) {
		return []string{fmt.Sprintf("%d lines against %d", len(la), len(lb))}
	}
	var diffs []string
	for i := range la {
		sa := strings.Join(strings.Fields(frameNumber.ReplaceAllString(la[i], "#")), " ")
		sb := strings.Join(strings.Fields(frameNumber.ReplaceAllString(lb[i], "#")), " ")
		if sa != sb {
			diffs = append(diffs, fmt.Sprintf("line %d differs:\n  direct:     %s\n  prometheus: %s", i+1, la[i], lb[i]))
			continue
		}
		na, nb := frameNumber.FindAllString(la[i], -1), frameNumber.FindAllString(lb[i], -1)
		for j := range na {
			x, _ := strconv.ParseFloat(na[j], 64)
			y, _ := strconv.ParseFloat(nb[j], 64)
			if d := math.Abs(x - y); d > 1 && d > 0.25*math.Max(x, y) {
				diffs = append(diffs, fmt.Sprintf("line %d: %s against %s:\n  direct:     %s\n  prometheus: %s", i+1, na[j], nb[j], la[i], lb[i]))
			}
		}
	}
	return diffs
}
