package cmd

import (
	"errors"
	"fmt"
)

// SilentError ends the program with Code and prints nothing more: the command
// has already reported why (a failed verdict table, unhealthy nodes).
type SilentError struct{ Code int }

func (e SilentError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// UsageError marks a mistake in the command line; it exits with code 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Exit codes a CI job can rely on.
const (
	ExitOK      = 0
	ExitFailure = 1 // an error, or a check/verdict that failed
	ExitUsage   = 2 // bad flags or arguments
	// ExitInconclusive: the run proved nothing (verify-mtls INCONCLUSIVE).
	ExitInconclusive = 3
)

// ExitCode maps an error returned by Execute to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var s SilentError
	if errors.As(err, &s) {
		return s.Code
	}
	var u UsageError
	if errors.As(err, &u) {
		return ExitUsage
	}
	return ExitFailure
}
