// Package scenario proves ambient mTLS end to end with workloads of its own
// (verify-mtls scenario): it deploys servers and clients in an enrolled and
// an unenrolled namespace, sends traffic while pkg/diag/mtls/capture records
// it, and judges every client -> server case both ways with pkg/diag/mtls.
// One file per step: deploy.go (access check, nodes, namespaces, pods, the
// wait for istio-cni), cases.go (the case matrix, the capture and the
// traffic), judge.go (each case against the verdict report), expect.go
// (the expected pairs and --require-pqc, judged by pkg/diag/mtls's rules)
// and cleanup.go (what a run or an interrupted run leaves behind).
package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls/capture"
)

// Label marks the namespaces and pods a scenario run creates; its
// value is the run's suffix. `verify-mtls scenario --cleanup` finds
// leftovers by it.
const Label = "kubectl-ambient.io/scenario"

// Scenario defaults: widely used images, so a cluster that can pull from
// Docker Hub and registry.k8s.io runs the scenario as is.
const (
	DefaultClientImage = "nicolaka/netshoot:v0.13"
	DefaultServerImage = "registry.k8s.io/e2e-test-images/agnhost:2.45"
	// DefaultClientCommand runs in the client pod with sh -c after
	// the placeholders are replaced (see Options.ClientCommand).
	DefaultClientCommand = `for i in 1 2 3; do curl -sS -m 5 -o /dev/null http://{target}/ || exit 1; done`
	DefaultPort          = 8080
)

// Expectations of a scenario case.
const (
	ExpectHBONE  = "hbone"  // both ends enrolled: HBONE on 15008, no app-port payload
	ExpectDirect = "direct" // an end outside the mesh: payload on the app port, no 15008
)

// Case results.
const (
	CasePass    = "pass"
	CaseFail    = "fail"
	CaseSkipped = "skipped"
	// CaseInconclusive: the capture held nothing that proves or refutes
	// the case (nothing captured, or a handshake not captured).
	CaseInconclusive = "inconclusive"
)

// Placements of a client relative to the server.
const (
	SameNode  = "same-node"
	CrossNode = "cross-node"
)

// captureSettle is how long the scenario waits after the capture pods run
// before it sends traffic: tcpdump needs a moment to open its socket.
const captureSettle = 2 * time.Second

// Options configures a scenario run.
type Options struct {
	ClientImage string
	// ClientCommand runs in each client pod (sh -c) once per server, with
	// {target} (host:port of the server pod), {host}, {port}, {pod} and
	// {namespace} (the client pod) replaced. It must exit 0 when the
	// request worked.
	ClientCommand string
	ServerImage   string
	// ServerCommand, when set, runs in the server container (sh -c) and must
	// serve TCP on Port; empty runs the default server (agnhost netexec).
	ServerCommand string
	CaptureImage  string
	Port          int
	// Duration is the capture window; traffic is sent inside it.
	Duration time.Duration
	// PodTimeout bounds the wait for the scenario pods (running, and
	// captured by istio-cni in the enrolled namespace).
	PodTimeout time.Duration
	// Keep leaves the namespaces and pods in place for inspection.
	Keep bool
	// Expect lists client -> server pairs that must appear in the capture
	// and pass, as verify-mtls --expect judges them; names are those of
	// Workloads (CheckExpectation).
	Expect []mtls.Expectation
	// RequirePQC fails HBONE handshakes that negotiated a classical (not
	// post-quantum hybrid) key exchange, as verify-mtls --require-pqc.
	RequirePQC bool
	// Suffix names the run (random when empty).
	Suffix   string
	Progress io.Writer
}

// Case is one client -> server pair and its judgement.
type Case struct {
	From         string `json:"from"`
	To           string `json:"to"`
	FromEnrolled bool   `json:"fromEnrolled"`
	ToEnrolled   bool   `json:"toEnrolled"`
	Placement    string `json:"placement"`
	// NegativeControl marks unenrolled -> unenrolled: it must show
	// plaintext, or the capture is blind.
	NegativeControl bool   `json:"negativeControl,omitempty"`
	Expected        string `json:"expected"`
	Observed        string `json:"observed"`
	Result          string `json:"result"`
	Reason          string `json:"reason,omitempty"`
	// TrafficError is the client command's failure, if any.
	TrafficError string `json:"trafficError,omitempty"`

	fromIP, toIP netip.Addr
	fromPod      string
	fromNS       string
}

