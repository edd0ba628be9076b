package mtls

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// ScenarioLabel marks the namespaces and pods a scenario run creates; its
// value is the run's suffix. `verify-mtls scenario --cleanup` finds
// leftovers by it.
const ScenarioLabel = "kubectl-ambient.io/scenario"

// Scenario defaults: widely used images, so a cluster that can pull from
// Docker Hub and registry.k8s.io runs the scenario as is.
const (
	DefaultScenarioClientImage = "nicolaka/netshoot:v0.13"
	DefaultScenarioServerImage = "registry.k8s.io/e2e-test-images/agnhost:2.45"
	// DefaultScenarioClientCommand runs in the client pod with sh -c after
	// the placeholders are replaced (see ScenarioOptions.ClientCommand).
	DefaultScenarioClientCommand = `for i in 1 2 3; do curl -sS -m 5 -o /dev/null http://{target}/ || exit 1; done`
	DefaultScenarioPort          = 8080
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
)

// Placements of a client relative to the server.
const (
	SameNode  = "same-node"
	CrossNode = "cross-node"
)

// captureSettle is how long the scenario waits after the capture pods run
// before it sends traffic: tcpdump needs a moment to open its socket.
const captureSettle = 2 * time.Second

// ScenarioOptions configures a scenario run.
type ScenarioOptions struct {
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
	// Suffix names the run (random when empty).
	Suffix   string
	Progress io.Writer
}

// ScenarioCase is one client -> server pair and its judgement.
type ScenarioCase struct {
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

// ScenarioResult is the outcome of a scenario run.
type ScenarioResult struct {
	Namespaces []string       `json:"namespaces"`
	Nodes      []string       `json:"nodes"`
	Port       int            `json:"port"`
	Cases      []ScenarioCase `json:"cases"`
	// Passed is true when every case that ran matched its expectation.
	Passed bool `json:"passed"`
	// Capture is the verdict report of everything captured.
	Capture *Report `json:"capture,omitempty"`
	// Kept is true when the resources were left in place (--keep).
	Kept bool `json:"kept,omitempty"`
}

// scenarioPod is one pod of the scenario plan.
type scenarioPod struct {
	name, ns, node, role string
	enrolled             bool
	placement            string
}

// Scenario deploys a server and clients (same node and, when there is a
// second schedulable node, another node) into an enrolled and an unenrolled
// namespace, captures on every involved node with Live while the clients
// call every server, and judges each case both ways: enrolled -> enrolled
// must be HBONE on 15008 with no app-port payload, every other case must
// show the app port directly, and unenrolled -> unenrolled (the negative
// control) must show plaintext. Everything it created is deleted before it
// returns, also when ctx is cancelled, unless o.Keep.
func Scenario(ctx context.Context, cfg *rest.Config, kc kubernetes.Interface, o ScenarioOptions) (res *ScenarioResult, err error) {
	o.defaults()
	// Progress lines come from several goroutines (the captures, the traffic).
	o.Progress = &prefixWriter{mu: new(sync.Mutex), w: o.Progress}
	progress := o.Progress
	mesh, plain := "ambient-verify-"+o.Suffix, "ambient-verify-plain-"+o.Suffix
	res = &ScenarioResult{Namespaces: []string{mesh, plain}, Port: o.Port, Kept: o.Keep}

	// Refuse before the first write, naming every missing permission.
	if err := checkScenarioAccess(ctx, kc, mesh, plain); err != nil {
		return nil, err
	}
	if old, err := kc.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: ScenarioLabel}); err == nil && len(old.Items) > 0 {
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
		if cerr := deleteScenarioNamespaces(cctx, kc, created); cerr != nil {
			fmt.Fprintf(progress, "warning: %v; remove leftovers with kubectl ambient verify-mtls scenario --cleanup\n", cerr)
		} else if len(created) > 0 {
			fmt.Fprintf(progress, "deleted namespaces %s and their pods\n", strings.Join(created, ", "))
		}
	}()
	for _, ns := range []string{mesh, plain} {
		if err := createScenarioNamespace(ctx, kc, ns, o.Suffix, ns == mesh); err != nil {
			return nil, err
		}
		created = append(created, ns)
	}
	fmt.Fprintf(progress, "created namespaces %s (ambient) and %s (not enrolled)\n", mesh, plain)
	for _, p := range plan {
		if _, err := kc.CoreV1().Pods(p.ns).Create(ctx, o.pod(p), metav1.CreateOptions{}); err != nil {
			return nil, explainScenario("create pod "+p.ns+"/"+p.name, err)
		}
	}
	pods, err := waitScenarioPods(ctx, kc, o, plan)
	if err != nil {
		return nil, err
	}

	cases := scenarioCases(plan, pods, len(nodes))
	judged, err := o.captureTraffic(ctx, cfg, kc, res, cases, pods)
	if err != nil {
		return nil, err
	}
	res.Capture = judged
	res.Cases = cases
	res.Passed = true
	for i := range res.Cases {
		judgeCase(&res.Cases[i], judged, uint16(o.Port)) //nolint:gosec // G115: the port is validated to 1-65535
		if res.Cases[i].Result == CaseFail {
			res.Passed = false
		}
	}
	return res, nil
}

