// Package watch fills the ztunnel health model from a cluster: informers
// (one LIST and one WATCH each) for nodes, namespaces and pods, and a scraper
// that reads every ztunnel's readiness and metrics through the API server's
// pod proxy on an interval, with bounded concurrency and never more than one
// request in flight per pod. It emits whole snapshots on a channel.
package collector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

// Defaults of the watcher.
const (
	DefaultZtunnelNamespace = ambient.IstioNamespace
	DefaultZtunnelSelector  = ambient.ZtunnelSelector
	DefaultInterval         = 5 * time.Second
	DefaultConcurrency      = 32
	// DefaultAdminConcurrency bounds config_dump reads in flight. Each may
	// be a port-forward (a TLS connection and a SPDY session with its own
	// header compressor, about a megabyte); 32 at once made most of the
	// heap of `status --once` at 5,000 nodes.
	DefaultAdminConcurrency = 8
	DefaultRequestTimeout   = 4 * time.Second
	DefaultCertInterval     = 5 * time.Minute
)

// Config tunes a Watcher. Zero values take the defaults above.
type Config struct {
	// Cluster is the name shown in the header (the kubeconfig context).
	Cluster string
	// Namespace and Selector find the ztunnel pods.
	Namespace string
	Selector  string
	// Interval between scrape rounds.
	Interval time.Duration
	// Concurrency bounds the proxy requests in flight across all pods.
	Concurrency int
	// AdminConcurrency bounds the config_dump reads in flight (within Concurrency).
	AdminConcurrency int
	// RequestTimeout bounds one proxy request.
	RequestTimeout time.Duration
	// CertInterval is how often each ztunnel's certificates are read from its
	// config_dump; negative disables the periodic read.
	CertInterval time.Duration
	// Thresholds for the health rules.
	Thresholds ztunnel.Thresholds
	// Admin reaches the admin port (config_dump); nil uses the pod proxy.
	Admin AdminFetcher
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// Metrics, when set (Prometheus), supplies every ztunnel's metrics and
	// rates in one request per round; readiness and config_dump are then
	// read only for focused nodes and those the metrics mark unhealthy.
	Metrics MetricsSource
	// FleetSize, when set, is told the number of nodes once Collect has
	// listed them, before it lists pods and builds the snapshot (status
	// sizes its memory limit by it).
	FleetSize func(nodes int)
	// MaxRPS, when positive, is the budget of requests per second the
	// direct path may send through the API server, sustained: each round
	// scrapes only as many ztunnels as fit, the focused and unhealthy first,
	// then those read longest ago.
	MaxRPS float64
}

