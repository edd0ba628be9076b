package waypoint_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/waypointsim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/cmd"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/waypoint"
)

func TestMain(m *testing.M) { kubelab.Main(m, kubelab.Options{}) }

var crdOnce sync.Once

// setup installs the Gateway API's own CRDs and starts the waypoint
// controller stand-in until the test ends.
func setup(t *testing.T, opts waypointsim.Options) (*kubelab.Lab, waypoint.GVRs) {
	t.Helper()
	if testing.Short() {
		t.Skip("lab test")
	}
	lab := kubelab.Get(t)
	crdOnce.Do(func() {
		paths, err := waypointsim.CRDs()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			lab.Kubectl(t, "apply", "--server-side", "-f", p)
		}
		lab.Kubectl(t, append([]string{"wait", "--for=condition=Established", "--timeout=60s", "crd"}, waypointsim.CRDNames...)...)
	})
	var g waypoint.GVRs
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		var err error
		g, err = waypoint.Discover(lab.Clients.Discovery)
		return err == nil && g.Gateway.Resource != "" && g.ServiceEntry.Resource != "", nil
	})
	if err != nil {
		t.Fatalf("gateway API not served: %v (%+v)", err, g)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sim := waypointsim.New(lab.Clients.Kube, lab.Clients.Dynamic, g.Gateway, opts)
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("waypoint stand-in: %v", err)
		}
	})
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) { return sim.HasSynced(), nil }); err != nil {
		t.Fatalf("waypoint stand-in did not sync: %v", err)
	}
	return lab, g
}

func run(t *testing.T, lab *kubelab.Lab, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := cmd.NewRootCmd(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	root.SetArgs(append(args, "--kubeconfig", lab.Kubeconfig))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func service(t *testing.T, lab *kubelab.Lab, ns, name string, labels map[string]string) {
	t.Helper()
	_, err := lab.Clients.Kube.CoreV1().Services(ns).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// waitBound waits until the Service's istio.io/WaypointBound has status want.
func waitBound(t *testing.T, lab *kubelab.Lab, ns, name string, want metav1.ConditionStatus) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		s, err := lab.Clients.Kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		c := meta.FindStatusCondition(s.Status.Conditions, ambient.ConditionWaypointBound)
		return c != nil && c.Status == want, nil
	})
	if err != nil {
		t.Fatalf("service %s/%s never had %s=%s: %v", ns, name, ambient.ConditionWaypointBound, want, err)
	}
}

