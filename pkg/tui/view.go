package tui

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

var (
	colorOK    = lipgloss.Color("2")
	colorWarn  = lipgloss.Color("3")
	colorBad   = lipgloss.Color("1")
	colorMuted = lipgloss.Color("8")

	styleTitle    = lipgloss.NewStyle().Bold(true)
	styleColumns  = lipgloss.NewStyle().Bold(true).Underline(true)
	styleSelected = lipgloss.NewStyle().Reverse(true)
	styleMuted    = lipgloss.NewStyle().Foreground(colorMuted)
	styleError    = lipgloss.NewStyle().Foreground(colorBad).Bold(true)
	stateStyles   = map[ztunnel.State]lipgloss.Style{
		ztunnel.StateHealthy:   lipgloss.NewStyle().Foreground(colorOK),
		ztunnel.StateWarning:   lipgloss.NewStyle().Foreground(colorWarn),
		ztunnel.StateUnhealthy: lipgloss.NewStyle().Foreground(colorBad).Bold(true),
		ztunnel.StateUnknown:   lipgloss.NewStyle().Foreground(colorMuted),
	}
)

// painter wraps text in the SGR sequences of a lipgloss style, computed
// once: Style.Render per row costs more than the rest of a frame.
type painter struct{ pre, post string }

func newPainter(st lipgloss.Style) painter {
	const mark = "\x00"
	pre, post, ok := strings.Cut(st.Render(mark), mark)
	if !ok {
		return painter{}
	}
	return painter{pre, post}
}

func (p painter) paint(s string) string {
	if p.pre == "" {
		return s
	}
	return p.pre + s + p.post
}

var (
	paintSelected = newPainter(styleSelected)
	paintTitle    = newPainter(styleTitle)
	paintColumns  = newPainter(styleColumns)
	paintMuted    = newPainter(styleMuted)
	paintError    = newPainter(styleError)
	paintState    = map[ztunnel.State]painter{}
)

func init() {
	for st, style := range stateStyles {
		paintState[st] = newPainter(style)
	}
}

// width is the display width of s; plain ASCII and the few symbols the
// table uses are counted fast, anything else goes to ansi.StringWidth.
func width(s string) int {
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == 0x1b:
			return ansi.StringWidth(s)
		case c < 0x80:
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r < 0x2000 || r > 0x27bf { // outside punctuation, arrows, symbols, dingbats
				return ansi.StringWidth(s)
			}
			i += size
		}
		n++
	}
	return n
}

// stateLabel is the symbol and the word: never colour alone.
func stateLabel(s ztunnel.State) string { return s.Symbol() + " " + s.String() }

// View renders the current mode. It does no I/O and touches only the
// visible rows.
func (m *Model) View() tea.View {
	var body string
	switch m.mode {
	case modeHelp:
		body = m.viewHelp()
	case modeDetail:
		body = m.viewDetail()
	case modeLogs:
		body = m.viewLogs()
	default:
		body = m.viewTable()
	}
	v := tea.NewView(body)
	v.AltScreen = true
	v.WindowTitle = "kubectl ambient tui"
	return v
}

// column describes one table column. Columns with a higher drop value go
// first when the terminal is too narrow.
type column struct {
	title string
	width int
	right bool
	drop  int
	cell  func(n *ztunnel.NodeHealth, now time.Time) string
}

