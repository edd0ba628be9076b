// Package golden compares test output with files under a package's testdata
// folder. One flag rewrites them all: go test ./pkg/... -update.
//
// Test-only: nothing outside _test.go files and internal/testing imports it.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with the output of this run")

// Updating reports whether the run was asked to rewrite golden files.
func Updating() bool { return *update }

// Assert compares got with the file at path (relative to the test's package
// folder, normally under testdata/), or writes it when -update is set.
func Assert(t testing.TB, path string, got []byte) {
	t.Helper()
	want := read(t, path, got)
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (rerun with -update if the change is intended)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// AssertString is Assert for strings.
func AssertString(t testing.TB, path, got string) {
	t.Helper()
	Assert(t, path, []byte(got))
}

// AssertYAML compares got and the golden file as YAML documents (semantically:
// key order and formatting do not matter), or writes it when -update is set.
func AssertYAML(t testing.TB, path string, got []byte) {
	t.Helper()
	want := read(t, path, got)
	gotDocs, err := docs(got)
	if err != nil {
		t.Fatalf("output is not YAML: %v", err)
	}
	wantDocs, err := docs(want)
	if err != nil {
		t.Fatalf("%s is not YAML: %v", path, err)
	}
	if !bytes.Equal(gotDocs, wantDocs) {
		t.Errorf("output differs from %s as YAML (rerun with -update if the change is intended)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func read(t testing.TB, path string, got []byte) []byte {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	return want
}

// docs normalises a YAML stream to canonical JSON, one document per line.
func docs(b []byte) ([]byte, error) {
	var out bytes.Buffer
	for _, d := range bytes.Split(b, []byte("\n---")) {
		j, err := yaml.YAMLToJSON(d)
		if err != nil {
			return nil, err
		}
		out.Write(j)
		out.WriteByte('\n')
	}
	return out.Bytes(), nil
}
