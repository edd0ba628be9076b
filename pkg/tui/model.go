// Package tui is the Bubble Tea interface of `kubectl ambient tui`: a live
// table of nodes and the health of their ztunnels, sickest first, with a
// detail view per node. It does no I/O of its own: snapshots arrive on a
// channel read by a tea.Cmd that Update re-arms, and on-demand reads go
// through the Fetcher the caller injects. It never imports client-go.
package tui

import (
	"context"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

// Fetcher reads on-demand data for one node. Its methods run inside tea.Cmds.
type Fetcher interface {
	Detail(ctx context.Context, node string) (ztunnel.NodeDetail, error)
	LogLines(ctx context.Context, node string, lines int64) ([]string, error)
}

// Focuser learns which nodes the user looks at, so the watcher reads those
// first. The model calls it from Update, and only when the set changed, so
// it must neither block nor do I/O (the collector's Watcher keeps the sets
// in memory).
type Focuser interface {
	// Focus names the visible table rows; each call replaces the last.
	Focus(nodes []string)
	// FocusDetail names the node whose detail or logs are open, "" for none.
	FocusDetail(node string)
}

// DefaultInterval is the refresh interval assumed when Options.Interval is
// zero; it matches the watcher's default.
const DefaultInterval = 5 * time.Second

// staleIntervals is how many refresh intervals old a row's reading may be
// before the table marks it stale.
const staleIntervals = 3

// Options configure a Model.
type Options struct {
	// Updates carries snapshots and connection state from the watcher.
	Updates <-chan ztunnel.Update
	// Fetcher serves the detail and log views; nil disables them.
	Fetcher Fetcher
	// Context bounds the fetches; nil means context.Background().
	Context context.Context
	// Cluster names the cluster before the first snapshot arrives.
	Cluster string
	// Focus, when set, is told the visible rows and the open node on change.
	Focus Focuser
	// Interval is the watcher's refresh interval; a reading older than
	// staleIntervals of it is marked stale. Zero means DefaultInterval.
	Interval time.Duration
}

type mode int

const (
	modeTable mode = iota
	modeDetail
	modeLogs
	modeHelp
)

// Messages the model handles besides Bubble Tea's own.
type (
	// UpdateMsg carries one watcher update into Update; the model's own
	// channel Cmd produces it, and tests or other drivers may send it.
	UpdateMsg ztunnel.Update
	// sourceClosedMsg says the watcher stopped.
	sourceClosedMsg struct{}
	// detailMsg carries a node's detail.
	detailMsg struct {
		node   string
		detail ztunnel.NodeDetail
		err    error
	}
	// logsMsg carries a node's recent log lines.
	logsMsg struct {
		node  string
		lines []string
		err   error
	}
)

// Model is the TUI state. Create it with New.
type Model struct {
	opts          Options
	width, height int

	snap       *ztunnel.Snapshot
	connecting bool
	connErr    error
	closed     bool

	rows     []*ztunnel.NodeHealth // filtered and sorted view of snap.Nodes
	cursor   int
	offset   int
	selected string // node name under the cursor, kept across updates
	sortIdx  int

	filtering bool
	filter    string

	mode       mode
	prevMode   mode
	detailNode string
	detail     *ztunnel.NodeDetail
	detailErr  error
	logs       []string
	logsErr    error
	loading    bool
	scroll     int

	// focusRows and focusDetail are what was last reported to opts.Focus.
	focusRows   map[string]bool
	focusDetail string
}

// New builds the model. It starts in the "connecting" state.
func New(o Options) *Model {
	if o.Context == nil {
		o.Context = context.Background()
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	return &Model{opts: o, connecting: true, width: 100, height: 30}
}

// Init starts reading updates.
func (m *Model) Init() tea.Cmd { return m.wait() }

// wait returns the Cmd that blocks for the next update; Update re-arms it
// after each one.
func (m *Model) wait() tea.Cmd {
	ch := m.opts.Updates
	if ch == nil {
		return nil
	}
	return func() tea.Msg {
		u, ok := <-ch
		if !ok {
			return sourceClosedMsg{}
		}
		return UpdateMsg(u)
	}
}

// Update handles one message. It does no I/O; when the message changed what
// the user sees, it tells the Focuser.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	next, cmd := m.update(msg)
	m.reportFocus()
	return next, cmd
}

func (m *Model) update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.clamp()
		return m, nil
	case UpdateMsg:
		m.apply(ztunnel.Update(msg))
		return m, m.wait()
	case sourceClosedMsg:
		m.closed = true
		return m, nil
	case detailMsg:
		if msg.node == m.detailNode {
			m.loading = false
			d := msg.detail
			m.detail, m.detailErr = &d, msg.err
		}
		return m, nil
	case logsMsg:
		if msg.node == m.detailNode {
			m.loading = false
			m.logs, m.logsErr = msg.lines, msg.err
			m.scroll = m.maxScroll()
		}
		return m, nil
	case tea.KeyPressMsg:
		return m.key(msg)
	}
	return m, nil
}