func (o *ScenarioOptions) defaults() {
	if o.ClientImage == "" {
		o.ClientImage = DefaultScenarioClientImage
	}
	if o.ClientCommand == "" {
		o.ClientCommand = DefaultScenarioClientCommand
	}
	if o.ServerImage == "" {
		o.ServerImage = DefaultScenarioServerImage
	}
	if o.CaptureImage == "" {
		o.CaptureImage = DefaultCaptureImage
	}
	if o.Port == 0 {
		o.Port = DefaultScenarioPort
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

// checkScenarioAccess asks the API server (SelfSubjectAccessReview) for
// each permission the scenario needs; when the reviews themselves cannot be
// made, the run goes on and a refusal is explained where it happens.
func checkScenarioAccess(ctx context.Context, kc kubernetes.Interface, namespaces ...string) error {
	attrs := []authv1.ResourceAttributes{
		{Verb: "list", Resource: "nodes"},
		{Verb: "create", Resource: "namespaces"},
		{Verb: "delete", Resource: "namespaces"},
	}
	for _, ns := range namespaces {
		for _, verb := range []string{"create", "delete", "list", "watch"} {
			attrs = append(attrs, authv1.ResourceAttributes{Namespace: ns, Verb: verb, Resource: "pods"})
		}
		attrs = append(attrs, authv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "pods", Subresource: "exec"})
	}
	allowed, err := kube.Allowed(ctx, kc, attrs)
	if err != nil {
		// The review is advice: the writes explain a refusal themselves.
		return nil
	}
	var missing []string
	for i, a := range attrs {
		if allowed[i] {
			continue
		}
		what := "cannot " + a.Verb + " " + a.Resource
		if a.Subresource != "" {
			what += "/" + a.Subresource
		}
		if a.Namespace != "" {
			what += " in namespace " + a.Namespace
		}
		missing = append(missing, what)
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("verify-mtls scenario refused before changing anything: %s; grant the role in docs/rbac.md (verify-mtls scenario)", strings.Join(missing, ", "))
}

// schedulableNodes returns the Ready nodes that take ordinary pods, sorted.
func schedulableNodes(ctx context.Context, kc kubernetes.Interface) ([]string, error) {
	list, err := kc.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, explainScenario("list nodes", err)
	}
	var out []string
	for _, n := range list.Items {
		if n.Spec.Unschedulable || !isReady(&n) || hasBlockingTaint(&n) {
			continue
		}
		out = append(out, n.Name)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, errors.New("no ready, schedulable node without NoSchedule taints to run the scenario on; check kubectl get nodes")
	}
	return out, nil
}

func isReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func hasBlockingTaint(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return true
		}
	}
	return false
}

// scenarioPlan places one server per namespace on the first node, a client
// per namespace beside it and, with a second node, one there.
func scenarioPlan(mesh, plain string, nodes []string) []scenarioPod {
	var plan []scenarioPod
	for _, ns := range []string{mesh, plain} {
		enrolled := ns == mesh
		plan = append(plan,
			scenarioPod{name: "server", ns: ns, node: nodes[0], role: "server", enrolled: enrolled},
			scenarioPod{name: "client-same-node", ns: ns, node: nodes[0], role: "client", enrolled: enrolled, placement: SameNode})
		if len(nodes) > 1 {
			plan = append(plan, scenarioPod{name: "client-cross-node", ns: ns, node: nodes[1], role: "client", enrolled: enrolled, placement: CrossNode})
		}
	}
	return plan
}

func createScenarioNamespace(ctx context.Context, kc kubernetes.Interface, name, suffix string, enrolled bool) error {
	labels := map[string]string{
		ScenarioLabel:                  suffix,
		"app.kubernetes.io/managed-by": "kubectl-ambient",
	}
	if enrolled {
		labels["istio.io/dataplane-mode"] = "ambient"
		// Live starts its capture pods (privileged, host network) in the
		// ambient namespace, the first; the other one needs no exception.
		labels["pod-security.kubernetes.io/enforce"] = "privileged"
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := kc.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return explainScenario("create namespace "+name, err)
	}
	return nil
}

