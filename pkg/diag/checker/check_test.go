package checker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func pass(context.Context) error { return nil }

func fail(msg string) func(context.Context) error {
	return func(context.Context) error { return errors.New(msg) }
}

func TestRunnerOrderAndStatuses(t *testing.T) {
	var seen []string
	checks := []Check{
		{ID: "a1", Category: "A", Description: "a1 ok", Run: pass},
		{ID: "b1", Category: "B", Description: "b1 warns", Severity: SeverityWarning, Hint: "fix b1", Run: fail("b1 broke")},
		{ID: "a2", Category: "A", Description: "a2 info", Run: func(context.Context) error { return Info("found %d", 3) }},
		{ID: "b2", Category: "B", Description: "b2 errs", Hint: "fix b2", Run: fail("b2 broke")},
		{ID: "b3", Category: "B", Description: "b3 n/a", Run: func(context.Context) error { return Skip("not here") }},
		{ID: "b4", Category: "B", Description: "b4 needs b2", Needs: []string{"b2"}, Run: pass},
		{ID: "b5", Category: "B", Description: "b5 panics", Run: func(context.Context) error { panic("boom") }},
	}
	r := &Runner{Observers: []Observer{ObserverFunc(func(res Result) { seen = append(seen, res.ID) })}}
	sum, err := r.Run(context.Background(), checks)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(seen, ","), "a1,a2,b1,b2,b3,b4,b5"; got != want {
		t.Fatalf("order %s, want %s", got, want)
	}
	want := map[string]Status{"a1": StatusPass, "a2": StatusPass, "b1": StatusWarning, "b2": StatusError, "b3": StatusSkipped, "b4": StatusSkipped, "b5": StatusError}
	for _, res := range sum.Results {
		if res.Status != want[res.ID] {
			t.Errorf("%s: status %s, want %s (%s)", res.ID, res.Status, want[res.ID], res.Message)
		}
	}
	byID := map[string]Result{}
	for _, res := range sum.Results {
		byID[res.ID] = res
	}
	if byID["a2"].Message != "found 3" || byID["a2"].Hint != "" {
		t.Errorf("info result %+v", byID["a2"])
	}
	if byID["b2"].Message != "b2 broke" || byID["b2"].Hint != "fix b2" {
		t.Errorf("error result %+v", byID["b2"])
	}
	if byID["b4"].SkippedBy != "b2" || byID["b3"].SkippedBy != "" {
		t.Errorf("skippedBy: b4=%q b3=%q", byID["b4"].SkippedBy, byID["b3"].SkippedBy)
	}
	if !strings.Contains(byID["b5"].Message, "panicked: boom") {
		t.Errorf("panic message %q", byID["b5"].Message)
	}
	if sum.Passed != 2 || sum.Warnings != 1 || sum.Errors != 2 || sum.Skipped != 2 {
		t.Errorf("counts %+v", sum)
	}
	if sum.OK(false) {
		t.Error("summary with errors reported OK")
	}
}

func TestRunnerFatalSkipsRest(t *testing.T) {
	ran := false
	checks := []Check{
		{ID: "api", Category: "K", Description: "api", Fatal: true, Run: fail("unreachable")},
		{ID: "later", Category: "L", Description: "later", Run: func(context.Context) error { ran = true; return nil }},
	}
	sum, err := (&Runner{}).Run(context.Background(), checks)
	if err != nil {
		t.Fatal(err)
	}
	if ran {
		t.Fatal("check after a failed fatal check ran")
	}
	if r := sum.Results[1]; r.Status != StatusSkipped || r.SkippedBy != "api" {
		t.Fatalf("later: %+v", r)
	}
}

