package scenario

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
)

func TestCheckExpectation(t *testing.T) {
	tests := []struct {
		spec string
		want error
	}{
		{"ambient/client-same-node->ambient/server", nil},
		{"client->server", nil}, // a prefix and a pod name, both namespaces
		{"ambient/client-cross-node->server", nil},
		{"ambient/client->plain/server", ErrNeverMesh},
		{"plain/client-same-node->ambient/server", ErrNeverMesh},
		{"shop/cart->shop/checkout", ErrUnknownWorkload},
		{"ambient/client-same-node->ambient/serv", ErrUnknownWorkload}, // a prefix must end at a "-"
		{"ambient-verify-x/client->ambient/server", ErrUnknownWorkload},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			e, err := mtls.ParseExpectation(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			err = CheckExpectation(e)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if errors.Is(err, ErrUnknownWorkload) && !strings.Contains(err.Error(), "ambient/server, ambient/client-same-node, ambient/client-cross-node, plain/server") {
				t.Errorf("err = %v: does not name the workloads the scenario deploys", err)
			}
		})
	}
}

// scenarioCapture is a run's capture: the namespaces have this run's
// names, HBONE between the ambient pods (negotiating group), plaintext
// between the plain ones.
func scenarioCapture(group uint16) ([]pcap.Flow, mtls.PodMap) {
	pods := mtls.PodMap{
		meshClient:  {Namespace: "ambient-verify-r1", Pod: "client-same-node", Enrolled: true},
		meshServer:  {Namespace: "ambient-verify-r1", Pod: "server", Enrolled: true},
		plainClient: {Namespace: "ambient-verify-plain-r1", Pod: "client-same-node"},
		plainServer: {Namespace: "ambient-verify-plain-r1", Pod: "server"},
	}
	hb := flow(meshClient, meshServer, 15008, pcap.ClassHBONE, 900)
	hb.KeyShareGroup = group
	return []pcap.Flow{hb, flow(plainClient, plainServer, 8080, pcap.ClassPlaintext, 90)}, pods
}

// TestRunRules judges a run's capture with its --expect and --require-pqc
// rules through the verdict code, then the run's cases and verdict.
func TestRunRules(t *testing.T) {
	const mlkem, x25519 = 0x11ec, 0x001d
	expect := func(specs ...string) []mtls.Expectation {
		var out []mtls.Expectation
		for _, s := range specs {
			e, err := mtls.ParseExpectation(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
		return out
	}
	tests := []struct {
		name       string
		opts       Options
		group      uint16
		want       mtls.Outcome
		meshCase   string
		reason     string
		expectPass []bool
	}{
		{"expected pairs seen and passed", Options{Expect: expect("ambient/client-same-node->ambient/server", "client->server")}, mlkem, mtls.OutcomePass, CasePass, "", []bool{true, true}},
		// client-cross-node is deployed only with a second node; here it was not.
		{"expected pair missing", Options{Expect: expect("ambient/client-cross-node->ambient/server")}, mlkem, mtls.OutcomeFail, CasePass,
			"expected pair ambient/client-cross-node->ambient/server is missing", []bool{false}},
		{"post-quantum group passes", Options{RequirePQC: true}, mlkem, mtls.OutcomePass, CasePass, "", nil},
		{"classical group fails", Options{RequirePQC: true, Expect: expect("ambient/client-same-node->ambient/server")}, x25519, mtls.OutcomeFail, CaseFail,
			"negotiated the classical group x25519", []bool{false}},
		{"classical group without the rule passes", Options{}, x25519, mtls.OutcomePass, CasePass, "", nil},
		{"unseen group is not proven", Options{RequirePQC: true}, 0, mtls.OutcomeInconclusive, CaseInconclusive, "the negotiated key-exchange group was not seen", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flows, pods := scenarioCapture(tt.group)
			rep := mtls.JudgeCapture(flows, pcap.Stats{Flows: len(flows)}, pods, tt.opts.rules("ambient-verify-r1", "ambient-verify-plain-r1"))
			res := &Result{Capture: rep, Expectations: rep.Expectations, Cases: []Case{
				{From: "ambient-verify-r1/client-same-node", To: "ambient-verify-r1/server", fromIP: meshClient, toIP: meshServer, FromEnrolled: true, ToEnrolled: true, Expected: ExpectHBONE},
				{From: "ambient-verify-plain-r1/client-same-node", To: "ambient-verify-plain-r1/server", fromIP: plainClient, toIP: plainServer, NegativeControl: true, Expected: ExpectDirect},
			}}
			for i := range res.Cases {
				judgeCase(&res.Cases[i], rep, 8080)
			}
			res.decide()
			if res.Verdict != tt.want || res.Cases[0].Result != tt.meshCase || !strings.Contains(strings.Join(res.Reasons, "\n")+res.Cases[0].Reason, tt.reason) {
				t.Errorf("verdict %s, ambient case %s (%s), reasons %q; want %s, %s, %q", res.Verdict, res.Cases[0].Result, res.Cases[0].Reason, res.Reasons, tt.want, tt.meshCase, tt.reason)
			}
			if len(res.Expectations) != len(tt.expectPass) {
				t.Fatalf("expectations %+v, want %d", res.Expectations, len(tt.expectPass))
			}
			for i, e := range res.Expectations {
				// Named as given, not with this run's namespaces.
				if e.Passed != tt.expectPass[i] || e.String() != tt.opts.Expect[i].String() {
					t.Errorf("expectation %s: passed %v (%s), want %v", e, e.Passed, e.Reason, tt.expectPass[i])
				}
			}
		})
	}
}

// TestExpectationAliasOnlyInItsRun: the alias binds to this run's
// namespaces; pods of another namespace with the same names do not match.
func TestExpectationAliasOnlyInItsRun(t *testing.T) {
	flows, pods := scenarioCapture(0x11ec)
	other := netip.MustParseAddr("10.0.7.1")
	pods[other] = mtls.Workload{Namespace: "ambient-verify-old", Pod: "client-cross-node", Enrolled: true}
	flows = append(flows, flow(other, meshServer, 15008, pcap.ClassHBONE, 900))
	flows[len(flows)-1].KeyShareGroup = 0x11ec
	e, err := mtls.ParseExpectation("ambient/client-cross-node->ambient/server")
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Expect: []mtls.Expectation{e}}
	rep := mtls.JudgeCapture(flows, pcap.Stats{Flows: len(flows)}, pods, o.rules("ambient-verify-r1", "ambient-verify-plain-r1"))
	if len(rep.Expectations) != 1 || rep.Expectations[0].Seen {
		t.Errorf("expectations %+v: a pod of another namespace matched", rep.Expectations)
	}
}