// Result is the outcome of a scenario run.
type Result struct {
	Namespaces []string `json:"namespaces"`
	Nodes      []string `json:"nodes"`
	Port       int      `json:"port"`
	Cases      []Case   `json:"cases"`
	// Verdict is PASS when every case that ran matched its expectation,
	// FAIL when one did not, INCONCLUSIVE when nothing failed but a case
	// was not proven; Reasons say why when it is not PASS.
	Verdict mtls.Outcome `json:"verdict"`
	Reasons []string     `json:"reasons,omitempty"`
	// Passed is Verdict == PASS (kept for scripts that read the boolean).
	Passed bool `json:"passed"`
	// RequirePQC is set when the run refused classical key exchanges.
	RequirePQC bool `json:"requirePQC,omitempty"`
	// Expectations are the expected pairs and what became of them (named
	// as given: ambient/..., plain/...).
	Expectations []mtls.ExpectationResult `json:"expectations,omitempty"`
	// Capture is the verdict report of everything captured.
	Capture *mtls.Report `json:"capture,omitempty"`
	// Kept is true when the resources were left in place (--keep).
	Kept bool `json:"kept,omitempty"`
}

// scenarioPod is one pod of the scenario plan.
type scenarioPod struct {
	name, ns, node, role string
	enrolled             bool
	placement            string
}

// Run deploys a server and clients (same node and, when there is a
// second schedulable node, another node) into an enrolled and an unenrolled
// namespace, captures on every involved node with Live while the clients
// call every server, and judges each case both ways: enrolled -> enrolled
// must be HBONE on 15008 with no app-port payload, every other case must
// show the app port directly, and unenrolled -> unenrolled (the negative
// control) must show plaintext. Everything it created is deleted before it
// returns, also when ctx is cancelled, unless o.Keep.
func Run(ctx context.Context, cfg *rest.Config, kc kubernetes.Interface, o Options) (res *Result, err error) {
	o.defaults()
	// Progress lines come from several goroutines (the captures, the traffic).
	o.Progress = &prefixWriter{mu: new(sync.Mutex), w: o.Progress}
	progress := o.Progress
	mesh, plain := "ambient-verify-"+o.Suffix, "ambient-verify-plain-"+o.Suffix
	res = &Result{Namespaces: []string{mesh, plain}, Port: o.Port, Kept: o.Keep, RequirePQC: o.RequirePQC}
	for _, e := range o.Expect {
		if err := CheckExpectation(e); err != nil {
			return nil, err
		}
	}

	// Refuse before the first write, naming every missing permission.
	if err := checkAccess(ctx, kc, mesh, plain, capture.NamespaceName(o.Suffix)); err != nil {
		return nil, err
	}
	if old, err := kc.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: Label}); err == nil && len(old.Items) > 0 {
		names := make([]string, 0, len(old.Items))
		for _, n := range old.Items {
			names = append(names, n.Name)
		}
		fmt.Fprintf(progress, "warning: namespaces of earlier scenario runs are still there (%s); remove them with kubectl ambient verify-mtls scenario --cleanup\n", strings.Join(names, ", "))
	}
	nodes, err := schedulableNodes(ctx, kc)
	if err != nil {
		return nil, err
	}
	res.Nodes = nodes
	plan := scenarioPlan(mesh, plain, nodes)

	var created []string
	defer func() {
		if o.Keep {
			fmt.Fprintf(progress, "kept namespaces %s; delete them with kubectl ambient verify-mtls scenario --cleanup\n", strings.Join(created, ", "))
			return
		}
		// Its own context: cleanup must happen after Ctrl-C too, bounded.
		cctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if cerr := deleteNamespaces(cctx, kc, created); cerr != nil {
			fmt.Fprintf(progress, "warning: %v; remove leftovers with kubectl ambient verify-mtls scenario --cleanup\n", cerr)
		} else if len(created) > 0 {
			fmt.Fprintf(progress, "deleted namespaces %s and their pods\n", strings.Join(created, ", "))
		}
	}()
	for _, ns := range []string{mesh, plain} {
		if err := createNamespace(ctx, kc, ns, o.Suffix, ns == mesh); err != nil {
			return nil, err
		}
		created = append(created, ns)
	}
	fmt.Fprintf(progress, "created namespaces %s (ambient) and %s (not enrolled)\n", mesh, plain)
	for _, p := range plan {
		if _, err := kc.CoreV1().Pods(p.ns).Create(ctx, o.pod(p), metav1.CreateOptions{}); err != nil {
			return nil, explain("create pod "+p.ns+"/"+p.name, err)
		}
	}
	pods, err := waitPods(ctx, kc, o, plan)
	if err != nil {
		return nil, err
	}

	cases := scenarioCases(plan, pods, len(nodes))
	judged, err := o.captureTraffic(ctx, cfg, kc, res, cases, pods, o.rules(mesh, plain))
	if err != nil {
		return nil, err
	}
	res.Capture = judged
	res.Expectations = judged.Expectations
	res.Cases = cases
	for i := range res.Cases {
		judgeCase(&res.Cases[i], judged, uint16(o.Port)) //nolint:gosec // G115: the port is validated to 1-65535
	}
	res.decide()
	return res, nil
}

