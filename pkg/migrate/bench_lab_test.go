package migrate_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/migrate"
)

// parallel runs fn(i) for i in [0,n) on workers goroutines and returns the first error.
func parallel(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || first.Load() != nil {
					return
				}
				if err := fn(i); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := first.Load().(error); ok {
		return err
	}
	return nil
}

// TestEnrollBenchmarkLab measures enrolling 500 namespaces holding 10,000
// pods, verification included, against a `kubectl label` loop making the
// same label changes. It takes minutes, so it runs only with
// KAMB_ENROLL_BENCH=1 (KAMB_ENROLL_BENCH_NS and _PODS change the size):
//
//	KAMB_ENROLL_BENCH=1 go test ./pkg/migrate -run TestEnrollBenchmarkLab -v -timeout 30m
func TestEnrollBenchmarkLab(t *testing.T) {
	if os.Getenv("KAMB_ENROLL_BENCH") != "1" {
		t.Skip("set KAMB_ENROLL_BENCH=1 to run the lab benchmark")
	}
	nsCount, podsPerNS := envInt("KAMB_ENROLL_BENCH_NS", 500), envInt("KAMB_ENROLL_BENCH_PODS", 20)
	lab := kubelab.Get(t)
	ctx := context.Background()
	kc := lab.Clients.Kube
	total := nsCount * podsPerNS
	// Each fake node has a /24 of pod IPs: about 200 pods per node.
	if need := total/200 + 1 - len(lab.Nodes); need > 0 {
		start := time.Now()
		if _, err := lab.AddNodes(ctx, need); err != nil {
			t.Fatal(err)
		}
		t.Logf("added %d nodes in %s", need, time.Since(start).Round(time.Millisecond))
	}
	nodes, err := kc.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("bench-%d-", time.Now().Unix()%100000)
	names := make([]string, nsCount)
	start := time.Now()
	if err := parallel(nsCount, 32, func(i int) error {
		names[i] = fmt.Sprintf("%s%03d", prefix, i)
		_, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: names[i],
			Labels: map[string]string{"istio-injection": "enabled", "bench": strings.Trim(prefix, "-")}}}, metav1.CreateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = parallel(nsCount, 32, func(i int) error {
			return kc.CoreV1().Namespaces().Delete(context.Background(), names[i], metav1.DeleteOptions{})
		})
	})
	if err := parallel(total, 64, func(i int) error {
		ns, node := names[i/podsPerNS], nodes.Items[i%len(nodes.Items)].Name
		_, err := kc.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%d", i%podsPerNS)},
			Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/lab/app:1"}}},
		}, metav1.CreateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("created %d namespaces and %d pods in %s", nsCount, total, time.Since(start).Round(time.Millisecond))
	// Wait until kwok runs them all (test code may poll).
	start = time.Now()
	for {
		l, err := kc.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: ""})
		if err != nil {
			t.Fatal(err)
		}
		running := 0
		for _, p := range l.Items {
			if len(p.Namespace) > len(prefix) && p.Namespace[:len(prefix)] == prefix && p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		if running == total {
			break
		}
		if time.Since(start) > 10*time.Minute {
			t.Fatalf("only %d of %d pods running after 10m", running, total)
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("all %d pods running after %s more", total, time.Since(start).Round(time.Millisecond))

	// 1. The kubectl loop: the same label changes, one kubectl per namespace, no verification.
	start = time.Now()
	for _, n := range names {
		lab.Kubectl(t, "label", "namespace", n, "istio.io/dataplane-mode=ambient", "istio-injection-")
	}
	loop := time.Since(start)
	t.Logf("kubectl label loop, %d namespaces: %s", nsCount, loop.Round(time.Millisecond))
	// Put the labels back (not timed).
	if err := parallel(nsCount, 32, func(i int) error {
		_, err := kc.CoreV1().Namespaces().Patch(ctx, names[i], types.MergePatchType,
			[]byte(`{"metadata":{"labels":{"istio-injection":"enabled","istio.io/dataplane-mode":null}}}`), metav1.PatchOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}

	c := lab.Clients
	// 2. kubectl-ambient without the CNI stand-in: the same label changes
	// (plus a journal each), on an otherwise quiet API server like the loop's.
	start = time.Now()
	enrollLabels(t, lab, names)
	labels := time.Since(start)
	t.Logf("kubectl-ambient enroll --verify=false equivalent (read, plan, access check, journaled patches): %s", labels.Round(time.Millisecond))
	start = time.Now()
	if _, err := migrate.Unenroll(ctx, c.Kube, c.Dynamic, names, migrate.UnenrollOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("unenroll of %d namespaces from their journals: %s", nsCount, time.Since(start).Round(time.Millisecond))

	// 3. The full enrollment with the CNI stand-in capturing pods as the
	// labels land, until every pod is verified captured.
	cni := startCNI(t, lab)
	start = time.Now()
	enrollLabels(t, lab, names)
	applied := time.Since(start)
	t0 := time.Now()
	rep, err := migrate.Verify(ctx, c.Kube, names, migrate.VerifyOptions{Timeout: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	verifyT := time.Since(t0)
	ours := time.Since(start)
	captured := 0
	for _, n := range rep.Namespaces {
		captured += n.Captured
	}
	if captured != total {
		t.Errorf("captured %d of %d pods", captured, total)
	}
	t.Logf("with the cni stand-in running: labels %s, then verification %s (the stand-in wrote %d annotations, %.0f writes/s overall)",
		applied.Round(time.Millisecond), verifyT.Round(time.Millisecond), cni.Writes.Load(), float64(cni.Writes.Load())/ours.Seconds())
	t.Logf("RESULT enroll %d ns / %d pods: labels+journal %s (%.1fx faster than the kubectl loop); including verification %s (%.2fx); kubectl loop %s",
		nsCount, total, labels.Round(time.Millisecond), loop.Seconds()/labels.Seconds(), ours.Round(time.Millisecond), loop.Seconds()/ours.Seconds(), loop.Round(time.Millisecond))

	// 4. The API server's own ceiling for the writes verification waits on:
	// the same kind of pod annotation patch through pods/status, for every
	// pod, from 64 workers with no client-side throttling. Verification
	// cannot end sooner than the time these writes take.
	pods := make([][2]string, 0, total)
	for _, n := range rep.Namespaces {
		l, err := kc.CoreV1().Pods(n.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range l.Items {
			pods = append(pods, [2]string{p.Namespace, p.Name})
		}
	}
	start = time.Now()
	if err := parallel(len(pods), 64, func(i int) error {
		_, err := kc.CoreV1().Pods(pods[i][0]).Patch(ctx, pods[i][1], types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"bench.kubectl-ambient.test/ceiling":"1"}}}`), metav1.PatchOptions{}, "status")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ceiling := time.Since(start)
	t.Logf("RESULT API server ceiling: %d pods/status patches from 64 workers in %s (%.0f writes/s); the cni stand-in's %d writes took %s of verification",
		len(pods), ceiling.Round(time.Millisecond), float64(len(pods))/ceiling.Seconds(), cni.Writes.Load(), verifyT.Round(time.Millisecond))
}

// enrollLabels runs read, plan, access check and apply, logging each phase.
func enrollLabels(t *testing.T, lab *kubelab.Lab, names []string) {
	t.Helper()
	ctx, c := context.Background(), lab.Clients
	start := time.Now()
	snap, err := migrate.ReadSnapshot(ctx, c.Kube, c.Dynamic, c.Discovery)
	if err != nil {
		t.Fatal(err)
	}
	readT := time.Since(start)
	t0 := time.Now()
	plan, err := migrate.BuildPlan(snap, migrate.Selection{Names: names}, migrate.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	planT := time.Since(t0)
	t0 = time.Now()
	if err := migrate.CheckAccess(ctx, c.Kube, migrate.EnrollAccess(plan, true, false)); err != nil {
		t.Fatal(err)
	}
	accessT := time.Since(t0)
	t0 = time.Now()
	res, err := migrate.Apply(ctx, c.Kube, c.Dynamic, plan, migrate.ApplyOptions{Workers: 32})
	if err != nil {
		t.Fatal(err)
	}
	if got := migrate.ResultsSummary(res); got != fmt.Sprintf("%d enrolled", len(names)) {
		t.Fatalf("apply: %s", got)
	}
	t.Logf("  read %s (%d pods), plan %s, access check %s, %d patches %s", readT.Round(time.Millisecond), len(snap.Pods),
		planT.Round(time.Millisecond), accessT.Round(time.Millisecond), len(names), time.Since(t0).Round(time.Millisecond))
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}