func (c *Config) defaults() {
	if c.Namespace == "" {
		c.Namespace = DefaultZtunnelNamespace
	}
	if c.Selector == "" {
		c.Selector = DefaultZtunnelSelector
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.AdminConcurrency <= 0 {
		c.AdminConcurrency = min(DefaultAdminConcurrency, c.Concurrency)
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.CertInterval == 0 {
		c.CertInterval = DefaultCertInterval
	}
	if c.Thresholds == (ztunnel.Thresholds{}) {
		c.Thresholds = ztunnel.DefaultThresholds()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Update is the message type the watcher sends; see ztunnel.Update.
type Update = ztunnel.Update

// scrapeState is what the scraper keeps per ztunnel pod.
type scrapeState struct {
	inflight    bool
	prev, last  *ztunnel.Metrics
	probe       *ztunnel.Probe
	scrapeErr   string
	certs       []ztunnel.Certificate
	certErr     string
	certsAt     time.Time
	certsLoaded bool
	stuck       time.Duration
	// tried is when readiness and metrics were last asked for, answered or
	// not: the budget's order (a failing ztunnel keeps an old last.At).
	tried time.Time
	// rates come from the MetricsSource (PromQL) when there is one.
	rates *ztunnel.Rates
}

// Watcher watches one cluster. Create it with New, start it with Run.
type Watcher struct {
	client  kubernetes.Interface
	cfg     Config
	updates chan Update

	nodes, pods, namespaces cache.SharedIndexInformer

	mu       sync.Mutex
	scrape   map[string]*scrapeState // by pod namespace/name
	pending  ztunnel.PendingTracker
	watchErr error // from the informers: permissions
	connErr  error // from the health check: reachability
	errAt    time.Time
	dirty    bool
	sem      chan struct{}
	adminSem chan struct{}
	inflight sync.WaitGroup
	// Requests counts proxy requests sent (for the benchmark note).
	requests int64
	// focusMu guards focusRows and focusDetail, the nodes the user looks
	// at (see Focus and FocusDetail). It is apart from mu so that the TUI,
	// which sets them from its Update, never waits for a snapshot build.
	focusMu     sync.Mutex
	focusRows   map[string]bool
	focusDetail string
	// metricsBusy holds one MetricsSource fetch at a time.
	metricsBusy chan struct{}
	// limiter enforces Config.MaxRPS on every proxy request.
	limiter *rate.Limiter
}

// New builds a Watcher; nothing runs until Run.
func New(client kubernetes.Interface, cfg Config) *Watcher {
	cfg.defaults()
	if cfg.Admin == nil {
		cfg.Admin = ProxyAdmin{Client: client}
	}
	w := &Watcher{client: client, cfg: cfg, updates: make(chan Update, 1), scrape: map[string]*scrapeState{},
		sem: make(chan struct{}, cfg.Concurrency), adminSem: make(chan struct{}, cfg.AdminConcurrency), metricsBusy: make(chan struct{}, 1)}
	if cfg.MaxRPS > 0 {
		// A burst of at least 2: a scrape takes two tokens at once.
		w.limiter = rate.NewLimiter(rate.Limit(cfg.MaxRPS), max(2, int(cfg.MaxRPS)))
		// readCerts takes a token for the first way to the admin port; a
		// fallback (the port-forward after the pod proxy) is a request of
		// its own and takes another.
		if fa, ok := w.cfg.Admin.(FallbackAdmin); ok && len(fa) > 1 {
			wrapped := FallbackAdmin{fa[0]}
			for _, a := range fa[1:] {
				wrapped = append(wrapped, budgetedAdmin{a, w.limiter})
			}
			w.cfg.Admin = wrapped
		}
	}
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(slim))
	w.nodes = f.Core().V1().Nodes().Informer()
	w.pods = f.Core().V1().Pods().Informer()
	w.namespaces = f.Core().V1().Namespaces().Informer()
	for _, inf := range []cache.SharedIndexInformer{w.nodes, w.pods, w.namespaces} {
		_ = inf.SetWatchErrorHandlerWithContext(w.watchError)
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { w.markDirty() },
			UpdateFunc: func(any, any) { w.markDirty() },
			DeleteFunc: func(any) { w.markDirty() },
		})
	}
	return w
}

// Updates is the channel the watcher sends on. Only the newest update
// matters: when the reader is slow, an unread older one is replaced.
func (w *Watcher) Updates() <-chan Update { return w.updates }

// Requests returns how many pod proxy requests the scraper has sent.
func (w *Watcher) Requests() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.requests
}

func (w *Watcher) markDirty() {
	w.mu.Lock()
	w.dirty = true
	w.mu.Unlock()
}

func (w *Watcher) watchError(_ context.Context, r *cache.Reflector, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Only errors the user must act on are shown; transport errors are the
	// health check's to report, and expired watches are routine.
	if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		w.watchErr = fmt.Errorf("watch %s: %w; grant get, list and watch on nodes, namespaces and pods", r.TypeDescription(), err)
		w.errAt = time.Now()
	}
}

// send replaces any unread update with u.
func (w *Watcher) send(ctx context.Context, u Update) {
	for {
		select {
		case w.updates <- u:
			return
		case <-ctx.Done():
			return
		default:
			select {
			case <-w.updates:
			default:
			}
		}
	}
}

