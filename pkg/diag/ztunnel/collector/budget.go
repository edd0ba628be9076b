package collector

import (
	"sort"
	"time"
)

// withinBudget keeps the jobs one round may send under Config.MaxRPS
// (readiness and metrics: two requests a ztunnel; a config_dump read is a
// third), the most wanted first: focused nodes, then those whose last reading
// was bad, then those read longest ago. The jobs it drops are released for a
// later round. Called with w.mu held.
func (w *Watcher) withinBudget(jobs []scrapeJob) []scrapeJob {
	if w.cfg.MaxRPS <= 0 {
		return jobs
	}
	budget := int(w.cfg.MaxRPS * w.cfg.Interval.Seconds())
	rank := func(j scrapeJob) (int, time.Time) {
		st := w.scrape[j.key()]
		switch {
		case w.focus[j.node]:
			return 0, time.Time{}
		case st == nil || st.last == nil:
			return 1, time.Time{}
		case st.scrapeErr != "" || (st.probe != nil && !st.probe.Ready) || st.last.PendingProxies > 0:
			return 1, st.last.At
		}
		return 2, st.last.At
	}
	sort.SliceStable(jobs, func(a, b int) bool {
		ra, ta := rank(jobs[a])
		rb, tb := rank(jobs[b])
		if ra != rb {
			return ra < rb
		}
		return ta.Before(tb)
	})
	kept := 0
	for _, j := range jobs {
		cost := 2
		if j.certs {
			cost = 3
		}
		if budget < cost && kept > 0 {
			break
		}
		budget -= cost
		kept++
	}
	for _, j := range jobs[kept:] {
		if st := w.scrape[j.key()]; st != nil {
			st.inflight = false
		}
	}
	return jobs[:kept]
}
