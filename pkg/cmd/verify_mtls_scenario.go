package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls/capture"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls/scenario"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// VerifyMTLSScenarioOptions holds the flags of `kubectl ambient verify-mtls scenario`.
type VerifyMTLSScenarioOptions struct {
	// The scenario's own settings are bound to flags directly.
	scenario.Options
	Output  OutputFlags
	Cleanup bool
	JUnit   string
	// expect holds the --expect flags; Validate parses them into Expect.
	expect []string

	factory kube.Factory
	streams genericiooptions.IOStreams
	clients *kube.Clients // set by Complete
}

// NewCmdVerifyMTLSScenario builds `kubectl ambient verify-mtls scenario`.
func NewCmdVerifyMTLSScenario(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &VerifyMTLSScenarioOptions{
		Options: scenario.Options{
			ClientImage: scenario.DefaultClientImage, ClientCommand: scenario.DefaultClientCommand,
			ServerImage: scenario.DefaultServerImage, CaptureImage: capture.DefaultImage, Port: scenario.DefaultPort,
			Duration: 15 * time.Second, PodTimeout: 2 * time.Minute,
		},
		Output: NewOutputFlags(), factory: f, streams: streams,
	}
	cmd := &cobra.Command{
		Use:   "scenario",
		Short: "Deploy test clients and servers in and out of the mesh, send traffic, and prove the wire both ways",
		Long: `scenario proves ambient mTLS end to end with workloads of its own. It creates two
namespaces, ambient-verify-<id> (labelled istio.io/dataplane-mode=ambient) and
ambient-verify-plain-<id> (not enrolled), each with a server pod and client pods on
the server's node and on a second node. It waits until the pods run and istio-cni
has captured the ambient ones (annotation ambient.istio.io/redirection=enabled),
captures on every involved node as verify-mtls does live, runs the client command
in every client against every server, and judges each case both ways:

  - ambient -> ambient must be HBONE on port 15008, with no payload on the app port;
  - a case with an end outside the mesh must reach the app port directly;
  - not enrolled -> not enrolled is the negative control: it must show plaintext,
    or the capture cannot see the traffic and the run fails.

With a single schedulable node the cross-node cases are reported as skipped. The
namespaces, pods and capture pods are deleted at the end, also on Ctrl-C or error,
unless --keep; --cleanup deletes what interrupted runs left behind (namespaces
labelled kubectl-ambient.io/scenario).

It needs RBAC to create, list, watch and delete namespaces and pods, create
pods/exec, and list nodes (docs/rbac.md), and admission of privileged
host-network capture pods (one per node). They run in a capture namespace of
their own (ambient-capture-<id>, labelled pod-security.kubernetes.io/enforce=
privileged, deleted at the end), never in the scenario's workload namespaces.

The client command runs with sh -c in the client pods; {target} (server ip:port),
{host}, {port}, {pod} and {namespace} (the client pod) are replaced. It must exit 0
when its requests worked.

--expect FROM->TO and --require-pqc mean what they mean to verify-mtls and are
judged by the same code. The scenario's namespaces change name every run, so
--expect names its workloads ambient/<pod> and plain/<pod>; it deploys server,
client-same-node and client-cross-node (with a second node) in each. A pod name
without a namespace matches in both, a prefix such as client matches both
clients. The pair must appear in the capture and pass; a name the scenario does
not deploy, or one it deploys only outside the mesh (plain/...), is a usage
error. --require-pqc fails an ambient -> ambient case whose HBONE handshake
negotiated a classical key-exchange group (a group that was not seen is not
proven: INCONCLUSIVE).

The verdict is the one verify-mtls gives: PASS (exit 0) when every case matched
its expectation and every --expect pair passed; FAIL (exit 1) when one did not;
INCONCLUSIVE (exit 3) when nothing failed but a case was not proven (nothing
captured between its pods, or an HBONE handshake without the server's
ServerHello, or its group unseen with --require-pqc), naming the node whose
capture saw nothing. --junit FILE writes one testcase per case, one per --expect
pair, plus one for the verdict (INCONCLUSIVE is a failure there).`,
		Example: `  # Run the scenario with the default images and print the cases
  kubectl ambient verify-mtls scenario

  # In CI: JSON, a longer capture window, images from a private registry
  kubectl ambient verify-mtls scenario -o json --duration 30s \
    --client-image registry.example.com/netshoot:v0.13 \
    --server-image registry.example.com/agnhost:2.45 \
    --capture-image registry.example.com/netshoot:v0.13

  # Your own traffic, e.g. more requests per case
  kubectl ambient verify-mtls scenario --client-command 'for i in $(seq 20); do curl -sf -o /dev/null http://{target}/; done'

  # JUnit for the CI's test view
  kubectl ambient verify-mtls scenario --junit scenario.xml

  # CI gate: the cross-node ambient pair must be seen and pass, with a
  # post-quantum hybrid key exchange (X25519MLKEM768) on every HBONE handshake
  kubectl ambient verify-mtls scenario --junit scenario.xml --require-pqc \
    --expect ambient/client-cross-node->ambient/server --expect client-same-node->server

  # Keep the namespaces to look around, then remove them
  kubectl ambient verify-mtls scenario --keep
  kubectl ambient verify-mtls scenario --cleanup`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			// Flags first: a usage error never waits for a kubeconfig.
			if err := o.Validate(); err != nil {
				return err
			}
			if err := o.Complete(); err != nil {
				return err
			}
			c.SilenceUsage = true
			return o.Run(c.Context())
		},
	}
	fl := cmd.Flags()
	o.Output.AddFlags(cmd)
	fl.StringVar(&o.JUnit, "junit", "", "also write the cases and the verdict as JUnit XML to this file (mode 0600)")
	fl.StringArrayVar(&o.expect, "expect", nil, "FROM->TO scenario workloads (ambient/server, ambient/client-same-node, ambient/client-cross-node, plain/...; a pod name or prefix matches in both namespaces) that must appear and pass; repeatable")
	fl.BoolVar(&o.RequirePQC, "require-pqc", false, "fail cases whose HBONE handshake negotiated a classical (not post-quantum hybrid) key exchange")
	fl.StringVar(&o.ClientImage, "client-image", o.ClientImage, "client pod image (must contain sh and what --client-command runs)")
	fl.StringVar(&o.ClientCommand, "client-command", o.ClientCommand, "traffic command run with sh -c in each client pod per server; {target}, {host}, {port}, {pod}, {namespace} are replaced")
	fl.StringVar(&o.ServerImage, "server-image", o.ServerImage, "server pod image; the default serves HTTP on --port (agnhost netexec)")
	fl.StringVar(&o.ServerCommand, "server-command", "", "command run with sh -c in the server container instead of agnhost netexec; must serve TCP on --port")
	fl.StringVar(&o.CaptureImage, "capture-image", o.CaptureImage, "capture pod image (must contain tcpdump and timeout)")
	fl.IntVar(&o.Port, "port", o.Port, "the server's app port")
	fl.DurationVar(&o.Duration, "duration", o.Duration, "capture window; the traffic is sent inside it")
	fl.DurationVar(&o.PodTimeout, "pod-timeout", o.PodTimeout, "how long to wait for the scenario pods to run and be captured by istio-cni")
	fl.BoolVar(&o.Keep, "keep", false, "leave the namespaces and pods in place (delete them later with --cleanup)")
	fl.BoolVar(&o.Cleanup, "cleanup", false, "delete the namespaces of scenario runs left behind, then exit")
	return cmd
}

