package tui

import (
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
)

// recorder is a Focuser that keeps every report.
type recorder struct {
	rows   [][]string
	detail []string
}

func (r *recorder) Focus(nodes []string)    { r.rows = append(r.rows, nodes) }
func (r *recorder) FocusDetail(node string) { r.detail = append(r.detail, node) }

// focusStep is one message and whether it changes the rows on screen.
type focusStep struct {
	name string
	msg  tea.Msg
	want bool
}

// onScreen reads the node names of the table rows from the rendered frame,
// as a user sees them.
func onScreen(t *testing.T, m *Model) []string {
	t.Helper()
	lines := strings.Split(screen(m), "\n")
	var names []string
	for _, l := range lines[3 : len(lines)-1] {
		if f := strings.Fields(l); len(f) >= 3 {
			names = append(names, f[2])
		}
	}
	return names
}

func TestFocusFollowsTheVisibleRows(t *testing.T) {
	rec := &recorder{}
	m := New(Options{Fetcher: &fakeFetcher{}, Cluster: "lab", Focus: rec})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 20})
	if len(rec.rows) != 0 {
		t.Fatalf("no rows yet, reported %v", rec.rows)
	}
	m.Update(UpdateMsg{Snapshot: sample(100)})

	// check asserts that the step reported exactly one new set (or none
	// when want is false), and that it is what the screen shows.
	check := func(step string, want bool) {
		t.Helper()
		n := len(rec.rows)
		if !want {
			if n != 0 {
				t.Fatalf("%s: the set did not change, but %d reports were made: %v", step, n, rec.rows)
			}
			return
		}
		if n != 1 {
			t.Fatalf("%s: %d reports, want 1: %v", step, n, rec.rows)
		}
		got, shown := slices.Clone(rec.rows[0]), onScreen(t, m)
		slices.Sort(got)
		slices.Sort(shown)
		if !slices.Equal(got, shown) || len(shown) == 0 {
			t.Fatalf("%s: reported %v, the screen shows %v", step, got, shown)
		}
		rec.rows = nil
	}
	check("first snapshot", true)
	if len(onScreen(t, m)) != m.tableHeight() {
		t.Fatalf("the first page should be full: %v", onScreen(t, m))
	}
	steps := func(list []focusStep) {
		t.Helper()
		for _, st := range list {
			m.Update(st.msg)
			check(st.name, st.want)
		}
	}
	steps([]focusStep{
		{"the same snapshot again", UpdateMsg{Snapshot: sample(100)}, false},
		{"cursor moved within the page", key("j"), false},
		{"page down", key("pgdown"), true},
		{"page down again", key("pgdown"), true},
	})
	// Row by row: a report exactly when the table scrolled, which happens
	// once the cursor reaches the bottom of the page.
	scrolled := 0
	for range 2 * m.tableHeight() {
		first := onScreen(t, m)[0]
		m.Update(key("j"))
		moved := onScreen(t, m)[0] != first
		if moved {
			scrolled++
		}
		check("one row down", moved)
	}
	if scrolled < m.tableHeight() {
		t.Fatalf("the table scrolled only %d times in %d rows", scrolled, 2*m.tableHeight())
	}
	steps([]focusStep{{"end", key("G"), true}, {"home", key("g"), true}})
	// Each keystroke of the filter that changes the rows reports once; the
	// last report is the one row left.
	for _, k := range []string{"/", "c", "e", "r", "t"} {
		m.Update(key(k))
	}
	if len(rec.rows) == 0 || !slices.Equal(rec.rows[len(rec.rows)-1], []string{"node-certs"}) {
		t.Fatalf("filter: reports %v, want the last to be [node-certs]", rec.rows)
	}
	rec.rows = rec.rows[len(rec.rows)-1:]
	check("filter", true)
	// The snapshot changes while the same rows stay on screen: no report.
	later := sample(100)
	later.Time = later.Time.Add(time.Minute)
	steps([]focusStep{
		{"filter kept", key("enter"), false},
		{"filter cleared", key("esc"), true},
		{"sort by name", key("s"), true},
		{"taller terminal", tea.WindowSizeMsg{Width: 120, Height: 30}, true},
		{"wider terminal only", tea.WindowSizeMsg{Width: 150, Height: 30}, false},
		{"shorter terminal", tea.WindowSizeMsg{Width: 150, Height: 8}, true},
		{"a newer snapshot with the same rows on screen", UpdateMsg{Snapshot: later}, false},
	})
}

func TestFocusNamesTheOpenNode(t *testing.T) {
	rec := &recorder{}
	m := New(Options{Fetcher: &fakeFetcher{}, Cluster: "lab", Focus: rec})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 20})
	m.Update(UpdateMsg{Snapshot: sample(0)})
	rows := len(rec.rows)
	steps := []struct {
		key  string
		want []string // FocusDetail calls after the key
	}{
		{"j", nil},
		{"enter", []string{"node-missing"}},
		{"?", nil}, // the help covers the detail; the node stays open
		{"esc", nil},
		{"l", nil}, // logs of the same node
		{"esc", []string{""}},
		{"enter", []string{"node-missing"}},
		{"esc", []string{""}},
		{"esc", nil},
	}
	for i, st := range steps {
		_, cmd := m.Update(key(st.key))
		run(m, cmd)
		if !slices.Equal(rec.detail, st.want) {
			t.Fatalf("step %d (%s): FocusDetail calls %q, want %q", i, st.key, rec.detail, st.want)
		}
		rec.detail = nil
	}
	if len(rec.rows) != rows {
		t.Fatalf("opening a node must not change the visible rows' set: %v", rec.rows[rows:])
	}
}

func TestSeenColumn(t *testing.T) {
	m, _ := ready(t, 0)
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 20})
	got := screen(m)
	row := func(node string) string {
		for _, l := range strings.Split(got, "\n") {
			if strings.Contains(l, " "+node+" ") {
				return l
			}
		}
		t.Fatalf("no row for %s:\n%s", node, got)
		return ""
	}
	for node, want := range map[string]string{
		"node-healthy":    " 4s ",  // 4 s old: fresh
		"node-restarting": " 14s ", // under 3 intervals of 5 s: fresh
		"node-certs":      " 3m! ", // 3 minutes: stale, marked without colour
		"node-missing":    " - ",   // never read
	} {
		if r := row(node); !strings.Contains(r, want) {
			t.Errorf("%s: want %q in\n%s", node, want, r)
		}
	}
	if !strings.Contains(got, "SEEN !: read over 15s ago") {
		t.Errorf("a stale row on screen needs the legend:\n%s", got)
	}
	// A longer interval makes the same reading fresh.
	slow := New(Options{Cluster: "lab", Interval: 2 * time.Minute})
	slow.Update(tea.WindowSizeMsg{Width: 160, Height: 20})
	slow.Update(UpdateMsg{Snapshot: sample(0)})
	if got := screen(slow); strings.Contains(got, "3m!") || strings.Contains(got, "read over") {
		t.Errorf("at a 2m interval a 3m reading is fresh:\n%s", got)
	}
}
