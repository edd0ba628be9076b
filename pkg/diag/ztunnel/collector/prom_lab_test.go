package collector

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/promlab"
	sim "github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/ztunnelsim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

// TestCollectFromPrometheus runs a real Prometheus scraping the same
// stand-ins the direct path reads (each also served on loopback, labelled
// with its pod as Istio's Prometheus add-on labels targets), and takes a
// snapshot from it: one query, no metrics through the API server, and the
// verdicts a user reads match the direct path's where metrics decide them.
func TestCollectFromPrometheus(t *testing.T) {
	s := deployScenarios(t)
	removeAppPods(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var targets []promlab.Target
	for node, st := range s.dep.Stands {
		srv := httptest.NewServer(st.Handler())
		t.Cleanup(srv.Close)
		targets = append(targets, promlab.Target{Addr: strings.TrimPrefix(srv.URL, "http://"),
			Labels: map[string]string{"namespace": s.ztunnelNS, "pod": s.dep.Pods[node]}})
	}
	prom := promlab.Start(t, targets, time.Second)
	markZtunnelNotReady(t, s)

	clients, counter := countingClients(t, s.lab.Config)
	src, err := NewPrometheus(prom.URL, "", nil, s.ztunnelNS)
	if err != nil {
		t.Fatal(err)
	}
	src.Window = 5 * time.Second
	cfg := s.config()
	cfg.Metrics = src
	// Prometheus applies new targets every 5 s; wait until every series has
	// a whole window of samples, or rate() extrapolates from a young series.
	for deadline := time.Now().Add(30 * time.Second); ; {
		v, _, _, err := src.api.Query(ctx, `count_over_time(istio_tcp_connections_opened_total[5s]) >= 5`, time.Now())
		if vec, ok := v.(model.Vector); err == nil && ok && len(vec) >= len(s.dep.Stands) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus has no rate() for every stand-in after 30s: %v %v", v, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	begin := time.Now()
	snap, err := Collect(ctx, clients.Kube, cfg, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("snapshot from %s in %s; API requests %v; prometheus queries %d", src, time.Since(begin).Round(time.Millisecond), counter.snapshot(), src.Queries)
	if src.Queries != 1 {
		t.Errorf("prometheus queries = %d, want 1 per refresh", src.Queries)
	}
	want := map[sim.Scenario]struct {
		state ztunnel.State
		code  string
	}{
		sim.Healthy:            {ztunnel.StateHealthy, ""},
		sim.NotReady:           {ztunnel.StateUnhealthy, ztunnel.ReasonZtunnelNotReady},
		sim.NoZtunnel:          {ztunnel.StateUnhealthy, ztunnel.ReasonNoZtunnel},
		sim.FailingConnections: {ztunnel.StateUnhealthy, ztunnel.ReasonConnFailures},
		sim.Restarting:         {ztunnel.StateWarning, ztunnel.ReasonRecentRestart},
		sim.PendingProxies:     {ztunnel.StateWarning, ztunnel.ReasonPendingProxies},
		// Certificates are not in the metrics: a node that looks healthy by
		// them is not read (the TUI reads the nodes on screen).
		sim.ExpiringCerts: {ztunnel.StateHealthy, ""},
	}
	suspects := 0
	for node, sc := range s.byNode {
		n := nodeByName(&snap, node)
		w := want[sc]
		if n == nil || n.State != w.state || (w.code != "" && n.Reasons[0].Code != w.code) {
			t.Errorf("%s (%s): %+v, want %s %s", node, sc, n, w.state, w.code)
			continue
		}
		if sc != sim.NoZtunnel && (n.Metrics == nil || n.Metrics.Build != "1.24.1") {
			t.Errorf("%s (%s): metrics %+v, want istio_build 1.24.1 from prometheus", node, sc, n.Metrics)
		}
		if n.Probe != nil {
			suspects++
		}
	}
	h := nodeByName(&snap, s.nodeOf[sim.Healthy])
	if h.Rates == nil || h.Rates.OpenedPerSec < 5 || h.Rates.OpenedPerSec > 15 {
		t.Errorf("healthy node rates from rate(): %+v, want about 10 connections/s", h.Rates)
	}
	// Only suspect nodes are read directly: a probe each, and a config_dump
	// for those that answer.
	if got := counter.snapshot()["GET proxy"]; got > 2*suspects || suspects > 4 {
		t.Errorf("%d proxy requests for %d suspect nodes; healthy nodes must not be scraped through the API server", got, suspects)
	}
}
