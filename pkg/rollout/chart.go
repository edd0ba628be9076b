package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/install"
)

// helmRun is pkg/install's upgrade of the ztunnel release, running beside
// the node loop.
type helmRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	res    *install.Result
	err    error
}

// chartWait bounds how long the chart's own wait may last: the whole
// rollout, which the loop bounds node by node.
const chartWait = 7 * 24 * time.Hour

// startChart applies the ztunnel chart with OnDelete through pkg/install and
// returns once the DaemonSet carries the new spec (or the upgrade failed).
// Install's wait for the DaemonSet is left running: under OnDelete it ends
// only when the loop has replaced every pod.
func (r *runner) startChart(ctx context.Context, steps []install.Step) (*helmRun, error) {
	o := r.o
	before := r.ds.Generation
	hctx, cancel := context.WithCancel(ctx)
	h := &helmRun{cancel: cancel, done: make(chan struct{})}
	opts := o.Chart.Options
	opts.Timeout = chartWait
	r.progress("chart ztunnel %s: applying with updateStrategy OnDelete (release upgrade through kubectl ambient's installer)", r.version)
	go func() {
		defer close(h.done)
		h.res, h.err = o.Chart.Installer.Install(hctx, opts, steps)
	}()
	// The apply is done when the DaemonSet's generation moved and its
	// strategy is OnDelete; or, when the chart changed nothing (a resumed
	// run), when the DaemonSet is already OnDelete at the journal's
	// generation; or when Install returned.
	for {
		ds, err := o.Kube.AppsV1().DaemonSets(o.Namespace).Get(ctx, o.DaemonSet, metav1.GetOptions{})
		if err != nil {
			h.stop()
			return nil, fmt.Errorf("read daemonset %s/%s: %w", o.Namespace, o.DaemonSet, err)
		}
		onDelete := ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType
		if onDelete && (ds.Generation > before || r.unchangedChart(ds)) {
			r.ds = ds
			r.progress("chart ztunnel %s: applied; daemonset %s/%s generation %d, updateStrategy OnDelete", r.version, o.Namespace, o.DaemonSet, ds.Generation)
			return h, nil
		}
		select {
		case <-h.done:
			if h.err != nil {
				return nil, fmt.Errorf("upgrade the ztunnel release to %s with updateStrategy OnDelete: %w", r.version, h.err)
			}
			if !onDelete {
				return nil, fmt.Errorf("the ztunnel chart %s ignored updateStrategy.type=OnDelete (daemonset %s/%s still uses %s); the chart must template .Values.updateStrategy as Istio's does",
					r.version, o.Namespace, o.DaemonSet, ds.Spec.UpdateStrategy.Type)
			}
			r.ds = ds
			return h, nil
		case <-ctx.Done():
			h.stop()
			return nil, fmt.Errorf("%w before the chart was applied; nothing was cordoned", ErrInterrupted)
		case <-time.After(pollInterval):
		}
	}
}

// unchangedChart: a re-run whose chart and values equal what is deployed
// does not move the generation; the journal says which revision it targets.
func (r *runner) unchangedChart(ds *appsv1.DaemonSet) bool {
	return r.jr.j.Revision != "" && ds.Status.ObservedGeneration >= ds.Generation && r.jr.j.Version == r.version
}

// stop cancels the chart's wait (the release stays applied and recorded).
func (h *helmRun) stop() {
	h.cancel()
	<-h.done
}

// finish waits for the chart's own readiness wait, which ends now that
// every pod is replaced.
func (h *helmRun) finish(ctx context.Context) error {
	select {
	case <-h.done:
	case <-time.After(time.Minute):
		h.stop()
		return fmt.Errorf("every node is replaced but the ztunnel release's readiness wait has not finished within a minute; check kubectl ambient install status")
	case <-ctx.Done():
		h.stop()
		return ErrInterrupted
	}
	if h.err != nil && !errors.Is(h.err, context.Canceled) {
		return fmt.Errorf("ztunnel release: %w", h.err)
	}
	return nil
}
