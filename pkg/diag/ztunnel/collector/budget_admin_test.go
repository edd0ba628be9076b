package collector

import (
	"context"
	"errors"
	"testing"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/ztunnel"
)

// adminStub answers config_dump reads with a fixed result and counts them.
type adminStub struct {
	calls *int
	err   error
}

func (a adminStub) ConfigDump(context.Context, string, string) (*ztunnel.ConfigDump, error) {
	*a.calls++
	if a.err != nil {
		return nil, a.err
	}
	return &ztunnel.ConfigDump{}, nil
}

// TestFallbackAdminTakesATokenPerRequest: under a budget, a config_dump read
// that falls back from the pod proxy to a port-forward sends two requests
// through the API server and takes two tokens; one that the proxy answers
// takes one.
func TestFallbackAdminTakesATokenPerRequest(t *testing.T) {
	for _, tt := range []struct {
		name     string
		proxyErr error
		want     float64 // tokens taken
	}{
		{"answered by the proxy", nil, 1},
		{"fell back to a port-forward", errors.New("proxy refused"), 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var proxy, pf int
			w := New(fake.NewClientset(), Config{MaxRPS: 10, Admin: FallbackAdmin{adminStub{&proxy, tt.proxyErr}, adminStub{&pf, nil}}})
			before := w.limiter.Tokens()
			w.readCerts(context.Background(), scrapeJob{ns: "istio-system", name: "ztunnel-a", node: "n1", certs: true})
			taken := before - w.limiter.Tokens()
			// The bucket refills at 10/s while the test runs: allow a fifth
			// of a token for that.
			if taken < tt.want-0.2 || taken > tt.want+0.01 {
				t.Errorf("took %.2f tokens, want %.0f (proxy reads %d, port-forward reads %d)", taken, tt.want, proxy, pf)
			}
		})
	}
}
