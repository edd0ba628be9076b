package ambient

import (
	"go/scanner"
	"go/token"
	"strconv"
	"strings"
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/fixtures"
)

// TestOneDefinition fails when non-test Go code outside this package spells
// the redirection annotation or the dataplane-mode label as a string literal
// (the key itself, or a selector such as "key=value"): those facts are
// stated once, here. Prose that mentions them (help text, comments) is not
// a definition and is allowed.
func TestOneDefinition(t *testing.T) {
	facts := []string{AnnotationRedirection, LabelDataplaneMode}
	var found []string
	err := fixtures.EachProductGoFile(".", func(rel string) bool { return rel == "pkg/ambient" }, func(rel string, src []byte) error {
		for _, lit := range stringLiterals(src) {
			for _, f := range facts {
				if lit.value == f || strings.HasPrefix(lit.value, f+"=") {
					found = append(found, rel+":"+strconv.Itoa(lit.line)+": "+strconv.Quote(lit.value))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("%s: use package ambient's constant instead", f)
	}
}

type literal struct {
	value string
	line  int
}

// stringLiterals returns the unquoted string literals of a Go file.
func stringLiterals(src []byte) []literal {
	fset := token.NewFileSet()
	file := fset.AddFile("", fset.Base(), len(src))
	var s scanner.Scanner
	s.Init(file, src, nil, 0)
	var out []literal
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			return out
		}
		if tok != token.STRING {
			continue
		}
		if v, err := strconv.Unquote(lit); err == nil {
			out = append(out, literal{value: v, line: fset.Position(pos).Line})
		}
	}
}

// TestOneDefinitionCatches keeps the scanner honest: a literal definition
// and a selector are found, prose is not.
func TestOneDefinitionCatches(t *testing.T) {
	src := []byte("package x\nconst a = \"" + LabelDataplaneMode + "\"\nvar s = `" + AnnotationRedirection + "=enabled`\n// " + LabelDataplaneMode + " in a comment\nvar h = \"label " + LabelDataplaneMode + "=ambient in help\"\n")
	var hits int
	for _, lit := range stringLiterals(src) {
		for _, f := range []string{AnnotationRedirection, LabelDataplaneMode} {
			if lit.value == f || strings.HasPrefix(lit.value, f+"=") {
				hits++
			}
		}
	}
	if hits != 2 {
		t.Fatalf("found %d definitions, want 2", hits)
	}
}