// Run starts the informers and the scraper and sends updates until ctx ends.
// It returns nil when ctx is cancelled.
func (w *Watcher) Run(ctx context.Context) error {
	w.send(ctx, Update{Connecting: true})
	go w.nodes.RunWithContext(ctx)
	go w.pods.RunWithContext(ctx)
	go w.namespaces.RunWithContext(ctx)
	synced := false
	rebuild := time.NewTicker(400 * time.Millisecond)
	defer rebuild.Stop()
	scrapeTick := time.NewTicker(w.cfg.Interval)
	defer scrapeTick.Stop()
	// The informers retry a lost API server quietly, so reachability is
	// checked on its own: one cheap request per interval, every second
	// while the cluster is away.
	healthTick := time.NewTicker(time.Second)
	defer healthTick.Stop()
	var lastHealth time.Time
	healthBusy := make(chan struct{}, 1)
	for {
		if !synced && w.nodes.HasSynced() && w.pods.HasSynced() && w.namespaces.HasSynced() {
			synced = true
			w.mu.Lock()
			w.watchErr = nil
			w.mu.Unlock()
			w.scrapeRound(ctx)
			w.publish(ctx)
		}
		// Until the first sync, look often: the first screen waits on it.
		var syncPoll <-chan time.Time
		if !synced {
			syncPoll = time.After(20 * time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-syncPoll:
		case <-rebuild.C:
			w.mu.Lock()
			dirty, werr := w.dirty, w.watchErr
			if werr == nil {
				werr = w.connErr
			}
			w.mu.Unlock()
			switch {
			case werr != nil:
				w.send(ctx, Update{Err: werr, Connecting: !synced})
			case synced && dirty:
				w.publish(ctx)
			case !synced:
				w.send(ctx, Update{Connecting: true})
			}
		case <-healthTick.C:
			w.mu.Lock()
			failing := w.connErr != nil
			w.mu.Unlock()
			if (failing || time.Since(lastHealth) >= w.cfg.Interval) && len(healthBusy) == 0 {
				lastHealth = time.Now()
				healthBusy <- struct{}{}
				go func() {
					defer func() { <-healthBusy }()
					w.checkHealth(ctx)
				}()
			}
		case <-scrapeTick.C:
			if synced {
				w.scrapeRound(ctx)
			}
		}
	}
}

// checkHealth asks the API server's /readyz and sets or clears the
// connection error; the informers re-list and re-watch by themselves.
func (w *Watcher) checkHealth(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := w.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(rctx)
	if ctx.Err() != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var status apierrors.APIStatus
	switch {
	case err == nil:
		if w.connErr != nil {
			w.connErr = nil
			w.dirty = true
		}
	case errors.As(err, &status) && status.Status().Code != 0 && status.Status().Code != http.StatusServiceUnavailable:
		// The server answered (401, 403 on /readyz): it is there.
	default:
		w.connErr = fmt.Errorf("cannot reach the API server: %s", shortErr(err.Error()))
		w.errAt = time.Now()
	}
}

func (w *Watcher) publish(ctx context.Context) {
	s := w.Snapshot()
	w.send(ctx, Update{Snapshot: &s})
}

// ztunnelPods returns the ztunnel pods from the pod informer, by node.
func (w *Watcher) ztunnelPods() map[string]*corev1.Pod {
	out := map[string]*corev1.Pod{}
	key, val, _ := strings.Cut(w.cfg.Selector, "=")
	for _, obj := range w.pods.GetStore().List() {
		p := obj.(*corev1.Pod)
		if p.Namespace != w.cfg.Namespace || p.Labels[key] != val || p.Spec.NodeName == "" {
			continue
		}
		// With two (a rollout), prefer the newest.
		if old, ok := out[p.Spec.NodeName]; !ok || old.CreationTimestamp.Before(&p.CreationTimestamp) {
			out[p.Spec.NodeName] = p
		}
	}
	return out
}

// scrapeRound starts one scrape per ztunnel pod that has none in flight;
// it does not wait for them.
func (w *Watcher) scrapeRound(ctx context.Context) {
	if w.cfg.Metrics != nil {
		w.metricsRound(ctx)
		return
	}
	now := w.cfg.Now()
	pods := w.ztunnelPods()
	live := map[string]bool{}
	var jobs []scrapeJob
	for _, p := range pods {
		k := p.Namespace + "/" + p.Name
		live[k] = true
		if p.Status.PodIP == "" || p.Status.Phase != corev1.PodRunning {
			continue
		}
		w.mu.Lock()
		st := w.scrape[k]
		if st == nil {
			st = &scrapeState{}
			w.scrape[k] = st
		}
		if st.inflight {
			w.mu.Unlock()
			continue
		}
		st.inflight = true
		wantCerts := w.cfg.CertInterval > 0 && (!st.certsLoaded || now.Sub(st.certsAt) >= w.cfg.CertInterval)
		w.mu.Unlock()
		jobs = append(jobs, scrapeJob{p.Namespace, p.Name, p.Spec.NodeName, wantCerts})
	}
	w.mu.Lock()
	for k := range w.scrape {
		if !live[k] {
			delete(w.scrape, k)
		}
	}
	jobs = w.withinBudget(jobs)
	w.mu.Unlock()
	// A small pool per round, not a goroutine per pod: 5,000 parked
	// goroutines would cost more memory than the model itself. The shared
	// semaphore bounds requests across overlapping rounds. Config_dump reads
	// (maybe port-forwards) go to a smaller pool of their own after the
	// pod's readiness and metrics, so they neither stall the scrapes of
	// other pods nor pile up in memory.
	w.inflight.Add(len(jobs))
	queue := make(chan scrapeJob)
	certJobs := make(chan scrapeJob, len(jobs))
	wantCerts := 0
	for _, j := range jobs {
		if j.certs {
			wantCerts++
		}
	}
	var scrapers sync.WaitGroup
	for i := 0; i < min(w.cfg.Concurrency, len(jobs)); i++ {
		scrapers.Add(1)
		go func() {
			defer scrapers.Done()
			for j := range queue {
				if w.scrapePod(ctx, j) {
					certJobs <- j
				} else {
					w.finish(j)
				}
			}
		}()
	}
	for i := 0; i < min(w.cfg.AdminConcurrency, wantCerts); i++ {
		go func() {
			for j := range certJobs {
				w.readCerts(ctx, j)
				w.finish(j)
			}
		}()
	}
	go func() {
		for _, j := range jobs {
			queue <- j
		}
		close(queue)
		scrapers.Wait()
		close(certJobs)
	}()
}

type scrapeJob struct {
	ns, name, node string
	certs          bool
}

func (j scrapeJob) key() string { return j.ns + "/" + j.name }

// acquire takes a request slot and, under a budget, n tokens: one per
// request the caller is about to send, so the budget counts requests on the
// wire, not jobs.
func (w *Watcher) acquire(ctx context.Context, n int) bool {
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	if w.limiter != nil && w.limiter.WaitN(ctx, n) != nil {
		<-w.sem
		return false
	}
	return true
}

func (w *Watcher) release() { <-w.sem }

// budgetedAdmin takes a token of the budget before each config_dump read.
type budgetedAdmin struct {
	AdminFetcher
	limiter *rate.Limiter
}

// ConfigDump implements AdminFetcher.
func (b budgetedAdmin) ConfigDump(ctx context.Context, ns, pod string) (*ztunnel.ConfigDump, error) {
	if err := b.limiter.WaitN(ctx, 1); err != nil {
		return nil, err
	}
	return b.AdminFetcher.ConfigDump(ctx, ns, pod)
}

// finish ends a pod's job: the next round may scrape it again.
func (w *Watcher) finish(j scrapeJob) {
	w.mu.Lock()
	if st := w.scrape[j.key()]; st != nil {
		st.inflight = false
	}
	w.dirty = true
	w.mu.Unlock()
	w.inflight.Done()
}

// scrapePod reads readiness and metrics of one ztunnel, one request at a
// time, and reports whether its certificates should be read next.
func (w *Watcher) scrapePod(ctx context.Context, j scrapeJob) bool {
	if !w.acquire(ctx, 2) {
		return false
	}
	probe := Probe(ctx, w.client, j.ns, j.name, w.cfg.RequestTimeout)
	m, merr := Scrape(ctx, w.client, j.ns, j.name, w.cfg.RequestTimeout, w.cfg.Now)
	w.release()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.requests += 2
	st := w.scrape[j.key()]
	if st == nil {
		return false
	}
	st.probe, st.tried = &probe, w.cfg.Now()
	if merr != nil {
		st.scrapeErr = merr.Error()
	} else {
		st.scrapeErr = ""
		st.prev, st.last = st.last, m
		st.stuck = w.pending.Observe(j.node, m.PendingProxies, m.At)
	}
	// When the pod does not answer at all, a config_dump read (maybe a
	// port-forward) would only fail slower. Try again next round.
	answered := merr == nil || probe.Error == ""
	return j.certs && answered && ctx.Err() == nil
}

// readCerts reads one ztunnel's certificates from its config_dump. At most
// AdminConcurrency reads run at once, each also holding a request slot.
func (w *Watcher) readCerts(ctx context.Context, j scrapeJob) {
	select {
	case w.adminSem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-w.adminSem }()
	if !w.acquire(ctx, 1) {
		return
	}
	dump, err := w.cfg.Admin.ConfigDump(ctx, j.ns, j.name)
	w.release()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.requests++
	st := w.scrape[j.key()]
	if st == nil {
		return
	}
	st.certsLoaded, st.certsAt = true, w.cfg.Now()
	st.certs, st.certErr = nil, ""
	if dump != nil {
		st.certs = dump.Certificates
	}
	if err != nil {
		st.certErr = err.Error()
	}
}

// Snapshot builds the current snapshot from the informer caches and the
// latest scrapes.
func (w *Watcher) Snapshot() ztunnel.Snapshot {
	now := w.cfg.Now()
	zpods := w.ztunnelPods()
	counts := w.podCounts()
	nodeObjs := w.nodes.GetStore().List()
	nodes := make([]ztunnel.NodeHealth, 0, len(nodeObjs))
	versions := map[string]int{}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dirty = false
	for _, obj := range nodeObjs {
		n := obj.(*corev1.Node)
		o := nodeObservation(n)
		o.Pods = counts[n.Name]
		if zp := zpods[n.Name]; zp != nil {
			o.Ztunnel = podInfo(zp)
			if o.Ztunnel.Version != "" {
				versions[o.Ztunnel.Version]++
			}
			if st := w.scrape[zp.Namespace+"/"+zp.Name]; st != nil {
				o.Probe = st.probe
				o.Metrics = st.last
				o.ScrapeError = st.scrapeErr
				o.Rates = ztunnel.ComputeRates(st.prev, st.last)
				if st.rates != nil {
					o.Rates = st.rates
				}
				o.PendingStuck = st.stuck
				o.Certificates, o.CertError = st.certs, st.certErr
			}
		}
		nodes = append(nodes, ztunnel.Evaluate(o, now, w.cfg.Thresholds))
	}
	return ztunnel.NewSnapshot(w.cfg.Cluster, topVersion(versions), now, nodes)
}

func topVersion(v map[string]int) string {
	best, n := "", 0
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v[k] > n {
			best, n = k, v[k]
		}
	}
	if len(v) > 1 {
		best += fmt.Sprintf(" (+%d other)", len(v)-1)
	}
	return best
}

