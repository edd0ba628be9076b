package cmd

import (
	"bytes"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func TestEnrollUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"nothing selected", []string{"enroll", "namespace"}, "name at least one namespace"},
		{"bad selector", []string{"enroll", "namespace", "-l", "a in ("}, `invalid --selector "a in ("`},
		{"bad output", []string{"enroll", "namespace", "shop", "-o", "wide"}, `unknown output format "wide"`},
		{"restart without verify", []string{"enroll", "namespace", "shop", "--verify=false", "--restart-sidecars"}, "--restart-sidecars needs --verify"},
		{"bad workers", []string{"enroll", "namespace", "shop", "--workers", "0"}, "--workers must be at least 1"},
		{"bare enroll", []string{"enroll"}, "kubectl ambient enroll namespace NS"},
		{"unenroll nothing", []string{"unenroll", "namespace"}, "--selector or --all"},
		{"unenroll bad timeout", []string{"unenroll", "namespace", "shop", "--timeout", "0s"}, "--timeout must be positive"},
		{"status bad output", []string{"enroll", "status", "-o", "wide"}, "unknown output format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			root := NewRootCmd(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
			// An unreachable kubeconfig proves no cluster call happens before validation.
			root.SetArgs(append(tt.args, "--kubeconfig", "/nonexistent/kubeconfig"))
			err := root.Execute()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if ExitCode(err) != ExitUsage {
				t.Errorf("exit code %d, want %d", ExitCode(err), ExitUsage)
			}
			if out.Len() != 0 {
				t.Errorf("wrote to stdout on a usage error: %q", out.String())
			}
		})
	}
}

func TestEnrollHelpHasExamples(t *testing.T) {
	for _, args := range [][]string{{"enroll", "namespace", "--help"}, {"enroll", "status", "--help"}, {"unenroll", "namespace", "--help"}} {
		var out bytes.Buffer
		root := NewRootCmd(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out})
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "Examples:") || !strings.Contains(out.String(), "kubectl ambient "+args[0]) {
			t.Errorf("%v help lacks examples:\n%s", args, out.String())
		}
	}
}
