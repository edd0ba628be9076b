package scenario

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"

	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/pcap"
)

// Scenario addresses.
var (
	meshClient  = netip.MustParseAddr("10.0.8.1")
	meshServer  = netip.MustParseAddr("10.0.8.2")
	plainClient = netip.MustParseAddr("10.0.9.1")
	plainServer = netip.MustParseAddr("10.0.9.2")
)

// flow is one connection from c to s:port carrying payload bytes.
func flow(c, s netip.Addr, port uint16, class pcap.Class, payload uint64) pcap.Flow {
	f := pcap.Flow{
		Client: netip.AddrPortFrom(c, 40000), Server: netip.AddrPortFrom(s, port),
		Class: class, PayloadBytes: payload, Packets: 10, Bytes: 1000 + payload,
	}
	if class == pcap.ClassHBONE || class == pcap.ClassTLS {
		// A completed TLS 1.3 handshake: both hellos captured.
		f.ClientHellos, f.ServerHellos, f.ServerHello, f.TLSVersion, f.NegotiatedVersion = 1, 1, true, "1.3", 0x0304
	}
	return f
}

// helloOnly is an HBONE flow whose ServerHello was not captured.
func helloOnly(c, s netip.Addr) pcap.Flow {
	f := flow(c, s, 15008, pcap.ClassHBONE, 900)
	f.ServerHellos, f.ServerHello, f.NegotiatedVersion = 0, false, 0
	return f
}

func TestResultVerdict(t *testing.T) {
	tests := []struct {
		name    string
		results []string
		nodes   []mtls.NodeCapture
		want    mtls.Outcome
		reason  string
	}{
		{"all pass", []string{CasePass, CaseSkipped, CasePass}, nil, mtls.OutcomePass, ""},
		{"a failure wins", []string{CasePass, CaseInconclusive, CaseFail}, nil, mtls.OutcomeFail, "c -> d"},
		{"unproven names the blind node", []string{CasePass, CaseInconclusive}, []mtls.NodeCapture{{Node: "n0", Packets: 9}, {Node: "n1"}}, mtls.OutcomeInconclusive, "the capture on node n1 saw nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := &Result{Capture: &mtls.Report{Nodes: tt.nodes}}
			for i, r := range tt.results {
				res.Cases = append(res.Cases, Case{From: string(rune('a' + i)), To: string(rune('b' + i)), Result: r, Reason: "why"})
			}
			res.decide()
			if res.Verdict != tt.want || res.Passed != (tt.want == mtls.OutcomePass) || !strings.Contains(strings.Join(res.Reasons, "\n"), tt.reason) {
				t.Errorf("verdict %s passed %v reasons %q; want %s with %q", res.Verdict, res.Passed, res.Reasons, tt.want, tt.reason)
			}
		})
	}
}

func scenarioPods() mtls.PodMap {
	return mtls.PodMap{
		meshClient:  {Namespace: "m", Pod: "client", Enrolled: true},
		meshServer:  {Namespace: "m", Pod: "server", Enrolled: true},
		plainClient: {Namespace: "p", Pod: "client"},
		plainServer: {Namespace: "p", Pod: "server"},
	}
}