var columns = []column{
	{title: "STATE", width: 11, cell: func(n *ztunnel.NodeHealth, _ time.Time) string { return stateLabel(n.State) }},
	{title: "NODE", width: 0}, // sized to the names
	{title: "ZTUNNEL", width: 9, cell: ztunnelCell},
	{title: "RST", width: 3, right: true, drop: 4, cell: func(n *ztunnel.NodeHealth, _ time.Time) string {
		if n.Ztunnel == nil {
			return "-"
		}
		return strconv.Itoa(int(n.Ztunnel.Restarts))
	}},
	{title: "AGE", width: 4, right: true, drop: 9, cell: func(n *ztunnel.NodeHealth, now time.Time) string {
		if n.Ztunnel == nil || n.Ztunnel.Created.IsZero() {
			return "-"
		}
		return ztunnel.Age(now.Sub(n.Ztunnel.Created))
	}},
	{title: "VERSION", width: 8, drop: 10, cell: func(n *ztunnel.NodeHealth, _ time.Time) string {
		if n.Ztunnel == nil {
			return "-"
		}
		return n.Ztunnel.Version
	}},
	{title: "PROXY", width: 5, right: true, drop: 7, cell: func(n *ztunnel.NodeHealth, _ time.Time) string {
		if n.Metrics == nil {
			return "-"
		}
		return fmt.Sprintf("%.0f/%.0f", n.Metrics.ActiveProxies, n.Metrics.PendingProxies)
	}},
	{title: "PODS", width: 5, right: true, drop: 8, cell: func(n *ztunnel.NodeHealth, _ time.Time) string {
		return fmt.Sprintf("%d/%d", n.Pods.Captured, n.Pods.Enrolled)
	}},
	{title: "CONN/S", width: 6, right: true, drop: 5, cell: func(n *ztunnel.NodeHealth, _ time.Time) string {
		if n.Rates == nil {
			return "-"
		}
		return rate(n.Rates.OpenedPerSec)
	}},
	{title: "FAIL/S", width: 6, right: true, drop: 2, cell: func(n *ztunnel.NodeHealth, _ time.Time) string {
		if n.Rates == nil {
			return "-"
		}
		return rate(n.Rates.FailedPerSec)
	}},
	{title: "BYTES/S", width: 7, right: true, drop: 6, cell: func(n *ztunnel.NodeHealth, _ time.Time) string {
		if n.Rates == nil {
			return "-"
		}
		return Bytes(n.Rates.BytesPerSec)
	}},
	// SEEN is drawn by the model (its staleness depends on the interval):
	// after the failure rate, the last column a narrow terminal gives up.
	{title: "SEEN", width: 4, right: true, drop: 3},
	{title: "REASON", width: -1, cell: func(n *ztunnel.NodeHealth, _ time.Time) string { return n.Summary() }},
}

// seen is how long before now the node's ztunnel was last read (readiness
// and metrics): "-" when it never was, and the age with staleMark when it is
// older than stale, which the second return value also says.
func seen(n *ztunnel.NodeHealth, now time.Time, stale time.Duration) (string, bool) {
	if n.Metrics == nil || n.Metrics.At.IsZero() {
		return "-", false
	}
	age := now.Sub(n.Metrics.At)
	if age > stale {
		return ztunnel.Age(age) + staleMark, true
	}
	return ztunnel.Age(age), false
}

// staleMark follows the age of a stale reading; like the state symbols it
// carries the meaning without colour.
const staleMark = "!"

// staleAfter is the age from which a reading counts as stale.
func (m *Model) staleAfter() time.Duration { return staleIntervals * m.opts.Interval }

func ztunnelCell(n *ztunnel.NodeHealth, _ time.Time) string {
	z := n.Ztunnel
	switch {
	case z == nil:
		return "none"
	case z.Waiting != "":
		return "CrashLoop"
	case z.Phase != "Running":
		return z.Phase
	case !z.Ready || (n.Probe != nil && !n.Probe.Ready):
		return "NotReady"
	}
	return "ready"
}

func rate(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case v < 10000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return fmt.Sprintf("%.0fk", v/1000)
}