func TestRunnerWarningsAsErrors(t *testing.T) {
	sum, err := (&Runner{}).Run(context.Background(), []Check{
		{ID: "w", Category: "C", Description: "w", Severity: SeverityWarning, Run: fail("meh")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.OK(false) || sum.OK(true) {
		t.Fatalf("OK(false)=%v OK(true)=%v, want true false", sum.OK(false), sum.OK(true))
	}
}

func TestRunnerRejectsBadLists(t *testing.T) {
	for name, checks := range map[string][]Check{
		"duplicate": {{ID: "x", Run: pass}, {ID: "x", Run: pass}},
		"no id":     {{Description: "nameless", Run: pass}},
		"forward":   {{ID: "x", Needs: []string{"y"}, Run: pass}, {ID: "y", Run: pass}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := (&Runner{}).Run(context.Background(), checks); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestRunnerCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sum, err := (&Runner{}).Run(ctx, []Check{{ID: "x", Category: "C", Description: "x", Run: pass}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Results[0].Status != StatusSkipped {
		t.Fatalf("status %s", sum.Results[0].Status)
	}
}

func TestTableAndJSON(t *testing.T) {
	var buf bytes.Buffer
	tbl := &TableObserver{W: &buf}
	sum, err := (&Runner{Observers: []Observer{tbl}}).Run(context.Background(), []Check{
		{ID: "a", Category: "alpha", Description: "a is fine", Run: pass},
		{ID: "b", Category: "beta", Description: "b is fine", Severity: SeverityWarning, Hint: "do b", Run: fail("line1\nline2")},
		{ID: "c", Category: "beta", Description: "c applies", Run: func(context.Context) error { return Skip("n/a") }},
		{ID: "d", Category: "beta", Description: "d needs b", Needs: []string{"b"}, Run: pass},
	})
	if err != nil {
		t.Fatal(err)
	}
	WriteSummary(&buf, sum, false)
	want := `alpha
-----
✓ a is fine

beta
----
‼ b is fine
    line1
    line2
    hint: do b
- d needs b
    skipped: b did not pass

Status check results are ‼ (1 passed, 1 warning, 0 errors, 2 skipped)
`
	if buf.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", buf.String(), want)
	}

	buf.Reset()
	if err := WriteJSON(&buf, sum, true); err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(buf.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Success || rep.Warnings != 1 || len(rep.Results) != 4 || rep.Results[1].Status != StatusWarning || rep.Results[1].Hint != "do b" {
		t.Fatalf("json report %+v", rep)
	}
}

func TestChanObserver(t *testing.T) {
	ch := make(chan Result, 2)
	if _, err := (&Runner{Observers: []Observer{ChanObserver(ch)}}).Run(context.Background(), []Check{
		{ID: "a", Category: "C", Description: "a", Run: pass},
		{ID: "b", Category: "C", Description: "b", Run: fail("x")},
	}); err != nil {
		t.Fatal(err)
	}
	close(ch)
	var ids []string
	for r := range ch {
		ids = append(ids, r.ID+"="+string(r.Status))
	}
	if got := strings.Join(ids, ","); got != "a=pass,b=error" {
		t.Fatalf("channel got %s", got)
	}
}

// ErrorHint adds the caller's fix to a failed check's own hint, and only to
// checks that failed with an error (not to passes, infos or skips).
func TestRunnerErrorHint(t *testing.T) {
	cond := errors.New("namespace not found")
	checks := []Check{
		{ID: "with-hint", Category: "A", Hint: "fix it", Run: func(context.Context) error { return fmt.Errorf("ns x: %w", cond) }},
		{ID: "no-hint", Category: "A", Run: func(context.Context) error { return fmt.Errorf("ns y: %w", cond) }},
		{ID: "other", Category: "A", Hint: "fix other", Run: fail("other broke")},
		{ID: "info", Category: "A", Run: func(context.Context) error { return Info("fine") }},
	}
	hint := func(err error) string {
		if errors.Is(err, cond) {
			return "pass --namespace"
		}
		return ""
	}
	sum, err := (&Runner{ErrorHint: hint}).Run(context.Background(), checks)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"with-hint": "fix it; pass --namespace", "no-hint": "pass --namespace", "other": "fix other", "info": ""}
	for _, r := range sum.Results {
		if r.Hint != want[r.ID] {
			t.Errorf("%s: hint %q, want %q", r.ID, r.Hint, want[r.ID])
		}
	}
}
