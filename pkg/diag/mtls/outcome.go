package mtls

import (
	"fmt"
	"strings"
)

// Outcome is the verdict of a whole run.
type Outcome string

// Outcomes of a run.
const (
	// OutcomePass: at least one pair of mesh workloads was seen and every
	// judged row passed (and every --expect pair).
	OutcomePass Outcome = "PASS"
	// OutcomeFail: plaintext or bypassed traffic between mesh workloads, a
	// pair --require-pqc refuses, or an --expect pair missing or not passing.
	OutcomeFail Outcome = "FAIL"
	// OutcomeInconclusive: nothing failed, but nothing was proven either
	// (no mesh pair, no TCP, addresses not mapped, unproven rows).
	OutcomeInconclusive Outcome = "INCONCLUSIVE"
)

// Rules are what a run asks beyond the default judging.
type Rules struct {
	// RequirePQC fails rows that negotiated a classical key exchange.
	RequirePQC bool
	// Expect lists pairs that must appear and pass.
	Expect []Expectation
}

// Expectation is a client -> server pair of workload names that must
// appear in the capture and pass. A name matches a workload by
// namespace/pod, pod, or as a prefix of its pod name followed by "-" (the
// pods of a Deployment), optionally with the namespace: shop/cart.
type Expectation struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Namespaces maps a name's namespace part to the namespace it stands
	// for (verify-mtls scenario's "ambient" and "plain" name namespaces
	// whose names change every run); a namespace not in it is itself.
	Namespaces map[string]string `json:"-"`
}

func (e Expectation) String() string { return e.From + "->" + e.To }

// ParseExpectation reads FROM->TO.
func ParseExpectation(s string) (Expectation, error) {
	from, to, ok := strings.Cut(s, "->")
	from, to = strings.TrimSpace(from), strings.TrimSpace(to)
	if !ok || from == "" || to == "" || strings.Contains(to, "->") {
		return Expectation{}, fmt.Errorf("expected pair %q: want FROM->TO with workload names, e.g. shop/cart->shop/checkout", s)
	}
	return Expectation{From: from, To: to}, nil
}

// ExpectationResult says what became of one expected pair.
type ExpectationResult struct {
	Expectation
	// Seen: at least one pair in the capture matches.
	Seen bool `json:"seen"`
	// Verdict is the worst verdict of the matching pairs (Info when none).
	Verdict Verdict `json:"verdict"`
	Passed  bool    `json:"passed"`
	Reason  string  `json:"reason"`
}

// NodeCapture is what one node's live capture held.
type NodeCapture struct {
	Node    string `json:"node"`
	Packets uint64 `json:"packets"`
	TCP     uint64 `json:"tcp"`
	Flows   int    `json:"flows"`
}

// Matches reports whether the endpoint (namespace/pod, or an address when
// it is no pod) is the workload an --expect name means: namespace/pod, pod,
// or a pod-name prefix followed by "-"; aliases name namespaces
// (Expectation.Namespaces).
func (e Endpoint) Matches(want string, aliases map[string]string) bool {
	if e.Pod == "" {
		return e.Name == want
	}
	pod := want
	if ns, p, scoped := strings.Cut(want, "/"); scoped {
		if bound, ok := aliases[ns]; ok {
			ns = bound
		}
		if ns != e.Namespace {
			return false
		}
		pod = p
	}
	return e.Pod == pod || strings.HasPrefix(e.Pod, pod+"-")
}