// Validate checks the flags.
func (o *VerifyMTLSScenarioOptions) Validate() error {
	if err := o.Output.Validate(); err != nil {
		return err
	}
	switch {
	case o.Port < 1 || o.Port > 65535 || o.Port == 15008:
		return UsageError{fmt.Errorf("--port %d: want 1-65535 and not 15008 (HBONE)", o.Port)}
	case o.Duration <= 0 || o.PodTimeout <= 0:
		return UsageError{errors.New("--duration and --pod-timeout must be positive")}
	case strings.TrimSpace(o.ClientCommand) == "":
		return UsageError{errors.New("--client-command is empty")}
	case o.Cleanup && o.Keep:
		return UsageError{errors.New("--cleanup and --keep contradict each other")}
	case o.Cleanup && (len(o.expect) > 0 || o.RequirePQC):
		return UsageError{errors.New("--expect and --require-pqc judge a run; drop them with --cleanup")}
	}
	expect, err := parseExpect(o.expect, scenario.CheckExpectation)
	if err != nil {
		return err
	}
	o.Expect = expect
	return nil
}

// Complete builds the clients from the factory.
func (o *VerifyMTLSScenarioOptions) Complete() error {
	clients, err := o.factory.Clients()
	if err != nil {
		return err
	}
	o.clients = clients
	return nil
}