// Bytes formats a byte count (or rate) in binary units: 512, 1.5K, 12M.
func Bytes(v float64) string {
	units := []string{"", "K", "M", "G", "T"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 || v >= 10 {
		return fmt.Sprintf("%.0f%s", v, units[i])
	}
	return fmt.Sprintf("%.1f%s", v, units[i])
}

// layout picks the columns that fit width and their widths.
func (m *Model) layout() []column {
	nodeW := 4
	for _, r := range m.rows[m.offset:min(len(m.rows), m.offset+m.tableHeight())] {
		nodeW = max(nodeW, len(r.Node))
	}
	nodeW = min(nodeW, 40)
	cols := make([]column, len(columns))
	copy(cols, columns)
	cols[1].width = nodeW
	const minReason = 30
	for {
		used := 0
		for _, c := range cols {
			if c.width > 0 {
				used += c.width + 2
			}
		}
		if m.width-used >= minReason {
			cols[len(cols)-1].width = m.width - used
			return cols
		}
		// Drop the most expendable column left.
		worst, at := 0, -1
		for i, c := range cols {
			if c.drop > worst {
				worst, at = c.drop, i
			}
		}
		if at < 0 {
			cols[len(cols)-1].width = max(minReason, m.width-used)
			return cols
		}
		cols = append(cols[:at], cols[at+1:]...)
	}
}

func pad(s string, w int, right bool) string {
	sw := width(s)
	if sw > w {
		return ansi.Truncate(s, w, "…")
	}
	if right {
		return strings.Repeat(" ", w-sw) + s
	}
	return s + strings.Repeat(" ", w-sw)
}

// fit cuts a line to the terminal width.
func (m *Model) fit(s string) string {
	if width(s) > m.width {
		return ansi.Truncate(s, m.width, "…")
	}
	return s
}

func (m *Model) header() string {
	cluster := m.opts.Cluster
	istio := "unknown"
	var t ztunnel.Totals
	if m.snap != nil {
		if m.snap.Cluster != "" {
			cluster = m.snap.Cluster
		}
		if m.snap.IstioVersion != "" {
			istio = m.snap.IstioVersion
		}
		t = m.snap.Totals
	}
	if cluster == "" {
		cluster = "(current context)"
	}
	counts := fmt.Sprintf("%s%d %s%d %s%d %s%d",
		paintState[ztunnel.StateHealthy].paint(ztunnel.StateHealthy.Symbol()), t.Healthy,
		paintState[ztunnel.StateWarning].paint(ztunnel.StateWarning.Symbol()), t.Warning,
		paintState[ztunnel.StateUnhealthy].paint(ztunnel.StateUnhealthy.Symbol()), t.Unhealthy,
		paintState[ztunnel.StateUnknown].paint(ztunnel.StateUnknown.Symbol()), t.Unknown)
	return m.fit(fmt.Sprintf("%s · %s · Istio %s · %d nodes %s · %d ztunnels · %d captured pods",
		paintTitle.paint("kubectl ambient"), cluster, istio, t.Nodes, counts, t.Ztunnels, t.Captured))
}

// status is the second line: the connection state, or sort and filter, and
// the SEEN column's legend when it shows a stale row.
func (m *Model) status(seenShown bool) string {
	switch {
	case m.connErr != nil:
		since := ""
		if m.snap != nil {
			since = "; showing data from " + m.snap.Time.Format("15:04:05")
		}
		return m.fit(paintError.paint("✗ cluster unreachable, retrying"+since+": ") + m.connErr.Error())
	case m.closed:
		return m.fit(paintError.paint("✗ watcher stopped; press q to quit"))
	case m.connecting && m.snap == nil:
		return m.fit(paintMuted.paint("… connecting to the cluster"))
	}
	s := "sort: " + ztunnel.SortOrders[m.sortIdx]
	if m.filter != "" {
		s += fmt.Sprintf(" · filter: %q (%d of %d)", m.filter, len(m.rows), len(m.snap.Nodes))
	}
	if m.snap != nil {
		s += " · updated " + m.snap.Time.Format("15:04:05")
		for _, r := range m.visibleRows() {
			if !seenShown {
				break
			}
			if _, stale := seen(r, m.snap.Time, m.staleAfter()); stale {
				s += fmt.Sprintf(" · SEEN %s: read over %s ago", staleMark, ztunnel.Age(m.staleAfter()))
				break
			}
		}
	}
	return paintMuted.paint(m.fit(s))
}

func (m *Model) footer(hints string) string {
	if m.filtering {
		return m.fit("/" + m.filter + "█  " + paintMuted.paint("enter apply · esc clear"))
	}
	return paintMuted.paint(m.fit(hints))
}

func (m *Model) viewTable() string {
	var b strings.Builder
	b.WriteString(m.header())
	b.WriteByte('\n')
	cols := m.layout()
	seenShown := false
	for _, c := range cols {
		seenShown = seenShown || c.title == "SEEN"
	}
	b.WriteString(m.status(seenShown))
	b.WriteByte('\n')
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = pad(c.title, c.width, c.right)
	}
	b.WriteString(paintColumns.paint(m.fit(strings.Join(titles, "  "))))
	b.WriteByte('\n')
	h := m.tableHeight()
	now := time.Now()
	if m.snap != nil {
		now = m.snap.Time
	}
	lines := 0
	end := min(len(m.rows), m.offset+h)
	cells := make([]string, len(cols))
	stale := m.staleAfter()
	for i := m.offset; i < end; i++ {
		n := m.rows[i]
		for j, c := range cols {
			switch c.title {
			case "NODE":
				cells[j] = pad(n.Node, c.width, false)
				continue
			case "SEEN":
				txt, old := seen(n, now, stale)
				cells[j] = pad(txt, c.width, c.right)
				if old && i != m.cursor {
					// Not on the cursor's row: a reset inside it would
					// end its reverse video.
					cells[j] = paintState[ztunnel.StateWarning].paint(cells[j])
				}
				continue
			}
			cells[j] = pad(c.cell(n, now), c.width, c.right)
		}
		line := strings.Join(cells, "  ")
		if i == m.cursor {
			line = paintSelected.paint(m.fit(line))
		} else if fitted := m.fit(line); strings.HasPrefix(fitted, cells[0]) {
			// Colour the state cell; the symbol and word carry the meaning.
			line = paintState[n.State].paint(cells[0]) + fitted[len(cells[0]):]
		} else {
			line = fitted
		}
		b.WriteString(line)
		b.WriteByte('\n')
		lines++
	}
	if m.snap != nil && len(m.rows) == 0 {
		b.WriteString(paintMuted.paint("  no nodes match"))
		b.WriteByte('\n')
		lines++
	}
	for ; lines < h; lines++ {
		b.WriteByte('\n')
	}
	pos := ""
	if len(m.rows) > 0 {
		pos = fmt.Sprintf("%d/%d  ", m.cursor+1, len(m.rows))
	}
	b.WriteString(m.footer(pos + "↑↓/jk move · enter detail · l logs · / filter · s sort · ? help · q quit"))
	return b.String()
}