func TestJudgeCase(t *testing.T) {
	tests := []struct {
		name       string
		from, to   netip.Addr
		flows      []pcap.Flow
		trafficErr string
		want       string
		reason     string
		observed   string
	}{
		{"hbone passes", meshClient, meshServer, []pcap.Flow{flow(meshClient, meshServer, 15008, pcap.ClassHBONE, 900)}, "", CasePass, "HBONE mTLS", "hbone on 15008"},
		{"plaintext between enrolled fails", meshClient, meshServer, []pcap.Flow{flow(meshClient, meshServer, 8080, pcap.ClassPlaintext, 90)}, "", CaseFail, "port 8080: ", "plaintext on 8080"},
		{"hbone plus app-port payload fails", meshClient, meshServer, []pcap.Flow{flow(meshClient, meshServer, 15008, pcap.ClassHBONE, 900), flow(meshClient, meshServer, 8080, pcap.ClassPlaintext, 90)}, "", CaseFail, "port 8080: ", "hbone on 15008, plaintext on 8080"},
		// Nothing captured proves nothing either way: inconclusive, as verify-mtls.
		{"nothing between enrolled is inconclusive", meshClient, meshServer, nil, "exit status 7", CaseInconclusive, "nothing captured between them: the capture cannot see this traffic; the client command failed: exit status 7", "nothing captured"},
		{"hbone without a ServerHello is inconclusive", meshClient, meshServer, []pcap.Flow{helloOnly(meshClient, meshServer)}, "", CaseInconclusive, "port 15008: HBONE attempted, handshake not captured", "hbone on 15008"},
		{"enrolled to plain is direct", meshClient, plainServer, []pcap.Flow{flow(meshClient, plainServer, 8080, pcap.ClassPlaintext, 90)}, "", CasePass, "direct to app port 8080", "plaintext on 8080"},
		{"hbone to a plain server fails", meshClient, plainServer, []pcap.Flow{flow(meshClient, plainServer, 15008, pcap.ClassHBONE, 900)}, "", CaseFail, "HBONE on 15008 although", "hbone on 15008"},
		{"plain to enrolled without payload fails", plainClient, meshServer, []pcap.Flow{flow(plainClient, meshServer, 8080, pcap.ClassNoPayload, 0)}, "", CaseFail, "no payload on app port 8080", "no-payload on 8080"},
		{"negative control sees plaintext", plainClient, plainServer, []pcap.Flow{flow(plainClient, plainServer, 8080, pcap.ClassPlaintext, 90)}, "", CasePass, "plaintext seen", "plaintext on 8080"},
		{"blind negative control is inconclusive", plainClient, plainServer, nil, "", CaseInconclusive, "nothing captured between them: the capture cannot see this traffic", "nothing captured"},
		{"negative control with TLS fails", plainClient, plainServer, []pcap.Flow{flow(plainClient, plainServer, 8080, pcap.ClassTLS, 900)}, "", CaseFail, "negative control saw no plaintext", "tls on 8080"},
	}
	pods := scenarioPods()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Case{
				fromIP: tt.from, toIP: tt.to, FromEnrolled: pods[tt.from].Enrolled, ToEnrolled: pods[tt.to].Enrolled,
				NegativeControl: !pods[tt.from].Enrolled && !pods[tt.to].Enrolled, Expected: expectFor(pods[tt.from].Enrolled, pods[tt.to].Enrolled),
				TrafficError: tt.trafficErr,
			}
			// Other pairs' traffic must not leak into the case.
			flows := append([]pcap.Flow{flow(meshServer, meshClient, 8080, pcap.ClassPlaintext, 5)}, tt.flows...)
			judgeCase(&c, mtls.Judge(flows, pods), 8080)
			if c.Result != tt.want || !strings.HasPrefix(c.Reason, tt.reason) || c.Observed != tt.observed {
				t.Errorf("got %s %q observed %q; want %s %q... observed %q", c.Result, c.Reason, c.Observed, tt.want, tt.reason, tt.observed)
			}
		})
	}
}

func TestScenarioCasesOneNode(t *testing.T) {
	plan := scenarioPlan("m", "p", []string{"n0"})
	pods := map[string]*corev1.Pod{}
	for _, p := range plan {
		pods[p.ns+"/"+p.name] = &corev1.Pod{Status: corev1.PodStatus{PodIP: "10.0.0.9"}}
	}
	cases := scenarioCases(plan, pods, 1)
	var run, skipped, negative int
	for _, c := range cases {
		switch c.Result {
		case CaseSkipped:
			skipped++
			if c.Placement != CrossNode || !strings.Contains(c.Reason, "only one") {
				t.Errorf("skipped case %+v", c)
			}
		case "":
			run++
			if c.Placement != SameNode {
				t.Errorf("case to run %+v", c)
			}
		}
		if c.NegativeControl {
			negative++
		}
	}
	if run != 4 || skipped != 4 || negative != 2 {
		t.Errorf("run %d, skipped %d, negative controls %d; want 4, 4, 2: %+v", run, skipped, negative, cases)
	}
	if got := len(scenarioCases(scenarioPlan("m", "p", []string{"n0", "n1"}), pods, 2)); got != 8 {
		t.Errorf("two nodes: %d cases, want 8", got)
	}
}

