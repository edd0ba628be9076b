package collector

import (
	"sort"
	"time"
)

// badHeadStart is how much sooner than a healthy one a ztunnel whose last
// reading was bad comes round again under the budget, in scrape intervals.
// Only a head start, not a rank of its own: with hundreds of unreachable
// ztunnels a rank would spend every round on them and never read the rest.
const badHeadStart = 6

// withinBudget keeps the jobs one round may send under Config.MaxRPS
// (readiness and metrics: two requests a ztunnel; a config_dump read is a
// third), the most wanted first: focused nodes (the rows the user sees and the
// node detail they have open), then those never asked, then the rest by when
// they were last asked, those whose last reading was bad a few intervals
// sooner. The jobs it drops are released for a later round. Called with w.mu
// held.
func (w *Watcher) withinBudget(jobs []scrapeJob) []scrapeJob {
	if w.cfg.MaxRPS <= 0 {
		return jobs
	}
	budget := int(w.cfg.MaxRPS * w.cfg.Interval.Seconds())
	focused := w.focused()
	headStart := badHeadStart * w.cfg.Interval
	rank := func(j scrapeJob) (int, time.Time) {
		st := w.scrape[j.key()]
		switch {
		case focused(j.node):
			return 0, time.Time{}
		case st == nil || st.tried.IsZero():
			return 1, time.Time{}
		case st.scrapeErr != "" || (st.probe != nil && !st.probe.Ready) || (st.last != nil && st.last.PendingProxies > 0):
			return 2, st.tried.Add(-headStart)
		}
		return 2, st.tried
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
