package cmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"
)

func runRoot(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	root := NewRootCmd(streams)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

func TestVersionClientOnly(t *testing.T) {
	for _, format := range []string{"json", "yaml"} {
		t.Run(format, func(t *testing.T) {
			out, _, err := runRoot(t, "version", "--client", "-o", format)
			if err != nil {
				t.Fatal(err)
			}
			var rep VersionReport
			if format == "json" {
				err = json.Unmarshal([]byte(out), &rep)
			} else {
				err = yaml.Unmarshal([]byte(out), &rep)
			}
			if err != nil {
				t.Fatalf("not %s: %v\n%s", format, err, out)
			}
			if rep.Client.Version == "" || rep.Client.GoVersion == "" || rep.Server != nil || rep.ServerError != "" {
				t.Errorf("--client report = %+v, want client info only", rep)
			}
		})
	}
}

func TestVersionUnreachableClusterWarns(t *testing.T) {
	// A kubeconfig pointing at a closed loopback port: the command must still
	// succeed, print the client version and warn with the standard message.
	out, errOut, err := runRoot(t, "version", "--server", "https://127.0.0.1:1", "--request-timeout-server", "2s")
	if err != nil {
		t.Fatalf("version must not fail when the cluster is unreachable: %v", err)
	}
	if !strings.HasPrefix(out, "Client Version: ") {
		t.Errorf("stdout = %q", out)
	}
	if !strings.Contains(errOut, "no cluster reachable at https://127.0.0.1:1") || !strings.Contains(errOut, "check --context or KUBECONFIG") {
		t.Errorf("stderr = %q, want the unreachable-cluster hint", errOut)
	}
}

func TestBadOutputIsUsageError(t *testing.T) {
	_, _, err := runRoot(t, "version", "-o", "xml")
	if ExitCode(err) != ExitUsage {
		t.Fatalf("exit code = %d (err %v), want %d", ExitCode(err), err, ExitUsage)
	}
	if !strings.Contains(err.Error(), `unknown output format "xml"`) {
		t.Errorf("error = %q", err)
	}
	_, _, err = runRoot(t, "version", "--no-such-flag")
	if ExitCode(err) != ExitUsage {
		t.Errorf("unknown flag: exit code = %d, want %d", ExitCode(err), ExitUsage)
	}
	_, _, err = runRoot(t, "version", "extra-arg")
	if ExitCode(err) != ExitUsage {
		t.Errorf("extra argument: exit code = %d, want %d", ExitCode(err), ExitUsage)
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"plain", errors.New("boom"), 1},
		{"silent", fmt.Errorf("wrapped: %w", SilentError{Code: 3}), 3},
		{"usage", UsageError{Err: errors.New("bad flag")}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExitCode(tt.err); got != tt.want {
				t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestPrintStructuredRejectsTable(t *testing.T) {
	var b bytes.Buffer
	if err := PrintStructured(&b, OutputTable, struct{}{}); err == nil {
		t.Fatal("want an error for a non-structured format")
	}
}
