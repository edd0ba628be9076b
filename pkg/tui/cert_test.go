package tui

import (
	"testing"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

// TestCertStateUsesTheOneRule: the node detail warns at min(24h, half the
// lifetime), as status and check do, not at every certificate under 24 h
// (Istio's certificates live 24 h, so that made every one yellow).
func TestCertStateUsesTheOneRule(t *testing.T) {
	at := func(d time.Duration) *time.Time { v := t0.Add(d); return &v }
	for _, tt := range []struct {
		name string
		cert ztunnel.Certificate
		want ztunnel.State
	}{
		{"24h lifetime, 20h left", ztunnel.Certificate{State: "Available", ValidFrom: at(-4 * time.Hour), Expiration: at(20 * time.Hour)}, ztunnel.StateHealthy},
		{"24h lifetime, 10h left", ztunnel.Certificate{State: "Available", ValidFrom: at(-14 * time.Hour), Expiration: at(10 * time.Hour)}, ztunnel.StateWarning},
		{"unknown lifetime, 3h left", ztunnel.Certificate{State: "Available", Expiration: at(3 * time.Hour)}, ztunnel.StateWarning},
		{"30 day lifetime, 2 days left", ztunnel.Certificate{State: "Available", ValidFrom: at(-28 * 24 * time.Hour), Expiration: at(48 * time.Hour)}, ztunnel.StateHealthy},
		{"expired", ztunnel.Certificate{State: "Available", ValidFrom: at(-25 * time.Hour), Expiration: at(-time.Hour)}, ztunnel.StateUnhealthy},
		{"no expiry", ztunnel.Certificate{State: "Available"}, ztunnel.StateHealthy},
		{"unavailable", ztunnel.Certificate{State: "Unavailable: signing failed", ValidFrom: at(-time.Hour), Expiration: at(23 * time.Hour)}, ztunnel.StateUnhealthy},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, exp := certState(tt.cert, t0); got != tt.want {
				t.Errorf("certState = %v (%s), want %v", got, exp, tt.want)
			}
		})
	}
}
