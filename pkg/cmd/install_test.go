package cmd

import (
	"os"
	"strings"
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/fixtures"
)

// TestInstallDryRunMatchesGolden runs the command a GitOps user would: the
// output must be exactly the golden stream pkg/install checks.
func TestInstallDryRunMatchesGolden(t *testing.T) {
	out, errOut, err := runRoot(t, "install", "--dry-run", "-o", "yaml", "--charts", fixtures.Path("charts"), "--set", "ztunnel.logLevel=debug")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	want, err := os.ReadFile("testdata/install/dry-run-generic.golden")
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("install --dry-run -o yaml differs from pkg/cmd/testdata/install/dry-run-generic.golden")
	}
	if !strings.Contains(errOut, "platform: generic") {
		t.Errorf("platform decision not printed on stderr: %q", errOut)
	}
}

func TestInstallFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown platform", []string{"install", "--platform", "plan9"}, ExitUsage, `unknown --platform "plan9"`},
		{"two sources", []string{"install", "--charts", "x", "--repo", "http://127.0.0.1:1"}, ExitUsage, "pass only one"},
		{"bad output", []string{"install", "status", "-o", "xml"}, ExitUsage, "unknown output format"},
		{"missing version", []string{"install", "--dry-run", "--charts", fixtures.Path("charts"), "--version", "1.33.0"}, ExitFailure, "versions available: 1.32.1, 1.32.0, 1.31.0, 1.30.0, 1.29.0, 1.28.0, 1.27.0"},
		{"value without component", []string{"upgrade", "--dry-run", "--charts", fixtures.Path("charts"), "--set", "logLevel=debug"}, ExitFailure, "must start with a component name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runRoot(t, tt.args...)
			if err == nil || ExitCode(err) != tt.code || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v (exit %d), want exit %d with %q", err, ExitCode(err), tt.code, tt.want)
			}
		})
	}
}
