package meshchecks

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// HBONEPort is ztunnel's inbound port inside every ambient pod.
const HBONEPort = 15008

// ProbeSource is the address kubelet probes of ambient pods come from.
var ProbeSource = netip.MustParseAddr("169.254.7.127")

// PolicyFinding is what one namespace's ingress NetworkPolicies block.
type PolicyFinding struct {
	Namespace string
	Policies  []string
	BlocksHBONE,
	BlocksProbes bool
}

// EvaluatePolicies looks at the ingress NetworkPolicies of each namespace as
// a union (policies add up): the namespace blocks HBONE when no rule admits
// TCP 15008, and blocks probes when no rule admits the source
// 169.254.7.127. Policies with different pod selectors are treated as if
// they selected the same pods, which can only under-report.
func EvaluatePolicies(pols []networkingv1.NetworkPolicy) []PolicyFinding {
	byNS := map[string][]networkingv1.NetworkPolicy{}
	for _, p := range pols {
		if isIngressPolicy(&p) {
			byNS[p.Namespace] = append(byNS[p.Namespace], p)
		}
	}
	var out []PolicyFinding
	for ns, ps := range byNS {
		hbone, probe := false, false
		var pnames []string
		for i := range ps {
			pnames = append(pnames, ps[i].Name)
			for _, r := range ps[i].Spec.Ingress {
				if admitsPort(r.Ports, HBONEPort) {
					hbone = true
				}
				if admitsSource(r.From, ProbeSource) {
					probe = true
				}
			}
		}
		if !hbone || !probe {
			sort.Strings(pnames)
			out = append(out, PolicyFinding{Namespace: ns, Policies: pnames, BlocksHBONE: !hbone, BlocksProbes: !probe})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace < out[j].Namespace })
	return out
}

func isIngressPolicy(p *networkingv1.NetworkPolicy) bool {
	if len(p.Spec.PolicyTypes) == 0 {
		return true // the API server defaults policyTypes to Ingress (plus Egress when egress rules exist)
	}
	for _, t := range p.Spec.PolicyTypes {
		if t == networkingv1.PolicyTypeIngress {
			return true
		}
	}
	return false
}

// admitsPort: no ports means every port; a named port cannot be resolved
// here and is assumed not to be 15008.
func admitsPort(ports []networkingv1.NetworkPolicyPort, port int32) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			continue
		}
		if p.Port == nil {
			return true
		}
		if p.Port.StrVal != "" {
			continue
		}
		lo := p.Port.IntVal
		hi := lo
		if p.EndPort != nil {
			hi = *p.EndPort
		}
		if lo <= port && port <= hi {
			return true
		}
	}
	return false
}

// admitsSource: no peers means every source; only an ipBlock can match the
// link-local probe address (pod and namespace selectors match pods).
func admitsSource(peers []networkingv1.NetworkPolicyPeer, addr netip.Addr) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if p.IPBlock == nil {
			continue
		}
		cidr, err := netip.ParsePrefix(p.IPBlock.CIDR)
		if err != nil || !cidr.Contains(addr) {
			continue
		}
		excepted := false
		for _, e := range p.IPBlock.Except {
			if ex, err := netip.ParsePrefix(e); err == nil && ex.Contains(addr) {
				excepted = true
			}
		}
		if !excepted {
			return true
		}
	}
	return false
}

// enrollNamespaces resolves the namespaces precheck evaluates policies for.
func (p *prechecker) enrollNamespaces(ctx context.Context) ([]string, error) {
	if len(p.o.EnrollNamespaces) > 0 {
		out := append([]string(nil), p.o.EnrollNamespaces...)
		sort.Strings(out)
		return out, nil
	}
	nss, err := p.c.Namespaces(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ns := range nss {
		if ns.Labels[ambient.LabelDataplaneMode] == ambient.DataplaneAmbient || hasInjection(ns.Labels) {
			out = append(out, ns.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (p *prechecker) networkPolicies(ctx context.Context) error {
	targets, err := p.enrollNamespaces(ctx)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return skipf("no namespaces to enroll; name them with --enroll")
	}
	want := map[string]bool{}
	for _, n := range targets {
		want[n] = true
	}
	// One paged cluster-wide list instead of a request per namespace.
	pols, err := pageAll(ctx, metav1.ListOptions{}, func(o metav1.ListOptions) ([]networkingv1.NetworkPolicy, string, error) {
		l, err := p.c.Kube.NetworkingV1().NetworkPolicies("").List(ctx, o)
		if err != nil {
			return nil, "", err
		}
		return l.Items, l.Continue, nil
	})
	if err != nil {
		return fmt.Errorf("list networkpolicies: %w", err)
	}
	var scoped []networkingv1.NetworkPolicy
	for _, pol := range pols {
		if want[pol.Namespace] {
			scoped = append(scoped, pol)
		}
	}
	findings := EvaluatePolicies(scoped)
	if len(findings) == 0 {
		return infof("checked %d namespace(s): %s", len(targets), names(targets))
	}
	var lines []string
	for _, f := range findings {
		var what []string
		if f.BlocksHBONE {
			what = append(what, "TCP 15008")
		}
		if f.BlocksProbes {
			what = append(what, "probes from 169.254.7.127")
		}
		lines = append(lines, fmt.Sprintf("namespace %s: policies %s admit no %s", f.Namespace, strings.Join(f.Policies, ", "), strings.Join(what, " and no ")))
	}
	return fmt.Errorf("%s", strings.Join(lines, "\n"))
}