func (o *ScenarioOptions) pod(p scenarioPod) *corev1.Pod {
	zero := int64(0)
	no := false
	c := corev1.Container{Name: p.role, Image: o.ClientImage, Command: []string{"sleep", "86400"}}
	if p.role == "server" {
		port := strconv.Itoa(o.Port)
		c = corev1.Container{Name: "server", Image: o.ServerImage, Args: []string{"netexec", "--http-port=" + port, "--udp-port=-1"},
			Ports: []corev1.ContainerPort{{Name: "app", ContainerPort: int32(o.Port)}}} //nolint:gosec // G115: the port is validated to 1-65535
		if o.ServerCommand != "" {
			c.Args = nil
			c.Command = []string{"sh", "-c", o.ServerCommand}
		}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: p.name, Namespace: p.ns,
			Labels: map[string]string{ScenarioLabel: o.Suffix, "app": p.name, "app.kubernetes.io/managed-by": "kubectl-ambient"},
		},
		Spec: corev1.PodSpec{
			NodeName:                      p.node,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &zero,
			AutomountServiceAccountToken:  &no,
			Containers:                    []corev1.Container{c},
		},
	}
}

// waitScenarioPods waits until every planned pod runs with an IP and, in
// the enrolled namespace, carries istio-cni's redirection annotation.
func waitScenarioPods(ctx context.Context, kc kubernetes.Interface, o ScenarioOptions, plan []scenarioPod) (map[string]*corev1.Pod, error) {
	fmt.Fprintf(o.Progress, "waiting up to %s for %d pods to run (and be captured by istio-cni in the ambient namespace)\n", o.PodTimeout, len(plan))
	ctx, cancel := context.WithTimeout(ctx, o.PodTimeout)
	defer cancel()
	out := map[string]*corev1.Pod{}
	var missing string
	for _, ns := range []string{plan[0].ns, plan[len(plan)-1].ns} {
		var want []scenarioPod
		for _, p := range plan {
			if p.ns == ns {
				want = append(want, p)
			}
		}
		state, err := watchPods(ctx, kc, ns, ScenarioLabel+"="+o.Suffix, func(state map[string]*corev1.Pod) bool {
			missing = ""
			for _, p := range want {
				if why := podNotReady(state[p.name], p.enrolled); why != "" {
					missing = fmt.Sprintf("pod %s/%s %s", ns, p.name, why)
					return false
				}
			}
			return true
		})
		if err != nil {
			if ctx.Err() != nil && missing != "" {
				hint := "check kubectl describe pod -n " + ns + " (image pull or scheduling?)"
				if strings.Contains(missing, AnnotationRedirection) {
					hint = "is istio-cni running? check kubectl get pods -A -l k8s-app=istio-cni-node and that ztunnel runs on the node"
				}
				return nil, fmt.Errorf("scenario pods not ready after %s: %s; %s", o.PodTimeout, missing, hint)
			}
			return nil, explainScenario("wait for the scenario pods", err)
		}
		for k, v := range state {
			out[ns+"/"+k] = v
		}
	}
	return out, nil
}

func podNotReady(p *corev1.Pod, enrolled bool) string {
	switch {
	case p == nil:
		return "does not exist"
	case p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded:
		return "ended (" + string(p.Status.Phase) + ")"
	case p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "":
		return "is not running with an ip (phase " + string(p.Status.Phase) + ")"
	case enrolled && p.Annotations[AnnotationRedirection] != "enabled":
		got := p.Annotations[AnnotationRedirection]
		if got == "" {
			got = "unset"
		}
		return "has no " + AnnotationRedirection + "=enabled (" + got + ")"
	}
	return ""
}