// podCounts counts enrolled, captured, pending and sidecar pods per node.
func (w *Watcher) podCounts() map[string]ztunnel.PodCounts {
	ambientNS := map[string]bool{}
	for _, obj := range w.namespaces.GetStore().List() {
		ns := obj.(*corev1.Namespace)
		if ns.Labels[ambient.LabelDataplaneMode] == ambient.DataplaneAmbient {
			ambientNS[ns.Name] = true
		}
	}
	return countPods(w.pods.GetStore().List(), ambientNS)
}

func countPods(objs []any, ambientNS map[string]bool) map[string]ztunnel.PodCounts {
	out := map[string]ztunnel.PodCounts{}
	for _, obj := range objs {
		p := obj.(*corev1.Pod)
		if p.Spec.NodeName == "" || p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		c := out[p.Spec.NodeName]
		mode := p.Labels[ambient.LabelDataplaneMode]
		_, sidecar := p.Annotations[ambient.AnnotationSidecarStatus]
		if (ambientNS[p.Namespace] && mode != ambient.DataplaneNone) || mode == ambient.DataplaneAmbient {
			c.Enrolled++
		}
		switch p.Annotations[ambient.AnnotationRedirection] {
		case ambient.RedirectionEnabled:
			c.Captured++
		case ambient.RedirectionPending:
			c.Pending++
		}
		if sidecar {
			c.Sidecar++
		}
		out[p.Spec.NodeName] = c
	}
	return out
}

