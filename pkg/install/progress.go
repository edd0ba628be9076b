package install

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// Progress reports each component's steps on stderr. On a terminal it keeps
// one live line per running component (a spinner with the elapsed time);
// otherwise it prints one plain line per step, which reads well in CI logs.
type Progress struct {
	w   io.Writer
	tty bool

	mu      sync.Mutex
	comp    string
	msg     string
	started time.Time
	stop    chan struct{}
	done    chan struct{}
}

// NewProgress writes to w; the live line is used only when w is a terminal.
func NewProgress(w io.Writer) *Progress {
	p := &Progress{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

// Start begins a component's step line.
func (p *Progress) Start(comp, msg string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.comp, p.msg, p.started = comp, msg, time.Now()
	p.mu.Unlock()
	if !p.tty {
		_, _ = fmt.Fprintf(p.w, "%s: %s\n", comp, msg)
		return
	}
	if p.stop == nil {
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go p.spin()
	}
}

// Update changes the running step's message (on a terminal only: plain
// output stays one line per step).
func (p *Progress) Update(msg string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.msg = msg
	p.mu.Unlock()
}

// Done ends the step with a final line: ok true prints a check mark.
func (p *Progress) Done(ok bool, msg string) {
	if p == nil {
		return
	}
	p.stopSpin()
	p.mu.Lock()
	comp, el := p.comp, time.Since(p.started)
	p.mu.Unlock()
	mark := "✓"
	if !ok {
		mark = "✗"
	}
	if p.tty {
		_, _ = fmt.Fprintf(p.w, "\r\033[K%s %s: %s (%s)\n", mark, comp, msg, round(el))
		return
	}
	_, _ = fmt.Fprintf(p.w, "%s %s: %s (%s)\n", mark, comp, msg, round(el))
}

// Note prints a line of its own (a warning or a decision).
func (p *Progress) Note(format string, args ...any) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		_, _ = fmt.Fprint(p.w, "\r\033[K")
	}
	_, _ = fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *Progress) stopSpin() {
	if p.stop != nil {
		close(p.stop)
		<-p.done
		p.stop, p.done = nil, nil
	}
}

func (p *Progress) spin() {
	defer close(p.done)
	frames := []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		p.mu.Lock()
		_, _ = fmt.Fprintf(p.w, "\r\033[K%s %s: %s %s", frames[i%len(frames)], p.comp, p.msg, round(time.Since(p.started)))
		p.mu.Unlock()
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
	}
}

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}