// scenarioCases pairs every client with every server.
func scenarioCases(plan []scenarioPod, pods map[string]*corev1.Pod, nodes int) []ScenarioCase {
	var servers []scenarioPod
	for _, p := range plan {
		if p.role == "server" {
			servers = append(servers, p)
		}
	}
	var cases []ScenarioCase
	for _, c := range plan {
		if c.role != "client" {
			continue
		}
		for _, s := range servers {
			sc := ScenarioCase{
				From: c.ns + "/" + c.name, To: s.ns + "/" + s.name,
				FromEnrolled: c.enrolled, ToEnrolled: s.enrolled, Placement: c.placement,
				NegativeControl: !c.enrolled && !s.enrolled, Expected: ExpectDirect,
				fromPod: c.name, fromNS: c.ns,
			}
			if c.enrolled && s.enrolled {
				sc.Expected = ExpectHBONE
			}
			sc.fromIP = podAddr(pods[sc.From])
			sc.toIP = podAddr(pods[sc.To])
			cases = append(cases, sc)
		}
	}
	if nodes < 2 {
		// Report the cross-node cases the plan could not place.
		for _, s := range servers {
			for _, enrolled := range []bool{true, false} {
				from := plan[len(plan)-1].ns
				if enrolled {
					from = plan[0].ns
				}
				cases = append(cases, ScenarioCase{
					From: from + "/client-cross-node", To: s.ns + "/" + s.name,
					FromEnrolled: enrolled, ToEnrolled: s.enrolled, Placement: CrossNode,
					NegativeControl: !enrolled && !s.enrolled, Expected: expectFor(enrolled, s.enrolled),
					Observed: "-", Result: CaseSkipped,
					Reason: "only one ready, schedulable node: no cross-node placement possible",
				})
			}
		}
	}
	return cases
}

func expectFor(from, to bool) string {
	if from && to {
		return ExpectHBONE
	}
	return ExpectDirect
}

func podAddr(p *corev1.Pod) netip.Addr {
	if p == nil {
		return netip.Addr{}
	}
	a, _ := netip.ParseAddr(p.Status.PodIP)
	return a.Unmap()
}

// captureTraffic runs one Live capture over both scenario namespaces (one
// capture pod per node, in the first namespace) and, once every capture
// pod runs, sends each case's traffic; it returns the verdict report.
func (o *ScenarioOptions) captureTraffic(ctx context.Context, cfg *rest.Config, kc kubernetes.Interface, res *ScenarioResult, cases []ScenarioCase, pods map[string]*corev1.Pod) (*Report, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var live *LiveResult
	var liveErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		live, liveErr = Live(ctx, cfg, kc, LiveOptions{Namespace: res.Namespaces[0], AlsoNamespaces: res.Namespaces[1:],
			Duration: o.Duration, Image: o.CaptureImage, Progress: o.Progress})
		if liveErr != nil {
			cancel()
		}
	}()
	trafficErr := o.sendWhenCapturing(ctx, cfg, kc, res, cases)
	<-done
	if liveErr != nil {
		return nil, fmt.Errorf("capture: %w", liveErr)
	}
	if trafficErr != nil {
		return nil, trafficErr
	}
	var list []corev1.Pod
	for _, p := range pods {
		list = append(list, *p)
	}
	rep := Judge(live.Flows, PodMapFromPods(list))
	rep.Stats = pcap.Stats{Packets: live.Stats.Packets, Undecodable: live.Stats.Undecodable, Flows: len(live.Flows)}
	return rep, nil
}

// sendWhenCapturing waits for the capture pods (one per node), gives
// tcpdump a moment, then runs the client command of every case at once.
func (o *ScenarioOptions) sendWhenCapturing(ctx context.Context, cfg *rest.Config, kc kubernetes.Interface, res *ScenarioResult, cases []ScenarioCase) error {
	nodes := len(res.Nodes)
	if nodes > 2 {
		nodes = 2 // the plan uses at most two nodes
	}
	// Live puts its capture pods in the first namespace.
	_, err := watchPods(ctx, kc, res.Namespaces[0], CaptureLabel, func(state map[string]*corev1.Pod) bool {
		running := 0
		for _, p := range state {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return running >= nodes
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil // Live reports why the capture did not start
		}
		return explainScenario("wait for the capture pods", err)
	}
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(captureSettle):
	}
	fmt.Fprintf(o.Progress, "sending traffic for %d cases\n", len(cases))
	tctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	var wg sync.WaitGroup
	for i := range cases {
		c := &cases[i]
		if c.Result == CaseSkipped {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := o.clientCommand(c)
			var stderr strings.Builder
			err := execInPod(tctx, cfg, kc, c.fromNS, c.fromPod, "client", []string{"sh", "-c", cmd}, io.Discard, &limitedWriter{w: &stderr, n: 1024})
			if err != nil {
				msg := err.Error()
				if s := firstLine(strings.TrimSpace(stderr.String())); s != "" {
					msg += ": " + s
				}
				c.TrafficError = msg
			}
		}()
	}
	wg.Wait()
	return nil
}