// window cuts body lines to the scrollable area and pads it.
func (m *Model) window(lines []string) string {
	h := m.bodyHeight() - 1
	scroll := min(m.scroll, max(0, len(lines)-h))
	var b strings.Builder
	end := min(len(lines), scroll+h)
	n := 0
	for _, l := range lines[scroll:end] {
		b.WriteString(m.fit(l))
		b.WriteByte('\n')
		n++
	}
	for ; n < h; n++ {
		b.WriteByte('\n')
	}
	return b.String()
}

func (m *Model) node(name string) *ztunnel.NodeHealth {
	if m.snap == nil {
		return nil
	}
	for i := range m.snap.Nodes {
		if m.snap.Nodes[i].Node == name {
			return &m.snap.Nodes[i]
		}
	}
	return nil
}

func (m *Model) viewDetail() string {
	return m.fit(paintTitle.paint("node "+m.detailNode)+"  "+paintMuted.paint("workloads, certificates, recent access log")) + "\n" +
		m.window(m.detailLines()) + m.footer("↑↓/jk scroll · l logs · r reload · esc back · ? help · q quit")
}

// detailLines renders the detail body; Update uses its length to bound scrolling.
func (m *Model) detailLines() []string {
	now := time.Now()
	if m.snap != nil {
		now = m.snap.Time
	}
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	n := m.node(m.detailNode)
	if n == nil {
		add("node %s is gone from the cluster", m.detailNode)
	} else {
		add("%s  %s", paintState[n.State].paint(stateLabel(n.State)), n.Summary())
		for _, r := range n.Reasons {
			add("  %s %s %s", paintState[r.Severity].paint(r.Severity.Symbol()), r.Code+":", r.Message)
		}
		var conds []string
		for _, c := range n.Conditions {
			conds = append(conds, c.Type+"="+c.Status)
		}
		add("node      ready=%t schedulable=%t  %s", n.NodeReady, n.Schedulable, strings.Join(conds, " "))
		if z := n.Ztunnel; z != nil {
			probe := "-"
			if n.Probe != nil {
				probe = "ready"
				if !n.Probe.Ready {
					probe = "not ready " + n.Probe.Error
					if n.Probe.Status != 0 {
						probe = fmt.Sprintf("not ready (%d)", n.Probe.Status)
					}
				}
			}
			last := ""
			if z.LastRestartAt != nil {
				last = fmt.Sprintf(" (last %s ago, %s)", ztunnel.Age(now.Sub(*z.LastRestartAt)), z.LastRestartReason)
			}
			add("ztunnel   %s/%s %s · pod ready=%t · /healthz/ready %s · %d restarts%s · %s · age %s",
				z.Namespace, z.Name, z.Phase, z.Ready, probe, z.Restarts, last, z.Version, ztunnel.Age(now.Sub(z.Created)))
		} else {
			add("ztunnel   none")
		}
		if mt := n.Metrics; mt != nil {
			add("proxies   %.0f active · %.0f pending", mt.ActiveProxies, mt.PendingProxies)
		}
		if r := n.Rates; r != nil {
			add("traffic   %s conn/s opened · %s closed · %s failed · %sB/s · %.0f xDS disconnects (over %s)",
				rate(r.OpenedPerSec), rate(r.ClosedPerSec), rate(r.FailedPerSec), Bytes(r.BytesPerSec), r.XDSTerminations, ztunnel.Age(r.Window))
		} else if n.ScrapeError != "" {
			add("traffic   metrics unavailable: %s", n.ScrapeError)
		}
		add("pods      %d enrolled · %d captured · %d pending · %d with sidecars", n.Pods.Enrolled, n.Pods.Captured, n.Pods.Pending, n.Pods.Sidecar)
		if n.Ztunnel != nil {
			add("%s", m.readLine(n, now))
		}
	}
	add("")
	switch {
	case m.loading:
		add("reading config_dump and access log…")
	case m.detailErr != nil:
		add("%s", paintError.paint("✗ "+m.detailErr.Error()))
	case m.detail != nil:
		d := m.detail
		for _, e := range d.Errors {
			add("%s", paintError.paint("✗ "+e))
		}
		add("%s", paintTitle.paint(fmt.Sprintf("WORKLOADS (%d)", len(d.Workloads))))
		for _, w := range d.Workloads {
			add("  %-20s %-28s %-14s %-16s %-6s %-8s %s", w.Namespace, w.Name, w.ServiceAccount, strings.Join(w.Addresses, ","), w.Protocol, w.Status, proxyState(w.ProxyState))
		}
		add("")
		add("%s", paintTitle.paint(fmt.Sprintf("CERTIFICATES (%d)", len(d.Certificates))))
		for _, c := range d.Certificates {
			st, exp := certState(c, now)
			add("  %s %-12s %-48s %s", paintState[st].paint(st.Symbol()), c.State, c.Identity, exp)
		}
		add("")
		add("%s", paintTitle.paint(fmt.Sprintf("RECENT ACCESS LOG (%d)", len(d.AccessLog))))
		for i := len(d.AccessLog) - 1; i >= 0; i-- {
			e := d.AccessLog[i]
			sec := "plaintext"
			if e.MTLS {
				sec = "mTLS"
			}
			if e.Error != "" {
				sec = "error: " + e.Error
			}
			add("  %s %-8s %s/%s → %s/%s  %s  sent %s recv %s  %s", e.Time.UTC().Format("15:04:05"), e.Direction,
				e.SrcNamespace, e.SrcWorkload, e.DstNamespace, e.DstWorkload, e.Duration, e.BytesSent, e.BytesReceived, sec)
		}
	}
	return lines
}

