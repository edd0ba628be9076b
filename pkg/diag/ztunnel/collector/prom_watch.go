package collector

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Focus names the rows the user sees (the TUI's visible table rows); each
// call replaces the set before it, never the node detail (FocusDetail).
// Focused nodes are read first under the API budget and, with a
// MetricsSource, get their readiness and certificates read directly every
// round; other nodes only when their metrics look unhealthy. It never waits
// for a round or a snapshot, so a TUI may call it from its Update.
func (w *Watcher) Focus(nodes []string) {
	set := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		set[n] = true
	}
	w.focusMu.Lock()
	w.focusRows = set
	w.focusMu.Unlock()
}

// FocusDetail names the node whose detail or logs the user has open ("" when
// none); it is focused like a visible row, and Focus does not clear it.
func (w *Watcher) FocusDetail(node string) {
	w.focusMu.Lock()
	w.focusDetail = node
	w.focusMu.Unlock()
}

// focused returns the test for "the user looks at this node" as it stands
// now; Focus replaces the rows map rather than changing it, so the test may
// be used after the lock is released.
func (w *Watcher) focused() func(node string) bool {
	w.focusMu.Lock()
	rows, detail := w.focusRows, w.focusDetail
	w.focusMu.Unlock()
	return func(node string) bool { return rows[node] || (detail != "" && node == detail) }
}

// metricsRound fetches every ztunnel's metrics from the MetricsSource (one
// request; never two at once), then reads readiness and, when due, the
// config_dump of the focused nodes and of those the metrics mark unhealthy.
func (w *Watcher) metricsRound(ctx context.Context) {
	select {
	case w.metricsBusy <- struct{}{}:
	default:
		return
	}
	// Counted in inflight so Collect waits for the fetch and its probes.
	w.inflight.Add(1)
	go func() {
		defer w.inflight.Done()
		defer func() { <-w.metricsBusy }()
		now := w.cfg.Now()
		res, err := w.cfg.Metrics.Fetch(ctx, now)
		if ctx.Err() != nil {
			return
		}
		w.applyMetrics(ctx, res, err, now)
	}()
}

// applyMetrics joins one MetricsSource answer to the ztunnel pods, then
// reads readiness and, when due, the config_dump of the focused nodes and of
// those the metrics mark unhealthy; it returns when those reads are done.
func (w *Watcher) applyMetrics(ctx context.Context, res map[string]PodMetrics, err error, now time.Time) {
	pods := w.ztunnelPods()
	focused := w.focused()
	var jobs []scrapeJob
	w.mu.Lock()
	live := map[string]bool{}
	for node, p := range pods {
		k := p.Namespace + "/" + p.Name
		live[k] = true
		st := w.scrape[k]
		if st == nil {
			st = &scrapeState{}
			w.scrape[k] = st
		}
		switch pm, ok := res[k]; {
		case err != nil:
			st.scrapeErr = shortErr(err.Error())
		case ok:
			st.scrapeErr = ""
			st.prev, st.last, st.rates = st.last, pm.Metrics, pm.Rates
			st.stuck = max(w.pending.Observe(node, pm.Metrics.PendingProxies, now), pm.PendingFor)
		default:
			st.scrapeErr = "no series in " + w.cfg.Metrics.String()
			st.last, st.prev, st.rates = nil, nil, nil
		}
		if p.Status.PodIP == "" || p.Status.Phase != corev1.PodRunning || st.inflight {
			continue
		}
		if !focused(node) && !suspect(p, st) {
			// Not looked at and healthy by its metrics: no direct read;
			// an old probe result would only go stale.
			st.probe = nil
			continue
		}
		st.inflight = true
		wantCerts := w.cfg.CertInterval > 0 && (!st.certsLoaded || now.Sub(st.certsAt) >= w.cfg.CertInterval)
		jobs = append(jobs, scrapeJob{p.Namespace, p.Name, node, wantCerts})
	}
	for k := range w.scrape {
		if !live[k] {
			delete(w.scrape, k)
		}
	}
	w.dirty = true
	w.mu.Unlock()
	w.inflight.Add(len(jobs))
	queue := make(chan scrapeJob)
	var pool sync.WaitGroup
	for i := 0; i < min(w.cfg.AdminConcurrency, len(jobs)); i++ {
		pool.Add(1)
		go func() {
			defer pool.Done()
			for j := range queue {
				w.probeOnly(ctx, j)
				if j.certs && ctx.Err() == nil {
					w.readCerts(ctx, j)
				}
				w.finish(j)
			}
		}()
	}
	for _, j := range jobs {
		queue <- j
	}
	close(queue)
	pool.Wait()
}

// suspect says the metrics or the pod object give a reason to look closer.
func suspect(p *corev1.Pod, st *scrapeState) bool {
	if st.scrapeErr != "" || st.last == nil {
		return true
	}
	ready := false
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if !ready || st.last.PendingProxies > 0 {
		return true
	}
	return st.rates != nil && (st.rates.FailedPerSec > 0 || st.rates.XDSTerminations > 0)
}

// probeOnly reads one ztunnel's readiness endpoint.
func (w *Watcher) probeOnly(ctx context.Context, j scrapeJob) {
	if !w.acquire(ctx, 1) {
		return
	}
	probe := Probe(ctx, w.client, j.ns, j.name, w.cfg.RequestTimeout)
	w.release()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.requests++
	if st := w.scrape[j.key()]; st != nil {
		st.probe = &probe
	}
}
