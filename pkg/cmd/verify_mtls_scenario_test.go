package cmd

import (
	"errors"
	"strings"
	"testing"
)

func TestVerifyMTLSScenarioFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--port", "15008"}, "--port 15008"},
		{[]string{"--port", "0"}, "--port 0"},
		{[]string{"--keep", "--cleanup"}, "contradict"},
		{[]string{"--duration", "0s"}, "must be positive"},
		{[]string{"--client-command", " "}, "--client-command is empty"},
		{[]string{"-o", "xml"}, "unknown output format"},
		{[]string{"extra"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := runVerify(t, nil, append([]string{"scenario"}, tt.args...)...)
			var ue UsageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want a usage error with %q", err, tt.want)
			}
		})
	}
}

func TestVerifyMTLSScenarioHelp(t *testing.T) {
	out, _, err := runVerify(t, nil, "scenario", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kubectl ambient verify-mtls scenario", "negative control", "--client-command", "--capture-image", "--cleanup", "docs/rbac.md"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
