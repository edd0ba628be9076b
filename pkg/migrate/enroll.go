package migrate

import (
	"context"
	"errors"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// ErrNoneMatched marks a selection that matched no namespace.
var ErrNoneMatched = errors.New("no namespace matched")

// EnrollConfig is one enrollment: what to enroll and how.
type EnrollConfig struct {
	Selection Selection
	Plan      PlanOptions
	// DryRun stops after the plan.
	DryRun bool
	// Verify watches pods until istio-cni has captured them.
	Verify bool
	// RestartSidecars restarts the workloads verification finds still
	// running sidecars, then verifies again (needs Verify).
	RestartSidecars bool
	// Workers bounds concurrent namespace patches.
	Workers int
	// Timeout bounds the capture and waypoint waits.
	Timeout time.Duration
	// RolloutTimeout bounds each restarted workload's rollout and PDB wait.
	RolloutTimeout time.Duration
	// Observer receives progress events.
	Observer Observer
	// OnPlan, when set, is called with the plan before anything is written
	// (the command prints it there, ahead of the progress lines).
	OnPlan func(*Plan)
}

// EnrollReport is the outcome of Enroll: the plan and what each later step did.
type EnrollReport struct {
	DryRun   bool            `json:"dryRun"`
	Plan     *Plan           `json:"plan"`
	Results  []Result        `json:"results,omitempty"`
	Verify   *VerifyReport   `json:"verify,omitempty"`
	Restarts []RestartResult `json:"restarts,omitempty"`
}

// Enroll runs a whole enrollment: read the cluster once, plan, check every
// permission the run needs, apply, verify capture, and optionally restart
// sidecar workloads and verify again. The report is returned with the
// error whenever a plan was made (a blocked plan, a failed step), so the
// caller can print what happened; it is nil only when there is no plan.
func Enroll(ctx context.Context, c *kube.Clients, cfg EnrollConfig) (*EnrollReport, error) {
	snap, err := ReadSnapshot(ctx, c.Kube, c.Dynamic, c.Discovery)
	if err != nil {
		return nil, kube.Unreachable(c.Config.Host, err)
	}
	plan, planErr := BuildPlan(snap, cfg.Selection, cfg.Plan)
	if plan == nil {
		return nil, planErr
	}
	if len(plan.Namespaces) == 0 {
		return nil, ErrNoneMatched
	}
	rep := &EnrollReport{DryRun: cfg.DryRun, Plan: plan}
	if cfg.OnPlan != nil {
		cfg.OnPlan(plan)
	}
	if cfg.DryRun || planErr != nil {
		return rep, planErr
	}
	if err := CheckAccess(ctx, c.Kube, EnrollAccess(plan, cfg.Verify, cfg.RestartSidecars)); err != nil {
		return nil, err
	}
	obs := cfg.Observer
	obs.emit(StepValidated, "", "")
	results, applyErr := Apply(ctx, c.Kube, c.Dynamic, plan, ApplyOptions{Workers: cfg.Workers, WaypointTimeout: cfg.Timeout, Observer: obs})
	rep.Results = results
	if applyErr != nil {
		return rep, applyErr
	}
	if !cfg.Verify {
		return rep, finishL7(ctx, c.Kube, c.Dynamic, plan, obs)
	}
	names := make([]string, len(plan.Namespaces))
	for i, n := range plan.Namespaces {
		names[i] = n.Name
	}
	verify := VerifyOptions{Timeout: cfg.Timeout, Observer: obs}
	var verifyErr, restartErr error
	rep.Verify, verifyErr = Verify(ctx, c.Kube, names, verify)
	if verifyErr == nil && cfg.RestartSidecars {
		ws := SidecarWorkloads(rep.Verify)
		rep.Restarts, restartErr = RestartSidecars(ctx, c.Kube, ws, RestartOptions{
			RolloutTimeout: cfg.RolloutTimeout, PDBTimeout: cfg.RolloutTimeout, Observer: obs})
		if restartErr == nil && len(ws) > 0 {
			// The new pods come up without sidecars: verify they are captured too.
			rep.Verify, verifyErr = Verify(ctx, c.Kube, names, verify)
		}
	}
	if verifyErr != nil || restartErr != nil {
		// The selector-based originals stay until capture is verified; a
		// re-run deletes them.
		return rep, errors.Join(verifyErr, restartErr)
	}
	return rep, finishL7(ctx, c.Kube, c.Dynamic, plan, obs)
}
