package checker

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Marks the table renderer puts in front of each result.
const (
	MarkPass    = "✓"
	MarkWarning = "‼"
	MarkError   = "×"
	MarkSkipped = "-"
)

// Mark returns the table mark for a status.
func Mark(s Status) string {
	switch s {
	case StatusPass:
		return MarkPass
	case StatusWarning:
		return MarkWarning
	case StatusError:
		return MarkError
	}
	return MarkSkipped
}

// TableObserver writes results as they arrive, grouped under a header per
// category, with the message and hint of failed checks indented below. It
// prints no timings, so its output is stable enough for golden files.
type TableObserver struct {
	W io.Writer
	// ShowSkipped also prints checks that were not applicable; checks
	// skipped because another one failed are always printed.
	ShowSkipped bool

	category string
	started  bool
	err      error
}

// Observe implements Observer.
func (t *TableObserver) Observe(r Result) {
	if r.Status == StatusSkipped && r.SkippedBy == "" && !t.ShowSkipped {
		return
	}
	if !t.started || r.Category != t.category {
		if t.started {
			t.printf("\n")
		}
		t.printf("%s\n", r.Category)
		t.printf("%s\n", strings.Repeat("-", max(len([]rune(r.Category)), 1)))
		t.category, t.started = r.Category, true
	}
	t.printf("%s %s\n", Mark(r.Status), r.Description)
	if r.Message != "" {
		for _, line := range strings.Split(strings.TrimRight(r.Message, "\n"), "\n") {
			t.printf("    %s\n", line)
		}
	}
	if r.Hint != "" {
		t.printf("    hint: %s\n", r.Hint)
	}
}

// Err returns the first error writing to W, if any: a table that could not
// be written (a closed pipe) must not look like a passing run.
func (t *TableObserver) Err() error { return t.err }

func (t *TableObserver) printf(format string, args ...any) {
	if t.err != nil {
		return
	}
	_, t.err = fmt.Fprintf(t.W, format, args...)
}

// WriteSummary prints the closing line of a table: the overall mark and the
// counts.
func WriteSummary(w io.Writer, s Summary, warningsAsErrors bool) {
	mark := MarkPass
	switch {
	case !s.OK(warningsAsErrors):
		mark = MarkError
	case s.Warnings > 0:
		mark = MarkWarning
	}
	fmt.Fprintf(w, "\nStatus check results are %s (%d passed, %d %s, %d %s, %d skipped)\n",
		mark, s.Passed, s.Warnings, plural(s.Warnings, "warning"), s.Errors, plural(s.Errors, "error"), s.Skipped)
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// Report is the JSON document `-o json` prints.
type Report struct {
	// Success is the same verdict as the exit code.
	Success  bool     `json:"success"`
	Passed   int      `json:"passed"`
	Warnings int      `json:"warnings"`
	Errors   int      `json:"errors"`
	Skipped  int      `json:"skipped"`
	Results  []Result `json:"results"`
}

// NewReport turns a summary into the JSON report.
func NewReport(s Summary, warningsAsErrors bool) Report {
	res := s.Results
	if res == nil {
		res = []Result{}
	}
	return Report{
		Success: s.OK(warningsAsErrors),
		Passed:  s.Passed, Warnings: s.Warnings, Errors: s.Errors, Skipped: s.Skipped,
		Results: res,
	}
}

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, s Summary, warningsAsErrors bool) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(NewReport(s, warningsAsErrors))
}

// ChanObserver forwards every result to ch, for consumers such as the TUI
// that read results from a channel. It blocks while ch is full.
func ChanObserver(ch chan<- Result) Observer {
	return ObserverFunc(func(r Result) { ch <- r })
}