// readLine says in the detail view when the node's ztunnel was last read.
func (m *Model) readLine(n *ztunnel.NodeHealth, now time.Time) string {
	txt, stale := seen(n, now, m.staleAfter())
	switch {
	case txt == "-":
		return "read      never: no metrics from this ztunnel yet"
	case stale:
		return paintState[ztunnel.StateWarning].paint(fmt.Sprintf("read      %s ago (%s): stale, older than %d refresh intervals (%s)",
			ztunnel.Age(now.Sub(n.Metrics.At)), n.Metrics.At.Format("15:04:05"), staleIntervals, ztunnel.Age(m.staleAfter())))
	}
	return fmt.Sprintf("read      %s ago (%s)", txt, n.Metrics.At.Format("15:04:05"))
}

// proxyState renders ztunnel's in-pod proxy state of a workload; anything
// but Up (a proxy ztunnel has not started) is marked as a warning.
func proxyState(st string) string {
	switch {
	case st == "":
		return ""
	case strings.EqualFold(st, "Up"):
		return "proxy " + st
	default:
		return paintState[ztunnel.StateWarning].paint(ztunnel.StateWarning.Symbol() + " proxy " + st)
	}
}

func (m *Model) viewLogs() string {
	return m.fit(paintTitle.paint("logs of the ztunnel on "+m.detailNode)+"  "+paintMuted.paint(fmt.Sprintf("%d lines", len(m.logs)))) + "\n" +
		m.window(m.logLines()) + m.footer("↑↓/jk scroll · r reload · esc back · q quit")
}