func TestClientCommand(t *testing.T) {
	o := Options{Port: 8080, ClientCommand: "x --to {target} --host {host} --port {port} --from {namespace}/{pod} -w %{http_code}"}
	c := &Case{toIP: netip.MustParseAddr("fd00::2"), fromPod: "client-same-node", fromNS: "ns"}
	want := "x --to [fd00::2]:8080 --host fd00::2 --port 8080 --from ns/client-same-node -w %{http_code}"
	if got := o.clientCommand(c); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestPodNotReady(t *testing.T) {
	running := corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1"}
	captured := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{ambient.AnnotationRedirection: "enabled"}}, Status: running}
	pending := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{ambient.AnnotationRedirection: "pending"}}, Status: running}
	tests := []struct {
		name     string
		pod      *corev1.Pod
		enrolled bool
		want     string
	}{
		{"missing", nil, false, "does not exist"},
		{"pending phase", &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending}}, false, "is not running"},
		{"ended", &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed}}, false, "ended (Failed)"},
		{"plain running", &corev1.Pod{Status: running}, false, ""},
		{"enrolled without annotation", &corev1.Pod{Status: running}, true, "has no ambient.istio.io/redirection=enabled (unset)"},
		{"enrolled pending", pending, true, "(pending)"},
		{"enrolled captured", captured, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := podNotReady(tt.pod, tt.enrolled)
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSchedulableNodesAndCleanup(t *testing.T) {
	node := func(name string, ready bool, mod func(*corev1.Node)) *corev1.Node {
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}}}
		if mod != nil {
			mod(n)
		}
		return n
	}
	kc := fake.NewClientset(
		node("b", true, nil), node("a", true, nil), node("down", false, nil),
		node("cordoned", true, func(n *corev1.Node) { n.Spec.Unschedulable = true }),
		node("cp", true, func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}}
		}),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ambient-verify-x", Labels: map[string]string{Label: "x"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "server", Namespace: "ambient-verify-x"}},
	)
	ctx := context.Background()
	got, err := schedulableNodes(ctx, kc)
	if err != nil || strings.Join(got, ",") != "a,b" {
		t.Errorf("nodes %v %v, want a,b", got, err)
	}
	gone, err := Cleanup(ctx, kc)
	if err != nil || strings.Join(gone, ",") != "ambient-verify-x" {
		t.Fatalf("cleanup %v %v", gone, err)
	}
	if _, err := kc.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{}); err != nil {
		t.Errorf("cleanup touched namespace shop: %v", err)
	}
	if pods, _ := kc.CoreV1().Pods("ambient-verify-x").List(ctx, metav1.ListOptions{}); len(pods.Items) != 0 {
		t.Errorf("pods left: %v", pods.Items)
	}
	if _, err := schedulableNodes(ctx, fake.NewClientset(node("down", false, nil))); err == nil || !strings.Contains(err.Error(), "no ready, schedulable node") {
		t.Errorf("no nodes: %v", err)
	}
}

func TestCheckScenarioAccess(t *testing.T) {
	kc := fake.NewClientset()
	kc.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authv1.SelfSubjectAccessReview)
		ra := r.Spec.ResourceAttributes
		deniedExec := ra.Subresource == "exec" && ra.Namespace == "p"
		deniedDelete := ra.Resource == "namespaces" && ra.Verb == "delete"
		r.Status.Allowed = !deniedExec && !deniedDelete
		return true, r, nil
	})
	err := checkAccess(context.Background(), kc, "m", "p")
	if err == nil || err.Error() != "verify-mtls scenario refused before changing anything: cannot delete namespaces, cannot create pods/exec in namespace p; grant the role in docs/rbac.md (verify-mtls scenario)" {
		t.Errorf("got %v", err)
	}
}
