package cmd

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/meshchecks"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls/capture"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls/scenario"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/install"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/migrate"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/rollout"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/waypoint"
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

// flagHint pairs a library condition with the command-line fix for it.
// Library errors say what is wrong in library terms (they are called from
// other code too, where flags don't exist); this table is the one place that
// adds the flag that changes the outcome. A guard test (flaghint_test.go)
// keeps flags out of library error strings.
type flagHint struct {
	cond error  // a library sentinel, matched with errors.Is
	hint string // appended to the error as "; hint"
}

// flagHints is checked in order; every condition an error matches adds its
// hint, so a pod-map failure on an unreachable cluster names both fixes.
var flagHints = []flagHint{
	// Cluster access (every command).
	{kube.ErrNoCluster, "set KUBECONFIG or pass --kubeconfig, and check --context"},
	{kube.ErrUnreachable, "check --context or KUBECONFIG"},
	{kube.ErrForbidden, "or pick an identity that has these rights with --context"},

	// install, upgrade, uninstall, ztunnel rollout.
	{install.ErrBadRepository, "pass --repo URL or --charts DIR"},
	{install.ErrVersionNotFound, "pass one with --version"},
	{install.ErrChartNotFound, "check --repo/--charts"},
	{install.ErrRepositoryIndex, "check --repo or use --charts DIR offline"},
	{install.ErrConflict, "run again with --force-conflicts to take these fields over, or undo the other manager's change"},
	{install.ErrOtherInstall, "--adopt takes them over (an istioctl install is removed with istioctl uninstall --purge)"},
	{install.ErrNotOurs, "run again with --adopt to take it over, or delete it (uninstall what installed it) first"},
	{install.ErrUpgradePath, "take the first step with kubectl ambient upgrade --version set to that minor's newest patch"},
	{install.ErrNotReady, "or raise --timeout"},
	{install.ErrBadSet, "--set and --set-string take component.key=value, e.g. --set ztunnel.logLevel=debug"},
	{install.ErrAmbientInUse, "or pass --force to uninstall anyway"},
	{install.ErrNotConfirmed, "pass --yes to skip the --purge-crds question"},
	{rollout.ErrNotOnDelete, "drop --no-chart so the rollout switches it to OnDelete through the chart"},
	{rollout.ErrHeldByBudget, "or pass --no-drain to accept the connection resets"},

	// enroll, waypoint.
	{migrate.ErrNoneMatched, "check --selector, or list injected namespaces with kubectl get ns -l istio-injection=enabled"},
	{migrate.ErrNoGatewayAPI, "install them or drop --waypoint"},
	{migrate.ErrBlocked, "or pass --force to enroll anyway"},
	{waypoint.ErrInUse, "or pass --force to delete it anyway"},
	{waypoint.ErrNotProgrammed, "or raise --timeout"},

	// check, precheck (through checker.Runner.ErrorHint).
	{meshchecks.ErrNamespaceNotFound, "check --namespace"},
	{meshchecks.ErrIstioVersion, "pass a known --istio-version like 1.28"},

	// verify-mtls and its scenario.
	{mtls.ErrInterrupted, "verify-mtls --cleanup removes any capture pods left behind"},
	{capture.ErrPodMap, "or pass --pods FILE to judge offline"},
	{capture.ErrOwnNamespace, "pass --capture-namespace with an existing namespace that admits privileged pods (e.g. istio-system, where istio-cni runs), or capture on the node and judge with --pcap"},
	{capture.ErrNamespaceRefused, "name a namespace that admits privileged pods already (e.g. istio-system, where istio-cni runs) with --capture-namespace, or leave it out to use a namespace of the run's own"},
	{capture.ErrNoPods, "check --from and --to"},
	{capture.ErrWriteFile, "check the --write path"},
	{scenario.ErrCaptureRefused, "capture on the node and judge with verify-mtls --pcap instead"},
	{scenario.ErrRunExists, "remove it with kubectl ambient verify-mtls scenario --cleanup"},
}

// flagHintFor returns the hints of every condition err matches, joined
// with "; ", or "" when none does.
func flagHintFor(err error) string {
	if err == nil {
		return ""
	}
	var hints []string
	for _, h := range flagHints {
		if errors.Is(err, h.cond) {
			hints = append(hints, h.hint)
		}
	}
	return strings.Join(hints, "; ")
}

// withFlagHints adds to err the flags that fix it. A SilentError stays as it
// is: nothing of it is printed.
func withFlagHints(err error) error {
	var s SilentError
	if err == nil || errors.As(err, &s) {
		return err
	}
	if hint := flagHintFor(err); hint != "" {
		return fmt.Errorf("%w; %s", err, hint)
	}
	return err
}

// hintErrors makes every command under c return its errors through
// withFlagHints, so no command maps library conditions on its own.
func hintErrors(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error { return withFlagHints(run(cmd, args)) }
	}
	for _, sub := range c.Commands() {
		hintErrors(sub)
	}
}
