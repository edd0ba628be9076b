package rollout

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/ztunnelsim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/install"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

func TestMain(m *testing.M) { kubelab.Main(m, kubelab.Options{Nodes: 5}) }

// hookWriter collects progress lines and calls on for each one.
type hookWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	on  func(line string)
}

func (w *hookWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	on := w.on
	w.mu.Unlock()
	if on != nil {
		for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
			on(l)
		}
	}
	return len(p), nil
}

func (w *hookWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

type rolloutLab struct {
	lab  *kubelab.Lab
	kc   kubernetes.Interface
	in   *install.Installer
	prof *install.Profile
	src  install.Source
}

func (rl *rolloutLab) helm(ctx context.Context, t *testing.T, comp, version string) {
	t.Helper()
	o := install.Options{Profile: rl.prof, Source: rl.src, Version: version, Platform: "generic", Only: []string{comp}, Timeout: 2 * time.Minute, Atomic: true}
	steps, err := install.Resolve(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rl.in.Install(ctx, o, steps); err != nil {
		t.Fatalf("install %s %s: %v", comp, version, err)
	}
}

func (rl *rolloutLab) options(progress *hookWriter) Options {
	return Options{
		Kube: rl.kc, Namespace: ambient.IstioNamespace,
		Chart:        &Chart{Installer: rl.in, Options: install.Options{Profile: rl.prof, Source: rl.src, Version: "1.30.1", Platform: "generic"}},
		DrainTimeout: time.Minute, ReadyTimeout: 15 * time.Second, Progress: progress,
	}
}

func (rl *rolloutLab) cordoned(ctx context.Context, t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, n := range rl.lab.Nodes {
		node, err := rl.kc.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out[n] = node.Spec.Unschedulable
	}
	return out
}

func byNode(r *Report) map[string]NodeResult {
	out := map[string]NodeResult{}
	for _, n := range r.Nodes {
		out[n.Node] = n
	}
	return out
}

// TestRolloutNodeByNode runs the whole story in a real API server with a
// real DaemonSet controller: Ctrl-C mid-node, a PDB that holds a drain for a
// while, a node whose new ztunnel never becomes ready, and two resumes.
func TestRolloutNodeByNode(t *testing.T) {
	lab := kubelab.Get(t)
	if lab.NetNS == "" {
		t.Skip("the stand-ins need the lab's pod network (root)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	f := kube.NewFactory(lab.Flags())
	c, err := f.Clients()
	if err != nil {
		t.Fatal(err)
	}
	prof, err := install.LoadProfile()
	if err != nil {
		t.Fatal(err)
	}
	src, err := install.NewLocalSource(filepath.Join("testdata", "charts"))
	if err != nil {
		t.Fatal(err)
	}
	rl := &rolloutLab{lab: lab, kc: c.Kube, prof: prof, src: src,
		in: &install.Installer{Getter: f.RESTClientGetter(), Kube: c.Kube, Dynamic: c.Dynamic, Host: c.Config.Host}}
	rl.helm(ctx, t, install.ChartIstiod, "1.30.1")
	rl.helm(ctx, t, install.ChartZtunnel, "1.30.0")

	nodes := lab.Nodes
	broken := nodes[3]
	var mu sync.Mutex
	fixed := false
	fctx, fcancel := context.WithCancel(ctx)
	fol := ztunnelsim.Follow(fctx, c.Kube, ambient.IstioNamespace, ambient.ZtunnelSelector, lab.ListenPod, func(node, version string) ztunnelsim.Scenario {
		mu.Lock()
		defer mu.Unlock()
		if node == broken && version == "1.30.1" && !fixed {
			return ztunnelsim.NotReady
		}
		return ztunnelsim.Healthy
	})
	defer func() { fcancel(); fol.Close() }()
	waitVersions(ctx, t, fol, nodes, map[string]string{nodes[0]: "1.30.0", nodes[1]: "1.30.0", nodes[2]: "1.30.0", nodes[3]: "1.30.0", nodes[4]: "1.30.0"})

	// Two captured pods per node; the first on node 1 is held by a PDB.
	shop := lab.Namespace(t, map[string]string{ambient.LabelDataplaneMode: ambient.DataplaneAmbient})
	for _, n := range nodes {
		if err := ztunnelsim.AppPods(ctx, c.Kube, shop, n, 2, ambient.RedirectionEnabled, false); err != nil {
			t.Fatal(err)
		}
	}
	held := "app-" + nodes[1] + "-enabled-0"
	if _, err := c.Kube.CoreV1().Pods(shop).Patch(ctx, held, types.MergePatchType, []byte(`{"metadata":{"labels":{"hold":"yes"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	one := intstr.FromInt32(1)
	if _, err := c.Kube.PolicyV1().PodDisruptionBudgets(shop).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "hold"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"hold": "yes"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Run 1: the PDB holds node 1's drain until the test frees it 2 s
	// later; Ctrl-C arrives right after node 2 is cordoned.
	ctx1, cancel1 := context.WithCancel(ctx)
	defer cancel1()
	var freed time.Time
	var once sync.Once
	p1 := &hookWriter{}
	p1.on = func(line string) {
		if strings.Contains(line, "refused by a PodDisruptionBudget") {
			once.Do(func() {
				go func() {
					time.Sleep(2 * time.Second)
					freed = time.Now()
					_ = c.Kube.PolicyV1().PodDisruptionBudgets(shop).Delete(ctx, "hold", metav1.DeleteOptions{})
				}()
			})
		}
		if strings.Contains(line, "node "+nodes[2]+": cordoned") {
			cancel1()
		}
	}
	rep, err := Run(ctx1, rl.options(p1))
	t.Logf("run 1 progress:\n%s", p1.String())
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("run 1: want an interrupted error, got %v", err)
	}
	if !strings.Contains(err.Error(), nodes[2]+" left cordoned") {
		t.Errorf("run 1: the error must say node %s is left cordoned: %v", nodes[2], err)
	}
	got := byNode(rep)
	for _, n := range nodes[:2] {
		if got[n].Result != ResultUpgraded || got[n].NewVersion != "1.30.1" {
			t.Errorf("run 1: node %s: %+v, want upgraded to 1.30.1", n, got[n])
		}
	}
	if freed.IsZero() {
		t.Errorf("run 1: the PDB never held a drain")
	} else if d := drainSeconds(got[nodes[1]]); d < 2 {
		t.Errorf("run 1: node %s's drain took %.1fs; the PDB held it for 2s", nodes[1], d)
	}
	if got[nodes[2]].Result != ResultInterrupted || !got[nodes[2]].LeftCordoned {
		t.Errorf("run 1: node %s: %+v, want interrupted and left cordoned", nodes[2], got[nodes[2]])
	}
	if cd := rl.cordoned(ctx, t); !cd[nodes[2]] || cd[nodes[0]] || cd[nodes[1]] || cd[nodes[3]] {
		t.Errorf("run 1: cordoned nodes %v, want only %s", cd, nodes[2])
	}
	waitVersions(ctx, t, fol, nodes, map[string]string{nodes[0]: "1.30.1", nodes[1]: "1.30.1", nodes[2]: "1.30.0", nodes[3]: "1.30.0", nodes[4]: "1.30.0"})
	ds, err := c.Kube.AppsV1().DaemonSets(ambient.IstioNamespace).Get(ctx, "ztunnel", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType || ds.Spec.UpdateStrategy.RollingUpdate != nil {
		t.Errorf("daemonset updateStrategy = %+v, want OnDelete without rollingUpdate", ds.Spec.UpdateStrategy)
	}

	// Run 2 resumes at node 2 and stops at node 3, whose new ztunnel never
	// becomes ready: node 3 stays cordoned, node 4 is not touched.
	p2 := &hookWriter{}
	rep, err = Run(ctx, rl.options(p2))
	t.Logf("run 2 progress:\n%s", p2.String())
	if !errors.Is(err, ErrNodeFailed) || !strings.Contains(err.Error(), broken) || !strings.Contains(err.Error(), "not Ready") {
		t.Fatalf("run 2: want node %s failed because its ztunnel is not Ready, got %v", broken, err)
	}
	got = byNode(rep)
	if got[nodes[0]].Result != ResultUpToDate || got[nodes[2]].Result != ResultUpgraded || got[broken].Result != ResultFailed ||
		!got[broken].LeftCordoned || got[nodes[4]].Result != ResultNotReached {
		t.Errorf("run 2 results: %+v", rep.Nodes)
	}
	if cd := rl.cordoned(ctx, t); !cd[broken] || cd[nodes[2]] || cd[nodes[4]] {
		t.Errorf("run 2: cordoned nodes %v, want only %s", cd, broken)
	}
	if rep.Resume == "" || !strings.Contains(err.Error(), "run the same command again") {
		t.Errorf("run 2: the error must say how to resume: %v", err)
	}
	waitVersions(ctx, t, fol, nodes, map[string]string{nodes[2]: "1.30.1", broken: "1.30.1", nodes[4]: "1.30.0"})

	// The cause is fixed (the stand-in turns ready); run 3 finishes.
	mu.Lock()
	fixed = true
	mu.Unlock()
	p3 := &hookWriter{}
	rep, err = Run(ctx, rl.options(p3))
	t.Logf("run 3 progress:\n%s", p3.String())
	if err != nil {
		t.Fatalf("run 3: %v", err)
	}
	if !rep.Complete {
		t.Errorf("run 3: report not complete: %+v", rep)
	}
	got = byNode(rep)
	if got[broken].Result != ResultUpgraded || got[nodes[4]].Result != ResultUpgraded {
		t.Errorf("run 3 results: %+v", rep.Nodes)
	}
	for n, cd := range rl.cordoned(ctx, t) {
		if cd {
			t.Errorf("run 3: node %s still cordoned", n)
		}
	}
	all := map[string]string{}
	for _, n := range nodes {
		all[n] = "1.30.1"
	}
	waitVersions(ctx, t, fol, nodes, all)
	for _, nr := range rep.Nodes {
		if nr.Result == ResultUpgraded {
			t.Logf("node %s overhead beyond drain and readiness: %.3fs (steps %+v)", nr.Node, nr.OverheadSeconds, nr.Steps)
		}
	}
	for _, e := range fol.Errors() {
		t.Errorf("stand-ins: %v", e)
	}
}

func drainSeconds(n NodeResult) float64 {
	for _, s := range n.Steps {
		if s.Step == "drain" {
			return s.Seconds
		}
	}
	return 0
}

// waitVersions waits until the stand-in on each node in want reports that
// version (the pod's image tag), as the user's `status` would show it.
func waitVersions(ctx context.Context, t *testing.T, f *ztunnelsim.Follower, nodes []string, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := f.Versions()
		ok := true
		for n, v := range want {
			if got[n] != v {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("ztunnel versions by node: %v, want %v (nodes %v)", got, want, nodes)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestServerSideApplyLeavesRollingUpdate shows, on the real API server, what
// the rollout's clearRollingUpdate is for: a DaemonSet applied server-side
// with RollingUpdate gets a defaulted rollingUpdate that no apply owns, and
// re-applying with type OnDelete leaves it there.
func TestServerSideApplyLeavesRollingUpdate(t *testing.T) {
	lab := kubelab.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := lab.Namespace(t, nil)
	apply := func(strategy string) {
		t.Helper()
		manifest := `{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"ztunnel","namespace":"` + ns + `"},
"spec":{"selector":{"matchLabels":{"app":"ztunnel"}},"updateStrategy":{"type":"` + strategy + `"},
"template":{"metadata":{"labels":{"app":"ztunnel"}},"spec":{"containers":[{"name":"istio-proxy","image":"istio/ztunnel:1.30.0"}]}}}}`
		force := true
		if _, err := lab.Clients.Kube.AppsV1().DaemonSets(ns).Patch(ctx, "ztunnel", types.ApplyPatchType, []byte(manifest),
			metav1.PatchOptions{FieldManager: "helm", Force: &force}); err != nil {
			t.Fatalf("apply %s: %v", strategy, err)
		}
	}
	apply("RollingUpdate")
	apply("OnDelete")
	ds, err := lab.Clients.Kube.AppsV1().DaemonSets(ns).Get(ctx, "ztunnel", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Spec.UpdateStrategy.RollingUpdate == nil {
		t.Fatalf("the API server removed rollingUpdate itself; clearRollingUpdate would have nothing to do")
	}
	t.Logf("after a server-side apply of OnDelete the DaemonSet still has rollingUpdate %+v", *ds.Spec.UpdateStrategy.RollingUpdate)
	note, err := clearRollingUpdate(ctx, lab.Clients.Kube, ns, "ztunnel")
	if err != nil || note == "" {
		t.Fatalf("clearRollingUpdate: note %q, err %v", note, err)
	}
	ds, err = lab.Clients.Kube.AppsV1().DaemonSets(ns).Get(ctx, "ztunnel", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType || ds.Spec.UpdateStrategy.RollingUpdate != nil {
		t.Errorf("after clearRollingUpdate: %+v, want OnDelete alone", ds.Spec.UpdateStrategy)
	}
	// Applying again (what the next chart upgrade does) keeps it clean.
	apply("OnDelete")
	if ds, err = lab.Clients.Kube.AppsV1().DaemonSets(ns).Get(ctx, "ztunnel", metav1.GetOptions{}); err != nil || ds.Spec.UpdateStrategy.RollingUpdate != nil {
		t.Errorf("after a second apply: %+v, %v", ds.Spec.UpdateStrategy, err)
	}
}