func nodeObservation(n *corev1.Node) ztunnel.Observation {
	o := ztunnel.Observation{Node: n.Name, Schedulable: !n.Spec.Unschedulable}
	for _, c := range n.Status.Conditions {
		o.Conditions = append(o.Conditions, ztunnel.NodeCondition{Type: string(c.Type), Status: string(c.Status), Reason: c.Reason, Message: c.Message})
		if c.Type == corev1.NodeReady {
			o.NodeReady = c.Status == corev1.ConditionTrue
		}
	}
	return o
}

func podInfo(p *corev1.Pod) *ztunnel.Pod {
	z := &ztunnel.Pod{Namespace: p.Namespace, Name: p.Name, IP: p.Status.PodIP, Phase: string(p.Status.Phase), Created: p.CreationTimestamp.Time}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			z.Ready = c.Status == corev1.ConditionTrue
		}
	}
	for _, c := range p.Spec.Containers {
		if c.Name == ambient.ProxyContainer || c.Name == ambient.ZtunnelDaemonSet || len(p.Spec.Containers) == 1 {
			z.Version = ambient.ImageVersion(c.Image)
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		z.Restarts += cs.RestartCount
		if t := cs.LastTerminationState.Terminated; t != nil {
			z.LastRestartReason = t.Reason
			if !t.FinishedAt.IsZero() {
				at := t.FinishedAt.Time
				z.LastRestartAt = &at
			}
		}
		if cs.State.Waiting != nil && cs.State.Waiting.Reason != "" {
			z.Waiting = cs.State.Waiting.Reason
		}
	}
	return z
}

