package scenario

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
)

// Namespace aliases of expected pairs: the scenario's namespaces change
// name every run (ambient-verify-<id>, ambient-verify-plain-<id>), so an
// expected pair names them "ambient" and "plain".
const (
	AliasAmbient = "ambient"
	AliasPlain   = "plain"
)

// ErrUnknownWorkload is returned (wrapped) for an expected pair naming a
// workload the scenario does not deploy.
var ErrUnknownWorkload = errors.New("the scenario deploys no such workload")

// ErrNeverMesh is returned (wrapped) for an expected pair that can never
// pass: an end the scenario deploys only outside the mesh.
var ErrNeverMesh = errors.New("an expected pair must be between mesh workloads")

// Workloads are the names of the workloads a run deploys (the cross-node
// client only when a second node is schedulable), as expected pairs name
// them.
func Workloads() []string {
	var out []string
	for _, ns := range []string{AliasAmbient, AliasPlain} {
		for _, p := range podNames {
			out = append(out, ns+"/"+p)
		}
	}
	return out
}

// podNames are the scenario's pods, in each of its namespaces.
var podNames = []string{"server", "client-same-node", "client-cross-node"}

// CheckExpectation refuses an expected pair that names a workload the
// scenario does not deploy, or that could only match a pair with an end
// outside the mesh (such a pair is never judged, so it never passes). A
// name means what it means to verify-mtls (namespace/pod, pod, or a
// pod-name prefix), with the namespaces spelled "ambient" and "plain".
func CheckExpectation(e mtls.Expectation) error {
	for _, name := range []string{e.From, e.To} {
		enrolled, plain := false, false
		for _, ns := range []string{AliasAmbient, AliasPlain} {
			for _, p := range podNames {
				if (mtls.Endpoint{Name: ns + "/" + p, Namespace: ns, Pod: p}).Matches(name, nil) {
					enrolled, plain = enrolled || ns == AliasAmbient, plain || ns == AliasPlain
				}
			}
		}
		switch {
		case !enrolled && !plain:
			return fmt.Errorf("expected pair %s: %q: %w; it deploys %s (a pod name matches in both namespaces, a prefix such as client matches both clients)",
				e, name, ErrUnknownWorkload, strings.Join(Workloads(), ", "))
		case !enrolled:
			return fmt.Errorf("expected pair %s: %q is only deployed outside the mesh: %w (name the ambient/ workloads)", e, name, ErrNeverMesh)
		}
	}
	return nil
}

// rules are the judging rules of a run: its expected pairs, with the
// aliases bound to this run's namespaces, and RequirePQC.
func (o *Options) rules(mesh, plain string) mtls.Rules {
	r := mtls.Rules{RequirePQC: o.RequirePQC}
	aliases := map[string]string{AliasAmbient: mesh, AliasPlain: plain}
	for _, e := range o.Expect {
		e.Namespaces = aliases
		r.Expect = append(r.Expect, e)
	}
	return r
}