func (m *Model) apply(u ztunnel.Update) {
	m.connErr = u.Err
	if u.Snapshot != nil {
		m.snap = u.Snapshot
		m.connecting = false
		m.connErr = nil
		m.rebuild()
		return
	}
	if u.Connecting && m.snap == nil {
		m.connecting = true
	}
}

// rebuild recomputes the visible rows from the snapshot, the filter and the
// sort order, keeping the cursor on the same node when it is still there.
func (m *Model) rebuild() {
	if m.snap == nil {
		m.rows = nil
		return
	}
	nodes := m.snap.Nodes
	order := ztunnel.SortOrders[m.sortIdx]
	if order != ztunnel.SortState {
		// The snapshot comes sorted by state; other orders sort a copy.
		nodes = append([]ztunnel.NodeHealth(nil), nodes...)
		ztunnel.SortNodes(nodes, order)
	}
	f := strings.ToLower(m.filter)
	m.rows = m.rows[:0]
	for i := range nodes {
		n := &nodes[i]
		if f != "" && !matches(n, f) {
			continue
		}
		m.rows = append(m.rows, n)
	}
	if m.selected != "" {
		for i, r := range m.rows {
			if r.Node == m.selected {
				m.cursor = i
				break
			}
		}
	}
	m.clamp()
}

func matches(n *ztunnel.NodeHealth, f string) bool {
	if strings.Contains(strings.ToLower(n.Node), f) || strings.Contains(n.State.String(), f) {
		return true
	}
	for _, r := range n.Reasons {
		if strings.Contains(strings.ToLower(r.Message), f) {
			return true
		}
	}
	return false
}

// visibleRows are the rows the table shows, also while a detail, the logs
// or the help cover it: esc brings them back.
func (m *Model) visibleRows() []*ztunnel.NodeHealth {
	if m.offset >= len(m.rows) {
		return nil
	}
	return m.rows[m.offset:min(len(m.rows), m.offset+m.tableHeight())]
}

// openNode is the node whose detail or logs are open (under the help, too).
func (m *Model) openNode() string {
	mode := m.mode
	if mode == modeHelp {
		mode = m.prevMode
	}
	if mode == modeDetail || mode == modeLogs {
		return m.detailNode
	}
	return ""
}

// reportFocus tells the Focuser the visible rows and the open node when
// either changed since the last report; it allocates only then.
func (m *Model) reportFocus() {
	f := m.opts.Focus
	if f == nil {
		return
	}
	rows := m.visibleRows()
	// A set: rows that only changed places (a new snapshot, a sort within
	// the page) are no change.
	same := len(rows) == len(m.focusRows)
	for i := 0; same && i < len(rows); i++ {
		same = m.focusRows[rows[i].Node]
	}
	if !same {
		m.focusRows = make(map[string]bool, len(rows))
		names := make([]string, len(rows))
		for i, r := range rows {
			m.focusRows[r.Node], names[i] = true, r.Node
		}
		f.Focus(names)
	}
	if open := m.openNode(); open != m.focusDetail {
		m.focusDetail = open
		f.FocusDetail(open)
	}
}

// tableHeight is the number of node rows that fit.
func (m *Model) tableHeight() int {
	// header (2 lines) + column titles + footer
	return max(1, m.height-4)
}

func (m *Model) bodyHeight() int { return max(1, m.height-3) }

