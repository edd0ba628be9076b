package collector

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// evictFromPageCache drops the binary's pages from the page cache, so the
// run maps its text as read from disk, as an installed binary is after a
// reboot or once the kernel reclaimed it. A file just written (by the Go
// linker, or a single large write) can sit in the page cache in large
// folios, and mapping those counts up to 40 MB more of the text as resident
// (`version --client`: 46 MB evicted, 50-90 MB right after writing it).
func evictFromPageCache(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatalf("evict %s from the page cache: %v", path, err)
	}
}

// gcTrace reads GODEBUG=gctrace=1 lines ("A->B->C MB": heap at GC start,
// at GC end, live) and returns the number of collections and the largest
// live heap and heap at GC start, in MB.
func gcTrace(stderr string) (collections, maxLive, maxStart int) {
	for _, l := range strings.Split(stderr, "\n") {
		i := strings.Index(l, " MB, ")
		if !strings.HasPrefix(l, "gc ") || i < 0 {
			continue // other lines share stderr
		}
		var a, b, c int
		f := strings.Fields(l[:i])
		if _, err := fmt.Sscanf(f[len(f)-1], "%d->%d->%d", &a, &b, &c); err == nil {
			collections++
			maxLive, maxStart = max(maxLive, c), max(maxStart, a)
		}
	}
	return collections, maxLive, maxStart
}