// slim drops what the model never reads, so 5,000 nodes and their pods fit
// in little memory.
func slim(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Node:
		return &corev1.Node{
			ObjectMeta: slimMeta(o.ObjectMeta, nil),
			Spec:       corev1.NodeSpec{Unschedulable: o.Spec.Unschedulable},
			Status:     corev1.NodeStatus{Conditions: slimConditions(o.Status.Conditions)},
		}, nil
	case *corev1.Pod:
		p := &corev1.Pod{
			ObjectMeta: slimMeta(o.ObjectMeta, []string{ambient.AnnotationRedirection, ambient.AnnotationSidecarStatus}),
			Spec:       corev1.PodSpec{NodeName: o.Spec.NodeName, HostNetwork: o.Spec.HostNetwork},
			Status:     corev1.PodStatus{Phase: o.Status.Phase, PodIP: o.Status.PodIP},
		}
		for _, c := range o.Status.Conditions {
			if c.Type == corev1.PodReady {
				p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: c.Type, Status: c.Status})
			}
		}
		// Only ztunnel pods need containers; keeping them for all costs little
		// next to the rest, but drop everything else about them.
		for _, c := range o.Spec.Containers {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c.Name, Image: c.Image})
		}
		for _, cs := range o.Status.ContainerStatuses {
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
				Name: cs.Name, RestartCount: cs.RestartCount, State: cs.State, LastTerminationState: cs.LastTerminationState, Ready: cs.Ready})
		}
		return p, nil
	case *corev1.Namespace:
		return &corev1.Namespace{ObjectMeta: slimMeta(o.ObjectMeta, nil)}, nil
	}
	return obj, nil
}

func slimMeta(m metav1.ObjectMeta, keepAnnotations []string) metav1.ObjectMeta {
	out := metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		Labels: m.Labels, CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp}
	for _, k := range keepAnnotations {
		if v, ok := m.Annotations[k]; ok {
			if out.Annotations == nil {
				out.Annotations = map[string]string{}
			}
			out.Annotations[k] = v
		}
	}
	return out
}

func slimConditions(cs []corev1.NodeCondition) []corev1.NodeCondition {
	out := make([]corev1.NodeCondition, 0, len(cs))
	for _, c := range cs {
		out = append(out, corev1.NodeCondition{Type: c.Type, Status: c.Status, Reason: c.Reason, Message: c.Message})
	}
	return out
}

// ErrNoZtunnelPod means the node has no ztunnel to ask.
var ErrNoZtunnelPod = errors.New("no ztunnel on node")

// ZtunnelPod returns the namespace and name of the ztunnel pod on node.
func (w *Watcher) ZtunnelPod(node string) (string, string, error) {
	p := w.ztunnelPods()[node]
	if p == nil {
		return "", "", fmt.Errorf("node %q: %w; check the ztunnel DaemonSet in %s", node, ErrNoZtunnelPod, w.cfg.Namespace)
	}
	return p.Namespace, p.Name, nil
}