func (m *Model) clamp() {
	if m.cursor >= len(m.rows) {
		m.cursor = len(m.rows) - 1
	}
	if m.cursor < 0 {
		m.cursor = 0
	}
	h := m.tableHeight()
	if m.cursor < m.offset {
		m.offset = m.cursor
	}
	if m.cursor >= m.offset+h {
		m.offset = m.cursor - h + 1
	}
	if maxOff := max(0, len(m.rows)-h); m.offset > maxOff {
		m.offset = maxOff
	}
	if m.offset < 0 {
		m.offset = 0
	}
	if len(m.rows) > 0 {
		m.selected = m.rows[m.cursor].Node
	}
}

func (m *Model) key(k tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	s := k.String()
	if s == "ctrl+c" {
		return m, tea.Quit
	}
	if m.filtering {
		switch s {
		case "enter":
			m.filtering = false
		case "esc":
			m.filtering, m.filter = false, ""
			m.rebuild()
		case "backspace":
			if r := []rune(m.filter); len(r) > 0 {
				m.filter = string(r[:len(r)-1])
				m.rebuild()
			}
		default:
			if k.Text != "" {
				m.filter += k.Text
				m.rebuild()
			}
		}
		return m, nil
	}
	switch m.mode {
	case modeHelp:
		switch s {
		case "q":
			return m, tea.Quit
		case "esc", "?", "enter":
			m.mode = m.prevMode
		}
		return m, nil
	case modeDetail, modeLogs:
		return m.keyDetail(s)
	}
	switch s {
	case "q":
		return m, tea.Quit
	case "up", "k":
		m.move(-1)
	case "down", "j":
		m.move(1)
	case "pgup", "ctrl+b":
		m.move(-m.tableHeight())
	case "pgdown", "ctrl+f", "space":
		m.move(m.tableHeight())
	case "home", "g":
		m.move(-len(m.rows))
	case "end", "G":
		m.move(len(m.rows))
	case "/":
		m.filtering = true
	case "esc":
		if m.filter != "" {
			m.filter = ""
			m.rebuild()
		}
	case "s":
		m.sortIdx = (m.sortIdx + 1) % len(ztunnel.SortOrders)
		m.rebuild()
	case "?":
		m.prevMode, m.mode = m.mode, modeHelp
	case "enter":
		return m, m.open(modeDetail)
	case "l":
		return m, m.open(modeLogs)
	}
	return m, nil
}

// maxScroll is the last scroll position of the detail or log body.
func (m *Model) maxScroll() int {
	lines := m.detailLines()
	switch m.mode {
	case modeLogs:
		lines = m.logLines()
	case modeHelp:
		lines = helpText
	}
	return max(0, len(lines)-(m.bodyHeight()-1))
}

func (m *Model) keyDetail(s string) (tea.Model, tea.Cmd) {
	defer func() { m.scroll = min(m.scroll, m.maxScroll()) }()
	switch s {
	case "q":
		return m, tea.Quit
	case "esc", "backspace":
		m.mode = modeTable
		m.detail, m.logs, m.detailErr, m.logsErr = nil, nil, nil, nil
	case "up", "k":
		m.scroll = max(0, m.scroll-1)
	case "down", "j":
		m.scroll++
	case "pgup":
		m.scroll = max(0, m.scroll-m.bodyHeight())
	case "pgdown", "space":
		m.scroll += m.bodyHeight()
	case "?":
		m.prevMode, m.mode = m.mode, modeHelp
	case "l":
		if m.mode == modeDetail {
			return m, m.open(modeLogs)
		}
	case "r":
		return m, m.open(m.mode)
	}
	return m, nil
}

func (m *Model) move(d int) {
	m.cursor += d
	m.clamp()
}

// open switches to the detail or log view of the node under the cursor and
// returns the Cmd that fetches its data.
func (m *Model) open(to mode) tea.Cmd {
	if len(m.rows) == 0 {
		return nil
	}
	node := m.rows[m.cursor].Node
	m.mode, m.detailNode, m.scroll, m.loading = to, node, 0, true
	f, ctx := m.opts.Fetcher, m.opts.Context
	if f == nil {
		m.loading = false
		return nil
	}
	if to == modeLogs {
		m.logs, m.logsErr = nil, nil
		return func() tea.Msg {
			lines, err := f.LogLines(ctx, node, 200)
			return logsMsg{node: node, lines: lines, err: err}
		}
	}
	m.detail, m.detailErr = nil, nil
	return func() tea.Msg {
		d, err := f.Detail(ctx, node)
		return detailMsg{node: node, detail: d, err: err}
	}
}