func (m *Model) logLines() []string {
	var lines []string
	switch {
	case m.loading:
		lines = []string{"reading logs…"}
	case m.logsErr != nil:
		lines = []string{paintError.paint("✗ " + m.logsErr.Error())}
	default:
		lines = m.logs
	}
	return lines
}

var helpText = []string{
	"The table lists every node, sickest first. STATE is a symbol and a word:",
	"  ✓ healthy   ! warning   ✗ unhealthy   ? unknown (metrics unreachable)",
	"",
	"  ↑/k ↓/j      move              pgup/pgdown  page",
	"  g/home       first             G/end        last",
	"  /            filter by node, state or reason (enter keeps it, esc clears)",
	"  enter        node detail: workloads, certificates, recent access log",
	"  l            ztunnel logs of the node",
	"  s            sort: state → name → restarts → failures → pods",
	"  esc          back / clear filter",
	"  ?            this help",
	"  q, ctrl+c    quit",
	"",
	"Columns: ZTUNNEL pod state · RST restarts · PROXY active/pending proxies ·",
	"PODS captured/enrolled · CONN/S and FAIL/S connections per second · BYTES/S ·",
	"SEEN how long ago the ztunnel was read: - never, ! older than 3 refresh intervals.",
	"Rates come from two successive scrapes of :15020/metrics. Under the API budget",
	"(--max-api-rps) the rows on screen are read first, the others in turn.",
}

func (m *Model) viewHelp() string {
	return m.fit(paintTitle.paint("help")) + "\n" + m.window(helpText) + m.footer("esc back · q quit")
}

// certState is a certificate's state and expiry text in the node detail.
// It applies the one expiry rule (status and check use it too): warn at
// min(24h, half the lifetime), since Istio's workload certificates live 24 h
// and always have under a day left.
func certState(c ztunnel.Certificate, now time.Time) (ztunnel.State, string) {
	st := ztunnel.StateHealthy
	exp := "no expiry"
	if c.Expiration != nil {
		left := c.Expiration.Sub(now)
		exp = "expires in " + ztunnel.Age(left) + " (" + c.Expiration.UTC().Format("2006-01-02 15:04") + "Z)"
		switch ambient.CertExpiry(c.ValidFrom, c.Expiration, now, ambient.CertWarnLimit) {
		case ambient.CertExpired:
			exp, st = "expired "+ztunnel.Age(left)+" ago", ztunnel.StateUnhealthy
		case ambient.CertExpiring:
			st = ztunnel.StateWarning
		}
	}
	if !strings.EqualFold(c.State, "Available") {
		st = ztunnel.StateUnhealthy
	}
	return st, exp
}