// decide sets the run's verdict from its cases and expected pairs, as
// verify-mtls does from its rows: a failed case or expected pair fails the
// run; otherwise an unproven case makes it INCONCLUSIVE, naming the nodes
// whose capture saw nothing.
func (res *Result) decide() {
	res.Reasons = nil
	var failed, unproven []string
	for _, e := range res.Expectations {
		if !e.Passed {
			failed = append(failed, e.Reason)
		}
	}
	for _, c := range res.Cases {
		line := c.From + " -> " + c.To + " (" + c.Placement + "): " + c.Reason
		switch c.Result {
		case CaseFail:
			failed = append(failed, line)
		case CaseInconclusive:
			unproven = append(unproven, line)
		}
	}
	switch {
	case len(failed) > 0:
		res.Verdict, res.Reasons = mtls.OutcomeFail, failed
	case len(unproven) > 0:
		res.Verdict, res.Reasons = mtls.OutcomeInconclusive, unproven
		if res.Capture != nil {
			for _, n := range res.Capture.Nodes {
				if n.Packets == 0 {
					res.Reasons = append(res.Reasons, "the capture on node "+n.Node+" saw nothing (0 packets)")
				}
			}
		}
	default:
		res.Verdict = mtls.OutcomePass
	}
	res.Passed = res.Verdict == mtls.OutcomePass
}

func (o *Options) defaults() {
	if o.ClientImage == "" {
		o.ClientImage = DefaultClientImage
	}
	if o.ClientCommand == "" {
		o.ClientCommand = DefaultClientCommand
	}
	if o.ServerImage == "" {
		o.ServerImage = DefaultServerImage
	}
	if o.CaptureImage == "" {
		o.CaptureImage = capture.DefaultImage
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.Duration <= 0 {
		o.Duration = 15 * time.Second
	}
	if o.PodTimeout <= 0 {
		o.PodTimeout = 2 * time.Minute
	}
	if o.Suffix == "" {
		o.Suffix = rand.String(5)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// prefixWriter serialises (and optionally tags) the progress lines of
// the concurrent capture and traffic goroutines; they share mu, so lines
// never interleave.
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.w, p.prefix); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}

// ErrCaptureRefused is returned (wrapped) when an admission policy refused
// the scenario's privileged capture pods.
var ErrCaptureRefused = errors.New("an admission policy refused the privileged capture pods")

// ErrRunExists is returned (wrapped) when objects of a run with the same
// suffix are still in the cluster.
var ErrRunExists = errors.New("a run with the same suffix exists")

// explain says what the scenario needs when the cluster refuses.
func explain(what string, err error) error {
	switch {
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "PodSecurity"):
		return fmt.Errorf("%s: %w; the scenario's pods need no privilege, only its capture pods do (in a capture namespace of their own, labelled privileged): %w", what, err, ErrCaptureRefused)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: %w; verify-mtls scenario needs RBAC to create, list, watch and delete namespaces and pods, create pods/exec, and list nodes (see docs/rbac.md)", what, err)
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("%s: %w; %w", what, err, ErrRunExists)
	}
	return fmt.Errorf("%s: %w", what, err)
}