func (o *ScenarioOptions) clientCommand(c *ScenarioCase) string {
	port := strconv.Itoa(o.Port)
	host := c.toIP.String()
	return strings.NewReplacer(
		"{target}", net.JoinHostPort(host, port),
		"{host}", host,
		"{port}", port,
		"{pod}", c.fromPod,
		"{namespace}", c.fromNS,
	).Replace(o.ClientCommand)
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

// judgeCase checks a case against the verdict report, both ways.
func judgeCase(c *ScenarioCase, rep *Report, port uint16) {
	if c.Result == CaseSkipped {
		return
	}
	var rows []Row
	for _, p := range rep.Pairs {
		if p.Client.Addr == c.fromIP && p.Server.Addr == c.toIP {
			rows = append(rows, p.Rows...)
		}
	}
	var seen []string
	var hbonePass, onHBONEPort, appPayload, appPlain bool
	failed := ""
	for _, r := range rows {
		seen = append(seen, fmt.Sprintf("%s on %d", r.Class, r.Port))
		switch {
		case r.Port == pcap.HBONEPort:
			onHBONEPort = true
			hbonePass = hbonePass || r.Verdict == Pass && r.Class == pcap.ClassHBONE
		case r.Port == port && r.PayloadBytes > 0:
			appPayload = true
			appPlain = appPlain || r.Class == pcap.ClassPlaintext
		}
		if r.Verdict == Fail && failed == "" {
			failed = fmt.Sprintf("port %d: %s", r.Port, r.Reason)
		}
	}
	sort.Strings(seen)
	c.Observed = strings.Join(seen, ", ")
	if c.Observed == "" {
		c.Observed = "nothing captured"
	}
	c.Result, c.Reason = CaseFail, ""
	switch {
	case c.Expected == ExpectHBONE && failed != "":
		c.Reason = failed
	case c.Expected == ExpectHBONE && !hbonePass:
		c.Reason = "no HBONE mTLS on 15008 between the ambient workloads"
	case c.Expected == ExpectHBONE:
		c.Result, c.Reason = CasePass, "HBONE mTLS on 15008, no payload on the app port"
	case c.NegativeControl && !appPlain:
		c.Reason = "negative control saw no plaintext: the capture cannot see this traffic"
	case onHBONEPort:
		c.Reason = "HBONE on 15008 although an end is outside the mesh"
	case !appPayload:
		c.Reason = fmt.Sprintf("no payload on app port %d captured", port)
	case c.NegativeControl:
		c.Result, c.Reason = CasePass, "plaintext seen: the capture sees traffic outside the mesh"
	default:
		c.Result, c.Reason = CasePass, fmt.Sprintf("direct to app port %d, as expected with an end outside the mesh", port)
	}
	if c.Result == CaseFail && c.TrafficError != "" {
		c.Reason += "; the client command failed: " + c.TrafficError
	}
}

// deleteScenarioNamespaces deletes the pods (at once, they have no grace
// period) and then the namespaces.
func deleteScenarioNamespaces(ctx context.Context, kc kubernetes.Interface, names []string) error {
	zero := int64(0)
	var errs []error
	for _, ns := range names {
		list, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, p := range list.Items {
				if err := kc.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
					errs = append(errs, fmt.Errorf("delete pod %s/%s: %w", ns, p.Name, err))
				}
			}
		}
		if err := kc.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete namespace %s: %w", ns, err))
		}
	}
	return errors.Join(errs...)
}

// ScenarioCleanup deletes the namespaces (and their pods) of scenario runs
// left behind and returns their names.
func ScenarioCleanup(ctx context.Context, kc kubernetes.Interface) ([]string, error) {
	list, err := kc.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: ScenarioLabel})
	if err != nil {
		return nil, explainScenario("list scenario namespaces", err)
	}
	var names []string
	for _, ns := range list.Items {
		names = append(names, ns.Name)
	}
	return names, deleteScenarioNamespaces(ctx, kc, names)
}

// explainScenario says what the scenario needs when the cluster refuses.
func explainScenario(what string, err error) error {
	switch {
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "PodSecurity"):
		return fmt.Errorf("%s: %w; the scenario's namespaces are labelled pod-security.kubernetes.io/enforce=privileged for its capture pods: an admission policy refused that", what, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: %w; verify-mtls scenario needs RBAC to create, list, watch and delete namespaces and pods, create pods/exec, and list nodes (see docs/rbac.md)", what, err)
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("%s: %w; a run with the same suffix exists: remove it with kubectl ambient verify-mtls scenario --cleanup", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
