package cmd

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls/scenario"
)

func TestVerifyMTLSScenarioFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--port", "15008"}, "--port 15008"},
		{[]string{"--port", "0"}, "--port 0"},
		{[]string{"--keep", "--cleanup"}, "contradict"},
		{[]string{"--duration", "0s"}, "must be positive"},
		{[]string{"--client-command", " "}, "--client-command is empty"},
		{[]string{"-o", "xml"}, "unknown output format"},
		{[]string{"extra"}, "unknown command"},
		{[]string{"--expect", "cart->checkout"}, "--expect: expected pair cart->checkout: \"cart\": the scenario deploys no such workload; it deploys ambient/server, ambient/client-same-node, ambient/client-cross-node, plain/server"},
		{[]string{"--expect", "ambient/client->plain/server"}, "--expect: expected pair ambient/client->plain/server: \"plain/server\" is only deployed outside the mesh"},
		{[]string{"--expect", "ambient/server"}, "want FROM->TO"},
		{[]string{"--cleanup", "--require-pqc"}, "drop them with --cleanup"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := runVerify(t, nil, append([]string{"scenario"}, tt.args...)...)
			var ue UsageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want a usage error with %q", err, tt.want)
			}
		})
	}
}

func TestVerifyMTLSScenarioHelp(t *testing.T) {
	out, _, err := runVerify(t, nil, "scenario", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kubectl ambient verify-mtls scenario", "negative control", "--client-command", "--capture-image", "--cleanup", "docs/rbac.md",
		"--expect ambient/client-cross-node->ambient/server", "--require-pqc", "ambient/<pod> and plain/<pod>"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestPrintScenarioTable(t *testing.T) {
	res := &scenario.Result{Verdict: mtls.OutcomeFail, Nodes: []string{"node-a"}, Port: 8080, Cases: []scenario.Case{
		{From: "ambient-verify-x/client-same-node", To: "ambient-verify-x/server", FromEnrolled: true, ToEnrolled: true, Placement: scenario.SameNode,
			Expected: scenario.ExpectHBONE, Observed: "plaintext on 8080", Result: scenario.CaseFail,
			Reason: "port 8080: app port carried plaintext payload between ambient workloads: traffic bypassed ztunnel"},
		{From: "ambient-verify-plain-x/client-same-node", To: "ambient-verify-plain-x/server", Placement: scenario.SameNode, NegativeControl: true,
			Expected: scenario.ExpectDirect, Observed: "plaintext on 8080", Result: scenario.CasePass, Reason: "plaintext seen: the capture sees traffic outside the mesh"},
		{From: "ambient-verify-x/client-cross-node", To: "ambient-verify-plain-x/server", FromEnrolled: true, Placement: scenario.CrossNode,
			Expected: scenario.ExpectDirect, Observed: "-", Result: scenario.CaseSkipped, Reason: "only one ready, schedulable node: no cross-node placement possible"},
	}}
	var b bytes.Buffer
	if err := printScenarioTable(&b, res); err != nil {
		t.Fatal(err)
	}
	golden(t, "scenario_table", b.String())
}

func TestScenarioJUnit(t *testing.T) {
	res := &scenario.Result{Verdict: mtls.OutcomeInconclusive, Reasons: []string{"the capture on node n1 saw nothing (0 packets)"}, Cases: []scenario.Case{
		{From: "m/client", To: "m/server", Placement: scenario.SameNode, Result: scenario.CasePass},
		{From: "m/client-x", To: "m/server", Placement: scenario.CrossNode, Result: scenario.CaseInconclusive, Reason: "nothing captured between them"},
		{From: "p/client-x", To: "p/server", Placement: scenario.CrossNode, Result: scenario.CaseSkipped, Reason: "one node"},
	}, Expectations: []mtls.ExpectationResult{
		{Expectation: mtls.Expectation{From: "ambient/client", To: "ambient/server"}, Seen: true, Verdict: mtls.Pass, Passed: true, Reason: "seen and passed"},
		{Expectation: mtls.Expectation{From: "ambient/client-cross-node", To: "ambient/server"}, Verdict: mtls.Info, Reason: "expected pair ambient/client-cross-node->ambient/server is missing"},
	}}
	path := filepath.Join(t.TempDir(), "scenario.xml")
	if err := writeJUnit(path, scenarioJUnit(res)); err != nil {
		t.Fatal(err)
	}
	assertJUnit(t, path, "INCONCLUSIVE")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`tests="6" failures="3"`, `<skipped message="one node">`, `type="INCONCLUSIVE"`, "the capture on node n1 saw nothing",
		`<testcase name="ambient/client-&gt;ambient/server" classname="verify-mtls-scenario.expect"></testcase>`,
		`<testcase name="ambient/client-cross-node-&gt;ambient/server" classname="verify-mtls-scenario.expect">`,
		`<failure message="expected pair ambient/client-cross-node-&gt;ambient/server is missing" type="FAIL">`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("junit lacks %q:\n%s", want, b)
		}
	}
}

func TestPrintScenarioTableExpectations(t *testing.T) {
	res := &scenario.Result{Verdict: mtls.OutcomeFail, Nodes: []string{"node-a"}, Port: 8080, RequirePQC: true, Cases: []scenario.Case{
		{From: "ambient-verify-x/client-same-node", To: "ambient-verify-x/server", FromEnrolled: true, ToEnrolled: true, Placement: scenario.SameNode,
			Expected: scenario.ExpectHBONE, Observed: "hbone on 15008", Result: scenario.CasePass, Reason: "HBONE mTLS on 15008, no payload on the app port"},
	}, Expectations: []mtls.ExpectationResult{
		{Expectation: mtls.Expectation{From: "ambient/client-cross-node", To: "ambient/server"}, Verdict: mtls.Info, Reason: "expected pair ambient/client-cross-node->ambient/server is missing: no traffic between them in the capture"},
	}}
	var b bytes.Buffer
	if err := printScenarioTable(&b, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Expected pairs (--expect):\n  FAIL  ambient/client-cross-node->ambient/server: expected pair ambient/client-cross-node->ambient/server is missing",
		"FAIL: an expected pair is missing or did not pass (1 pass, 0 fail"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