// TestWaypointLifecycle drives apply, list, status and delete through the
// real command tree against the lab's API server and the stand-in istiod.
func TestWaypointLifecycle(t *testing.T) {
	lab, g := setup(t, waypointsim.Options{})
	ctx := context.Background()
	ns := lab.Namespace(t, nil)

	// dry-run writes nothing.
	out, _, err := run(t, lab, "waypoint", "apply", "-n", ns, "--dry-run", "-o", "json")
	if err != nil {
		t.Fatalf("apply --dry-run: %v", err)
	}
	if !strings.Contains(out, `"action": "would create"`) {
		t.Errorf("dry-run output: %s", out)
	}
	if _, err := lab.Clients.Dynamic.Resource(g.Gateway).Namespace(ns).Get(ctx, "waypoint", metav1.GetOptions{}); err == nil {
		t.Fatal("dry-run created the Gateway")
	}

	out, errOut, err := run(t, lab, "waypoint", "apply", "-n", ns, "-o", "json")
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, errOut)
	}
	var ar waypoint.ApplyReport
	if err := json.Unmarshal([]byte(out), &ar); err != nil {
		t.Fatalf("apply -o json: %v\n%s", err, out)
	}
	if ar.Action != "created" || ar.Programmed != "True" {
		t.Errorf("apply report: action %q programmed %q", ar.Action, ar.Programmed)
	}
	gw, err := lab.Clients.Dynamic.Resource(g.Gateway).Namespace(ns).Get(ctx, "waypoint", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cls, _, _ := unstructured.NestedString(gw.Object, "spec", "gatewayClassName"); cls != ambient.WaypointClass {
		t.Errorf("class %q", cls)
	}
	ls, _, _ := unstructured.NestedSlice(gw.Object, "spec", "listeners")
	if len(ls) != 1 {
		t.Fatalf("listeners %v", ls)
	}
	l := ls[0].(map[string]any)
	if l["port"] != int64(15008) || l["protocol"] != "HBONE" {
		t.Errorf("listener %v, want 15008 HBONE", l)
	}
	if gw.GetLabels()[ambient.LabelWaypointFor] != "service" {
		t.Errorf("waypoint-for %q", gw.GetLabels()[ambient.LabelWaypointFor])
	}
	if _, err := lab.Clients.Kube.AppsV1().Deployments(ns).Get(ctx, "waypoint", metav1.GetOptions{}); err != nil {
		t.Errorf("stand-in istiod made no waypoint Deployment: %v", err)
	}

	// A second apply converges.
	out, _, err = run(t, lab, "waypoint", "apply", "-n", ns)
	if err != nil || !strings.Contains(out, "unchanged") {
		t.Errorf("second apply: %v\n%s", err, out)
	}

	// Users: the namespace, a Service by the namespace label, a Service opted
	// out, a Service pointing at a missing waypoint.
	patch := `{"metadata":{"labels":{"istio.io/use-waypoint":"waypoint"}}}`
	if _, err := lab.Clients.Kube.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	service(t, lab, ns, "reviews", nil)
	service(t, lab, ns, "optout", map[string]string{ambient.LabelUseWaypoint: "none"})
	waitBound(t, lab, ns, "reviews", metav1.ConditionTrue)

	out, _, err = run(t, lab, "waypoint", "status", "-n", ns, "-o", "json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var rep waypoint.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Waypoints) != 1 {
		t.Fatalf("status waypoints: %+v", rep.Waypoints)
	}
	w := rep.Waypoints[0]
	if w.Programmed != "True" || !w.Ours || len(w.Namespaces) != 1 || w.Namespaces[0] != ns {
		t.Errorf("status: %+v", w)
	}
	var names []string
	for _, s := range w.Services {
		names = append(names, s.Name+"="+s.Bound)
	}
	// The waypoint's own Service (gateway-name label) is never a user.
	if !strings.Contains(strings.Join(names, ","), "reviews=True") || len(names) != 1 {
		t.Errorf("services: %v", names)
	}

	// A Service pointing at a waypoint that does not exist is dangling.
	service(t, lab, ns, "lost", map[string]string{ambient.LabelUseWaypoint: "nowhere"})
	waitBound(t, lab, ns, "lost", metav1.ConditionFalse)
	out, _, err = run(t, lab, "waypoint", "list", "-A")
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if !strings.Contains(out, "Service "+ns+"/lost -> "+ns+"/nowhere") {
		t.Errorf("list does not show the dangling label:\n%s", out)
	}
	_, _, err = run(t, lab, "waypoint", "status", "-n", ns)
	if cmd.ExitCode(err) != cmd.ExitFailure || !errors.Is(err, cmd.ErrWaypointUnhealthy) {
		t.Errorf("status with a dangling label: exit %d (%v)", cmd.ExitCode(err), err)
	}

	// Delete refuses while the namespace uses it.
	_, _, err = run(t, lab, "waypoint", "delete", "-n", ns)
	if !errors.Is(err, waypoint.ErrInUse) || !strings.Contains(err.Error(), "pass --force") {
		t.Fatalf("delete in use: %v, want ErrInUse naming --force", err)
	}
	if _, err := lab.Clients.Dynamic.Resource(g.Gateway).Namespace(ns).Get(ctx, "waypoint", metav1.GetOptions{}); err != nil {
		t.Fatalf("refused delete removed the Gateway: %v", err)
	}
	patch = `{"metadata":{"labels":{"istio.io/use-waypoint":null}}}`
	if _, err := lab.Clients.Kube.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, lab, "waypoint", "delete", "-n", ns)
	if err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	if _, err := lab.Clients.Dynamic.Resource(g.Gateway).Namespace(ns).Get(ctx, "waypoint", metav1.GetOptions{}); err == nil {
		t.Error("Gateway still there after delete")
	}
	out, _, err = run(t, lab, "waypoint", "delete", "-n", ns)
	if err != nil || !strings.Contains(out, "absent") {
		t.Errorf("second delete: %v\n%s", err, out)
	}
}

// TestWaypointApplyNeverProgrammed: an istiod that never programs the
// waypoint makes apply fail with ErrNotProgrammed after --timeout.
func TestWaypointApplyNeverProgrammed(t *testing.T) {
	lab, _ := setup(t, waypointsim.Options{NeverProgram: true})
	ns := lab.Namespace(t, nil)
	start := time.Now()
	out, _, err := run(t, lab, "waypoint", "apply", "-n", ns, "--timeout", "2s")
	if !errors.Is(err, waypoint.ErrNotProgrammed) || cmd.ExitCode(err) != cmd.ExitFailure {
		t.Fatalf("apply against an istiod that never programs: %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("apply took %s with --timeout 2s", d)
	}
	if !strings.Contains(out, "False") || !strings.Contains(err.Error(), "Pending") {
		t.Errorf("apply does not say why: %v\n%s", err, out)
	}
}