// Collect takes one snapshot: it lists in pages into the stores, scrapes every
// ztunnel twice, window apart, so rates exist, reads certificates once, and
// stops. Pending proxies count as stuck when they did not drain within window.
func Collect(ctx context.Context, client kubernetes.Interface, cfg Config, window time.Duration) (ztunnel.Snapshot, error) {
	cfg.defaults()
	if cfg.CertInterval > 0 {
		cfg.CertInterval = 24 * time.Hour // once, in the first round
	}
	if window < cfg.Thresholds.PendingGrace {
		cfg.Thresholds.PendingGrace = window
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := New(client, cfg)
	// With a MetricsSource the query runs while the nodes and pods are
	// listed: the two servers work at once, and the answer waits for the
	// pod list to be joined to nodes.
	type answer struct {
		res map[string]PodMetrics
		err error
		at  time.Time
	}
	var fetched chan answer
	if cfg.Metrics != nil {
		fetched = make(chan answer, 1)
		go func() {
			at := cfg.Now()
			res, err := cfg.Metrics.Fetch(ctx, at)
			fetched <- answer{res, err, at}
		}()
	}
	// One snapshot needs no watches: list in pages and slim each page as it
	// arrives, so the full objects of 5,000 nodes and their pods are never
	// all in memory at once (an informer decodes the whole list first).
	core := client.CoreV1()
	if err := listPaged(ctx, "nodes", w.nodes.GetStore(), func(ctx context.Context, o metav1.ListOptions) ([]corev1.Node, string, error) {
		l, err := core.Nodes().List(ctx, o)
		if err != nil {
			return nil, "", err
		}
		return l.Items, l.Continue, nil
	}); err != nil {
		return ztunnel.Snapshot{}, err
	}
	if cfg.FleetSize != nil {
		cfg.FleetSize(len(w.nodes.GetStore().ListKeys()))
	}
	if err := listPaged(ctx, "namespaces", w.namespaces.GetStore(), func(ctx context.Context, o metav1.ListOptions) ([]corev1.Namespace, string, error) {
		l, err := core.Namespaces().List(ctx, o)
		if err != nil {
			return nil, "", err
		}
		return l.Items, l.Continue, nil
	}); err != nil {
		return ztunnel.Snapshot{}, err
	}
	if err := listPaged(ctx, "pods", w.pods.GetStore(), func(ctx context.Context, o metav1.ListOptions) ([]corev1.Pod, string, error) {
		l, err := core.Pods(metav1.NamespaceAll).List(ctx, o)
		if err != nil {
			return nil, "", err
		}
		return l.Items, l.Continue, nil
	}); err != nil {
		return ztunnel.Snapshot{}, err
	}
	if fetched != nil {
		// Prometheus gives rates over its own window: one round is enough.
		var a answer
		select {
		case a = <-fetched:
		case <-ctx.Done():
			return ztunnel.Snapshot{}, ctx.Err()
		}
		w.applyMetrics(ctx, a.res, a.err, a.at)
		return w.Snapshot(), nil
	}
	w.scrapeRound(ctx)
	w.inflight.Wait()
	if window > 0 {
		select {
		case <-time.After(window):
		case <-ctx.Done():
			return ztunnel.Snapshot{}, ctx.Err()
		}
		w.scrapeRound(ctx)
		w.inflight.Wait()
	}
	return w.Snapshot(), nil
}

// listPage is how many objects one LIST page of the one-shot snapshot holds.
const listPage = 250

// listPaged lists one resource in pages of listPage (resourceVersion "" so
// the server really pages), slims every object and adds it to store.
func listPaged[T any](ctx context.Context, what string, store cache.Store, list func(context.Context, metav1.ListOptions) ([]T, string, error)) error {
	opts := metav1.ListOptions{Limit: listPage}
	for {
		items, cont, err := list(ctx, opts)
		if err != nil {
			if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
				return fmt.Errorf("list %s: %w; grant get, list and watch on nodes, namespaces and pods", what, err)
			}
			return fmt.Errorf("read nodes and pods: list %s: %w", what, err)
		}
		for i := range items {
			obj, err := slim(any(&items[i]))
			if err != nil {
				return fmt.Errorf("read %s: %w", what, err)
			}
			if err := store.Add(obj); err != nil {
				return fmt.Errorf("store %s: %w", what, err)
			}
		}
		if cont == "" {
			return nil
		}
		opts.Continue = cont
	}
}
