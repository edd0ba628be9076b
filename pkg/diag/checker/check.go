// Package check is the diagnostics framework behind `kubectl ambient precheck`
// and `kubectl ambient check`: checks are data (an ID, a category, a
// description, a severity, a hint and a function), a Runner runs them in
// order and reports each Result to Observers, and renderers (a grouped table,
// JSON) or the TUI consume the same results. Checks never print.
package checker

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Severity says how bad a failing check is.
type Severity string

// Severities. An error makes the command exit non-zero; a warning does so
// only with --warnings-as-errors.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Status is the outcome of one check.
type Status string

// Statuses a Result can carry.
const (
	StatusPass    Status = "pass"
	StatusWarning Status = "warning" // failed, severity warning
	StatusError   Status = "error"   // failed, severity error
	StatusSkipped Status = "skipped" // not applicable, or a check it needs did not pass
)

// Check is one diagnostic, described as data.
type Check struct {
	// ID is stable and unique within a run (kebab-case); JSON consumers and
	// Needs refer to it.
	ID string
	// Category groups checks in the table; categories run in the order they
	// first appear.
	Category string
	// Description is what a pass means, phrased as a statement
	// ("istiod is ready").
	Description string
	// Severity of a failure; SeverityError when empty.
	Severity Severity
	// Hint tells the user what to do when the check fails.
	Hint string
	// Fatal stops the run when the check fails: every later check is skipped
	// (for example when the API server cannot be reached at all).
	Fatal bool
	// Needs lists IDs of earlier checks that must pass; if one did not, this
	// check is skipped and the result names it.
	Needs []string
	// Run performs the check. nil passes; an error fails it with the error's
	// text as the message. Info(...) passes with a detail line; Skip(...)
	// marks the check not applicable.
	Run func(ctx context.Context) error
}

// Result is the outcome of one check, what observers and renderers receive.
type Result struct {
	ID          string   `json:"id"`
	Category    string   `json:"category"`
	Description string   `json:"description"`
	Severity    Severity `json:"severity"`
	Status      Status   `json:"status"`
	// Message is the failure text, the pass detail or the skip reason.
	Message string `json:"message,omitempty"`
	// Hint is set on failed checks only.
	Hint string `json:"hint,omitempty"`
	// SkippedBy names the check whose failure caused this skip; empty for
	// checks that were simply not applicable.
	SkippedBy string `json:"skippedBy,omitempty"`
	// Duration is how long the check took; renderers that must be stable
	// (goldens) ignore it.
	Duration time.Duration `json:"durationNanos"`
}

// Failed reports whether the result is a warning or an error.
func (r Result) Failed() bool { return r.Status == StatusWarning || r.Status == StatusError }

// outcome is the error type behind Info, Skip and Warn.
type outcome struct {
	status Status
	msg    string
}

func (o *outcome) Error() string { return o.msg }

// Info returns a passing outcome that carries a detail line, for checks that
// also report what they found ("platform: gke").
func Info(format string, args ...any) error {
	return &outcome{status: StatusPass, msg: fmt.Sprintf(format, args...)}
}

// Skip returns an outcome marking the check not applicable here ("Cilium is
// not installed"). Skipped checks neither pass nor fail.
func Skip(format string, args ...any) error {
	return &outcome{status: StatusSkipped, msg: fmt.Sprintf(format, args...)}
}

// Warn returns a warning outcome whatever the check's severity, for a
// check that cannot reach a verdict but has something to say ("image tag
// latest is not a version; skew cannot be judged").
func Warn(format string, args ...any) error {
	return &outcome{status: StatusWarning, msg: fmt.Sprintf(format, args...)}
}

// Observer receives each result as soon as its check finishes.
type Observer interface {
	Observe(Result)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Result)

// Observe calls f.
func (f ObserverFunc) Observe(r Result) { f(r) }

// Summary counts the results of a run.
type Summary struct {
	Results  []Result `json:"results"`
	Passed   int      `json:"passed"`
	Warnings int      `json:"warnings"`
	Errors   int      `json:"errors"`
	Skipped  int      `json:"skipped"`
}

// OK reports whether the run succeeded: no errors, and no warnings when
// warningsAsErrors is set.
func (s Summary) OK(warningsAsErrors bool) bool {
	return s.Errors == 0 && (!warningsAsErrors || s.Warnings == 0)
}

// Runner runs checks in order and reports to its observers.
type Runner struct {
	Observers []Observer
	// Now is the clock, for tests; time.Now when nil.
	Now func() time.Time
	// ErrorHint, when set, may add to a failed check's hint a fix the
	// check itself cannot name (the command layer's flags); "" adds nothing.
	ErrorHint func(error) string
}

