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
// The Prometheus watcher is told the rows on screen by a TUI model (as
// `tui` wires it; all seven fit), so it reads their readiness and
// certificates directly as the direct path does. Without that, a node whose only trouble is an
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
	// The Prometheus watcher learns the rows on screen from the TUI's model,
	// as `tui` wires it.
	screen := tui.New(tui.Options{Cluster: "lab", Focus: wp})
	screen.Update(tea.WindowSizeMsg{Width: 200, Height: 20})
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
		screen.Update(tui.UpdateMsg(ztunnel.Update{Snapshot: &sp}))
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
// the numbers within 25% or 1 of each other, and seconds ("5s") within one
// promWindow: the direct watcher sees pending proxies only at its scrapes,
// one interval (promWindow) apart.
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
		na, nb := frameNumber.FindAllStringIndex(la[i], -1), frameNumber.FindAllStringIndex(lb[i], -1)
		for j := range na {
			x, _ := strconv.ParseFloat(la[i][na[j][0]:na[j][1]], 64)
			y, _ := strconv.ParseFloat(lb[i][nb[j][0]:nb[j][1]], 64)
			d := math.Abs(x - y)
			if strings.HasPrefix(la[i][na[j][1]:], "s") && d <= promWindow.Seconds() {
				continue
			}
			if d > 1 && d > 0.25*math.Max(x, y) {
				diffs = append(diffs, fmt.Sprintf("line %d: %g against %g:\n  direct:     %s\n  prometheus: %s", i+1, x, y, la[i], lb[i]))
			}
		}
	}
	return diffs
}

func TestFrameDiff(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"a rate read twice", "x  9.8  19K  ok", "x   10  19K  ok", true},
		{"pending proxies", "x  2/0  ok", "x  2/2  ok", false},
		{"pending for, one interval apart", "pending for 5s", "pending for 9s", true},
		{"pending for, more", "pending for 5s", "pending for 11s", false},
		{"another verdict", "✓ healthy  ok", "! warning  certificate shop/db expires in 2h", false},
		{"failures", "8.0 connection failures/s", "7.9 connection failures/s", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := len(frameDiff(tt.a, tt.b)) == 0; got != tt.same {
				t.Errorf("%q against %q: same %v, want %v", tt.a, tt.b, got, tt.same)
			}
		})
	}
}
