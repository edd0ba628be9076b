package collector

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	sim "github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/ztunnelsim"
)

// labFleet is the scale tests' cluster: kwok nodes added until the lab has
// n, and a ztunnel stand-in pod of the given version on every node, in a
// namespace of the test's own. It returns once every pod has an IP, so a
// measurement starts on a quiet API server with no pod Pending. The pods
// come sorted by node name, the order of the TUI's name sort.
func labFleet(ctx context.Context, t *testing.T, lab *kubelab.Lab, n int, version string) (string, *corev1.NodeList, []corev1.Pod) {
	t.Helper()
	if missing := n - len(lab.Nodes); missing > 0 {
		begin := time.Now()
		if _, err := lab.AddNodes(ctx, missing); err != nil {
			t.Fatal(err)
		}
		t.Logf("added %d nodes in %s", missing, time.Since(begin).Round(time.Second))
	}
	nodes, err := lab.Clients.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns := lab.Namespace(t, nil)
	begin := time.Now()
	var (
		mu       sync.Mutex
		failed   int
		firstErr error
	)
	work := make(chan string)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for node := range work {
				var err error
				// A few tries: thousands of creates on a busy machine may
				// meet a timeout; the pod may then exist already.
				for range 3 {
					_, err = lab.Clients.Kube.CoreV1().Pods(ns).Create(ctx, sim.ZtunnelPod(ns, node, version), metav1.CreateOptions{})
					if err == nil || apierrors.IsAlreadyExists(err) {
						err = nil
						break
					}
				}
				if err != nil {
					mu.Lock()
					failed++
					firstErr = err
					mu.Unlock()
				}
			}
		}()
	}
	for _, node := range nodes.Items {
		work <- node.Name
	}
	close(work)
	wg.Wait()
	if failed > 0 {
		t.Fatalf("create ztunnel pods in %s: %d of %d failed, for one: %v", ns, failed, len(nodes.Items), firstErr)
	}
	t.Logf("created %d ztunnel pods in %s", len(nodes.Items), time.Since(begin).Round(time.Second))
	for {
		pods, err := lab.Clients.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.PodIP != "" {
				running++
			}
		}
		if running == len(nodes.Items) && len(pods.Items) == len(nodes.Items) {
			t.Logf("all %d running after %s", running, time.Since(begin).Round(time.Second))
			sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Spec.NodeName < pods.Items[j].Spec.NodeName })
			return ns, nodes, pods.Items
		}
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d ztunnel pods running", running, len(nodes.Items))
		}
		time.Sleep(2 * time.Second)
	}
}