// ErrDuplicateID is returned when two checks share an ID.
var ErrDuplicateID = errors.New("duplicate check id")

// Run executes checks grouped by category (categories in order of first
// appearance, checks in their given order within a category). It returns an
// error only for a malformed check list; check failures are in the Summary.
// A cancelled context skips the remaining checks.
func (r *Runner) Run(ctx context.Context, checks []Check) (Summary, error) {
	ordered, err := order(checks)
	if err != nil {
		return Summary{}, err
	}
	now := r.Now
	if now == nil {
		now = time.Now
	}
	var sum Summary
	status := make(map[string]Status, len(ordered))
	fatal := ""
	for _, c := range ordered {
		res := Result{ID: c.ID, Category: c.Category, Description: c.Description, Severity: c.severity()}
		switch blocker := firstUnmet(c.Needs, status); {
		case fatal != "":
			res.Status, res.SkippedBy = StatusSkipped, fatal
			res.Message = fmt.Sprintf("skipped: %s failed", fatal)
		case blocker != "":
			res.Status, res.SkippedBy = StatusSkipped, blocker
			res.Message = fmt.Sprintf("skipped: %s did not pass", blocker)
		case ctx.Err() != nil:
			res.Status = StatusSkipped
			res.Message = fmt.Sprintf("skipped: %v", ctx.Err())
		default:
			start := now()
			r.exec(ctx, c, &res)
			res.Duration = now().Sub(start)
			if c.Fatal && res.Failed() {
				fatal = c.ID
			}
		}
		status[c.ID] = res.Status
		sum.add(res)
		for _, o := range r.Observers {
			o.Observe(res)
		}
	}
	return sum, nil
}

// exec runs one check, turning a panic into an error so a buggy check cannot
// take the whole command down.
func (r *Runner) exec(ctx context.Context, c Check, res *Result) {
	defer func() {
		if p := recover(); p != nil {
			res.Status = failStatus(res.Severity)
			res.Message = fmt.Sprintf("check %s panicked: %v", c.ID, p)
			res.Hint = c.Hint
		}
	}()
	if c.Run == nil {
		res.Status, res.Message = StatusSkipped, "no check function"
		return
	}
	err := c.Run(ctx)
	var o *outcome
	switch {
	case err == nil:
		res.Status = StatusPass
	case errors.As(err, &o):
		res.Status, res.Message = o.status, o.msg
		if o.status == StatusWarning {
			res.Hint = c.Hint
		}
	default:
		res.Status, res.Message, res.Hint = failStatus(res.Severity), err.Error(), c.Hint
		if r.ErrorHint != nil {
			res.Hint = joinHints(res.Hint, r.ErrorHint(err))
		}
	}
}

func failStatus(s Severity) Status {
	if s == SeverityWarning {
		return StatusWarning
	}
	return StatusError
}

func (c Check) severity() Severity {
	if c.Severity == "" {
		return SeverityError
	}
	return c.Severity
}

func (s *Summary) add(r Result) {
	s.Results = append(s.Results, r)
	switch r.Status {
	case StatusPass:
		s.Passed++
	case StatusWarning:
		s.Warnings++
	case StatusError:
		s.Errors++
	case StatusSkipped:
		s.Skipped++
	}
}

func firstUnmet(needs []string, status map[string]Status) string {
	for _, id := range needs {
		if status[id] != StatusPass {
			return id
		}
	}
	return ""
}

// order groups checks by category, keeping first-appearance order, and
// validates IDs and Needs (a check may only need an earlier one).
func order(checks []Check) ([]Check, error) {
	var cats []string
	byCat := map[string][]Check{}
	seen := map[string]bool{}
	for _, c := range checks {
		if c.ID == "" {
			return nil, fmt.Errorf("check %q has no id", c.Description)
		}
		if seen[c.ID] {
			return nil, fmt.Errorf("%w: %s", ErrDuplicateID, c.ID)
		}
		seen[c.ID] = true
		if _, ok := byCat[c.Category]; !ok {
			cats = append(cats, c.Category)
		}
		byCat[c.Category] = append(byCat[c.Category], c)
	}
	out := make([]Check, 0, len(checks))
	before := map[string]bool{}
	for _, cat := range cats {
		for _, c := range byCat[cat] {
			for _, n := range c.Needs {
				if !before[n] {
					return nil, fmt.Errorf("check %s needs %s, which is not an earlier check", c.ID, n)
				}
			}
			before[c.ID] = true
			out = append(out, c)
		}
	}
	return out, nil
}

// joinHints joins two hints with "; ", either of which may be empty.
func joinHints(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}
