package migrate_test

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/waypointsim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/migrate"
)

// TestEnrollL7BenchmarkLab migrates 50 sidecar namespaces, each with a
// Service-fronted workload and 5 selector-based L7 AuthorizationPolicies,
// through a waypoint per namespace (the stand-in istiod programs each at
// once), with verification, then unenrolls them. It reports the plan time
// for the whole snapshot and each namespace's time beyond its waypoint's
// readiness. Runs only with KAMB_L7_BENCH=1:
//
//	KAMB_L7_BENCH=1 go test ./pkg/migrate -run TestEnrollL7BenchmarkLab -v -timeout 20m
func TestEnrollL7BenchmarkLab(t *testing.T) {
	if os.Getenv("KAMB_L7_BENCH") != "1" {
		t.Skip("set KAMB_L7_BENCH=1 to run the L7 lab benchmark")
	}
	nsCount := envInt("KAMB_L7_BENCH_NS", 50)
	lab := kubelab.Get(t)
	installCRDs(t, lab)
	startCNI(t, lab)
	startWaypoints(t, lab, waypointsim.Options{})
	ctx := context.Background()
	names := make([]string, nsCount)
	for i := range names {
		names[i] = fmt.Sprintf("l7bench-%03d", i)
	}
	if err := parallel(nsCount, 8, func(i int) error {
		ns := names[i]
		if _, err := lab.Clients.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{ambient.LabelInjection: "enabled"}}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		doc := `apiVersion: v1
kind: Service
metadata: {name: api}
spec: {selector: {app: api}, ports: [{name: http, port: 8080, targetPort: 8080}]}
`
		for j := range 5 {
			doc += fmt.Sprintf(`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api-%d}
spec:
  selector: {matchLabels: {app: api}}
  rules:
  - to: [{operation: {methods: [GET], paths: ["/v%d/*"]}}]
    when: [{key: "request.headers[x-tenant]", values: ["t%d"]}]
`, j, j, j)
		}
		p := writeTemp(t, doc)
		if _, err := lab.KubectlE(ctx, "apply", "-n", ns, "-f", p); err != nil {
			return err
		}
		_, err := lab.Clients.Kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "api-0", Labels: map[string]string{"app": "api"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/lab/app:1"}}}}, metav1.CreateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range names {
		waitPods(t, lab, ns, 1)
	}

	// Plan time: one read of the cluster, then the pure plan.
	c := lab.Clients
	t0 := time.Now()
	snap, err := migrate.ReadSnapshot(ctx, c.Kube, c.Dynamic, c.Discovery)
	if err != nil {
		t.Fatal(err)
	}
	read := time.Since(t0)
	t1 := time.Now()
	plan, err := migrate.BuildPlan(snap, migrate.Selection{Names: names}, migrate.PlanOptions{Waypoint: true})
	planTime := time.Since(t1)
	if err != nil {
		t.Fatal(err)
	}
	moves := 0
	for _, n := range plan.Namespaces {
		moves += len(n.Moves)
	}
	if moves != 5*nsCount {
		t.Fatalf("plan moves %d policies, want %d", moves, 5*nsCount)
	}

	type times struct{ start, created, ready, patched, deleted time.Time }
	var mu sync.Mutex
	per := map[string]*times{}
	obs := func(e migrate.Event) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		tm := per[e.Namespace]
		if tm == nil {
			tm = &times{}
			per[e.Namespace] = tm
		}
		switch {
		case e.Step == migrate.StepJournaled && e.Message == migrate.PhaseWaypoint:
			tm.start = now
		case e.Step == migrate.StepWaypointCreated:
			tm.created = now
		case e.Step == migrate.StepJournaled && e.Message == migrate.PhaseCopies:
			tm.ready = now
		case e.Step == migrate.StepPatched:
			tm.patched = now
		case e.Step == migrate.StepOriginalDeleted:
			tm.deleted = now
		}
	}
	t2 := time.Now()
	if _, err := migrate.Enroll(ctx, c, migrate.EnrollConfig{Selection: migrate.Selection{Names: names}, Plan: migrate.PlanOptions{Waypoint: true},
		Verify: true, Timeout: 5 * time.Minute, Workers: 32, Observer: obs}); err != nil {
		t.Fatalf("enroll: %v", err)
	}
	total := time.Since(t2)
	var beyond, wait []time.Duration
	for _, ns := range names {
		tm := per[ns]
		// Time spent on our own steps: journal and create before the wait,
		// copies, use-waypoint, dataplane after it.
		beyond = append(beyond, tm.created.Sub(tm.start)+tm.patched.Sub(tm.ready))
		wait = append(wait, tm.ready.Sub(tm.created))
	}
	sort.Slice(beyond, func(i, j int) bool { return beyond[i] < beyond[j] })
	sort.Slice(wait, func(i, j int) bool { return wait[i] < wait[j] })
	tDry := time.Now()
	dry, err := migrate.UnenrollNamespaces(ctx, c, migrate.UnenrollConfig{Selection: migrate.UnenrollSelection{Names: names}, Workers: 32, DryRun: true})
	if err != nil {
		t.Fatalf("unenroll dry run: %v", err)
	}
	dryTime := time.Since(tDry)
	t3 := time.Now()
	rep, err := migrate.UnenrollNamespaces(ctx, c, migrate.UnenrollConfig{Selection: migrate.UnenrollSelection{Names: names}, Workers: 32})
	if err != nil {
		t.Fatalf("unenroll: %v", err)
	}
	unenroll := time.Since(t3)
	steps := 0
	for i := range rep.Results {
		steps += len(rep.Results[i].Steps)
		if !reflect.DeepEqual(rep.Results[i].Steps, dry.Results[i].Steps) {
			t.Errorf("namespace %s: unenroll took other steps than its dry run listed", rep.Results[i].Namespace)
		}
	}
	t.Logf("unenroll --dry-run of %d namespaces (%d steps listed, the label patches dry-run by the API server): %s", nsCount, steps, dryTime.Round(time.Millisecond))
	t.Logf("%d namespaces, %d policies moved: snapshot read %s, plan %s; enroll total %s (verification and original deletion included)", nsCount, moves, read.Round(time.Millisecond), planTime.Round(time.Microsecond), total.Round(time.Millisecond))
	t.Logf("per namespace beyond waypoint readiness: median %s, p90 %s, max %s; waypoint wait (stand-in istiod): median %s, max %s",
		beyond[len(beyond)/2].Round(time.Millisecond), beyond[len(beyond)*9/10].Round(time.Millisecond), beyond[len(beyond)-1].Round(time.Millisecond),
		wait[len(wait)/2].Round(time.Millisecond), wait[len(wait)-1].Round(time.Millisecond))
	t.Logf("unenroll of %d namespaces (originals back, copies and waypoints deleted): %s", nsCount, unenroll.Round(time.Millisecond))
	if planTime > 200*time.Millisecond {
		t.Errorf("plan took %s, budget 200ms", planTime)
	}
}

func writeTemp(t *testing.T, s string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "obj-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	return f.Name()
}
