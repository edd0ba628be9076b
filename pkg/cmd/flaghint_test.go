package cmd

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/fixtures"
)

// errorConstructors are the calls whose string arguments become an error's
// text, by import path and function name.
var errorConstructors = map[string]map[string]bool{
	"fmt":    {"Errorf": true},
	"errors": {"New": true},
}

// flagInErrors returns "line: literal" for every string literal passed to an
// error constructor in src that names a command-line flag ("--" followed by
// a letter).
func flagInErrors(name string, src []byte) ([]string, error) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	// Local import names, so an aliased fmt or errors is still seen.
	local := map[string]string{}
	for _, imp := range file.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		n := filepath.Base(path)
		if imp.Name != nil {
			n = imp.Name.Name
		}
		local[n] = path
	}
	var found []string
	ast.Inspect(file, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		pkg, ok := sel.X.(*ast.Ident)
		if !ok || !errorConstructors[local[pkg.Name]][sel.Sel.Name] {
			return true
		}
		for _, arg := range call.Args {
			ast.Inspect(arg, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(lit.Value)
				if err == nil && namesFlag(s) {
					found = append(found, strconv.Itoa(fset.Position(lit.Pos()).Line)+": "+lit.Value)
				}
				return true
			})
		}
		return true
	})
	return found, nil
}

// namesFlag says whether s holds "--" directly followed by a letter.
func namesFlag(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		c := s[i+2]
		if s[i] == '-' && s[i+1] == '-' && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return true
		}
	}
	return false
}

// TestLibraryErrorsNameNoFlags fails when non-test code under pkg/ outside
// the command layer builds an error whose text names a flag: libraries are
// called by other code too, where flags don't exist. Return a sentinel and
// give it a hint in flagHints instead.
func TestLibraryErrorsNameNoFlags(t *testing.T) {
	scanned := 0
	err := fixtures.EachProductGoFile("pkg", func(rel string) bool { return rel == "pkg/cmd" }, func(rel string, src []byte) error {
		found, err := flagInErrors(rel, src)
		if err != nil {
			return err
		}
		scanned++
		for _, f := range found {
			t.Errorf("%s:%s: a library error names a flag; return a sentinel and map it in pkg/cmd's flagHints", rel, f)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The walk must have seen the libraries; an empty walk proves nothing.
	if scanned < 50 {
		t.Fatalf("scanned only %d files under pkg", scanned)
	}
}

// TestFlagInErrorsDetects proves the guard can fail: it must see a flag in
// each constructor, through an import alias and inside a concatenation, and
// leave prose, comments, non-error strings and lone dashes alone.
func TestFlagInErrorsDetects(t *testing.T) {
	src := `package x

import (
	stderrors "errors"
	"fmt"
)

// pass --force in a comment is fine.
func f(err error) error {
	_ = fmt.Sprintf("pass --force")
	_ = fmt.Errorf("range 1--2 and -- alone and --9")
	_ = stderrors.New("pass " + "--force")
	return fmt.Errorf("%w; check --context", err)
}
`
	found, err := flagInErrors("x.go", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`12: "--force"`, `13: "%w; check --context"`}
	if strings.Join(found, "\n") != strings.Join(want, "\n") {
		t.Errorf("found %q, want %q", found, want)
	}
}

// TestFlagHints checks the table itself: every condition is a distinct
// sentinel and every hint names a flag or a command (else it belongs in the
// library's own message).
func TestFlagHints(t *testing.T) {
	seen := map[error]bool{}
	for _, h := range flagHints {
		if h.cond == nil || seen[h.cond] {
			t.Errorf("condition %v is nil or listed twice", h.cond)
		}
		seen[h.cond] = true
		if !namesFlag(h.hint) {
			t.Errorf("hint %q for %v names no flag", h.hint, h.cond)
		}
		if h.hint != strings.TrimSpace(h.hint) || strings.HasSuffix(h.hint, ".") {
			t.Errorf("hint %q: no surrounding space, no trailing period", h.hint)
		}
	}
	err := withFlagHints(SilentError{Code: ExitFailure})
	if err.Error() != "exit status 1" {
		t.Errorf("a SilentError got a hint: %v", err)
	}
	base := errors.New("boom")
	if err := withFlagHints(base); err != base { //nolint:errorlint // identity: no hint means the same error back
		t.Errorf("an unmatched error was wrapped: %v", err)
	}
}