// Run runs the scenario (or the cleanup) and prints the cases.
func (o *VerifyMTLSScenarioOptions) Run(ctx context.Context) error {
	if o.Cleanup {
		gone, err := scenario.Cleanup(ctx, o.clients.Kube)
		for _, ns := range gone {
			fmt.Fprintf(o.streams.Out, "deleted namespace %s\n", ns)
		}
		if err != nil {
			return kube.Unreachable(o.clients.Config.Host, err)
		}
		if len(gone) == 0 {
			fmt.Fprintln(o.streams.Out, "no scenario namespaces left behind")
		}
		return nil
	}
	so := o.Options
	so.Progress = o.streams.ErrOut
	res, err := scenario.Run(ctx, o.clients.Config, o.clients.Kube, so)
	if err != nil {
		return kube.Unreachable(o.clients.Config.Host, err)
	}
	if err := o.Output.Print(o.streams.Out, scenarioReport{res}); err != nil {
		return err
	}
	if o.JUnit != "" {
		if err := writeJUnit(o.JUnit, scenarioJUnit(res)); err != nil {
			return err
		}
	}
	return verdictExit(res.Verdict)
}

// scenarioReport prints a scenario result as the table; JSON and YAML are
// the result's own fields.
type scenarioReport struct{ *scenario.Result }

// PrintTable implements TablePrinter.
func (r scenarioReport) PrintTable(w io.Writer) error { return printScenarioTable(w, r.Result) }

// scenarioJUnit is one testcase per case (skipped ones skipped), one per
// --expect pair, and one for the verdict.
func scenarioJUnit(res *scenario.Result) *mtls.JUnit {
	j := mtls.NewJUnit("verify-mtls-scenario")
	for _, c := range res.Cases {
		typ := ""
		switch c.Result {
		case scenario.CaseSkipped:
			typ = "SKIPPED"
		case scenario.CaseFail, scenario.CaseInconclusive:
			typ = strings.ToUpper(c.Result)
		}
		j.Add("verify-mtls-scenario."+c.Placement, c.From+" -> "+c.To, typ, c.Reason, "observed: "+c.Observed)
	}
	j.AddExpectations("verify-mtls-scenario.expect", res.Expectations)
	typ := ""
	if res.Verdict != mtls.OutcomePass {
		typ = string(res.Verdict)
	}
	j.Add("verify-mtls-scenario", "verdict", typ, strings.Join(res.Reasons, "; "), strings.Join(res.Reasons, "\n"))
	return j
}

func printScenarioTable(w io.Writer, res *scenario.Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FROM\tTO\tPLACEMENT\tEXPECTED\tOBSERVED\tRESULT\tREASON")
	counts := map[string]int{}
	for _, c := range res.Cases {
		counts[c.Result]++
		expected := "HBONE on 15008"
		if c.Expected == scenario.ExpectDirect {
			expected = fmt.Sprintf("direct to %d", res.Port)
		}
		if c.NegativeControl {
			expected += " (negative control)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", endName(c.From, c.FromEnrolled), endName(c.To, c.ToEnrolled),
			c.Placement, expected, c.Observed, strings.ToUpper(c.Result), c.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printExpectations(w, res.Expectations)
	var result string
	switch res.Verdict {
	case mtls.OutcomePass:
		result = "PASS: every case matched its expectation"
		if len(res.Expectations) > 0 {
			result += ", every expected pair passed"
		}
		if res.RequirePQC {
			result += ", post-quantum key exchange required"
		}
	case mtls.OutcomeFail:
		result = "FAIL: some cases did not match their expectation"
		if counts[scenario.CaseFail] == 0 {
			result = "FAIL: an expected pair is missing or did not pass"
		}
	default:
		result = "INCONCLUSIVE: nothing failed, but not every case was proven: " + strings.Join(res.Reasons, "; ")
	}
	_, err := fmt.Fprintf(w, "\n%s (%d pass, %d fail, %d inconclusive, %d skipped; nodes %s)\n", result,
		counts[scenario.CasePass], counts[scenario.CaseFail], counts[scenario.CaseInconclusive], counts[scenario.CaseSkipped], strings.Join(res.Nodes, ", "))
	return err
}

func endName(name string, enrolled bool) string {
	if enrolled {
		return name + " (ambient)"
	}
	return name
}