// Decide sets the run's verdict from the judged rows, the rules and what
// the capture held. A FAIL needs a failed row or expectation; a PASS needs
// a mesh pair and every judged row passing; anything else is INCONCLUSIVE
// with the reason.
func (rep *Report) Decide(rules Rules) {
	rep.Reasons = nil
	rep.Expectations = nil
	failed := false
	if rep.Summary.Fail > 0 {
		failed = true
		rep.Reasons = append(rep.Reasons, fmt.Sprintf("%d row(s) failed: %s", rep.Summary.Fail, firstReason(rep, Fail)))
	}
	for _, e := range rules.Expect {
		res := ExpectationResult{Expectation: e, Verdict: Info}
		for _, p := range rep.Pairs {
			if !p.Client.Matches(e.From, e.Namespaces) || !p.Server.Matches(e.To, e.Namespaces) {
				continue
			}
			if !res.Seen || p.Verdict.rank() > res.Verdict.rank() {
				res.Verdict = p.Verdict
			}
			res.Seen = true
		}
		switch {
		case !res.Seen:
			res.Reason = "expected pair " + e.String() + " is missing: no traffic between them in the capture"
		case res.Verdict != Pass:
			res.Reason = fmt.Sprintf("expected pair %s is %s, not PASS", e, strings.ToUpper(string(res.Verdict)))
		default:
			res.Passed, res.Reason = true, "seen and passed"
		}
		if !res.Passed {
			failed = true
			rep.Reasons = append(rep.Reasons, res.Reason)
		}
		rep.Expectations = append(rep.Expectations, res)
	}
	switch {
	case failed:
		rep.Verdict = OutcomeFail
	case rep.Summary.MeshPairs == 0:
		rep.Verdict = OutcomeInconclusive
		rep.Reasons = append(rep.Reasons, rep.noEvidence())
	case rep.Summary.Warn > 0:
		rep.Verdict = OutcomeInconclusive
		rep.Reasons = append(rep.Reasons, fmt.Sprintf("%d row(s) between mesh workloads could not be proven: %s", rep.Summary.Warn, firstReason(rep, Warn)))
	default:
		rep.Verdict = OutcomePass
	}
	if rep.Verdict == OutcomeInconclusive {
		for _, n := range rep.Nodes {
			if n.Packets == 0 {
				rep.Reasons = append(rep.Reasons, "the capture on node "+n.Node+" saw nothing (0 packets)")
			} else if n.Flows == 0 {
				rep.Reasons = append(rep.Reasons, fmt.Sprintf("the capture on node %s saw %d packets but no TCP connection", n.Node, n.Packets))
			}
		}
	}
	rep.Passed = rep.Verdict == OutcomePass
}

// noEvidence says why no pair of mesh workloads was seen, from the
// emptiest cause up.
func (rep *Report) noEvidence() string {
	st, s := rep.Stats, rep.Summary
	switch {
	case s.Addresses == 0 && st.Packets == 0:
		return "no mesh pair: the capture holds no packets"
	case s.Addresses == 0 && st.TCP == 0:
		msg := fmt.Sprintf("no mesh pair: no TCP at all in the capture (%d packets: %d other IP, %d not IP, %d undecodable)", st.Packets, st.NonTCP, st.NonIP, st.Undecodable)
		if st.NonTCP > 0 || st.Undecodable > 0 {
			msg += "; if this is a node's NIC on an overlay network, the pod traffic may be inside an encapsulation the decoder could not open"
		}
		return msg
	case s.Addresses == 0:
		return fmt.Sprintf("no mesh pair: %d TCP packets but no connection could be read from them", st.TCP)
	case s.MappedAddresses == 0:
		return fmt.Sprintf("no mesh pair: none of the %d addresses in the capture maps to a pod; check the pod mapping (--pods, --config-dump, the cluster) and that the capture is of this cluster", s.Addresses)
	}
	edge := 0
	for _, p := range rep.Pairs {
		if p.Category == CategoryEdge {
			edge++
		}
	}
	return fmt.Sprintf("no mesh pair: no two mesh workloads talked in the capture (%d pair(s), %d with one end in the mesh; %d of %d addresses mapped)",
		len(rep.Pairs), edge, s.MappedAddresses, s.Addresses)
}

// firstReason is the reason of the first row with verdict v, named by its pair.
func firstReason(rep *Report, v Verdict) string {
	for _, p := range rep.Pairs {
		for _, r := range p.Rows {
			if r.Verdict == v {
				return fmt.Sprintf("%s -> %s port %d: %s", r.Client.Name, r.Server.Name, r.Port, r.Reason)
			}
		}
	}
	return ""
}
