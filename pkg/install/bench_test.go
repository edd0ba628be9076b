package install

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
)

// readyObserver is an independent witness: raw watches on istio-system's
// Deployments and DaemonSets, started before the install, recording when
// each first satisfied the readiness rule. Comparing the installer's
// detection time with it measures how late the installer notices.
type readyObserver struct {
	mu    sync.Mutex
	first map[string]time.Time
	stop  context.CancelFunc
}

func observeReady(t testing.TB, kc kubernetes.Interface, ns string) *readyObserver {
	ctx, cancel := context.WithCancel(context.Background())
	o := &readyObserver{first: map[string]time.Time{}, stop: cancel}
	start := func(kind string, w watch.Interface, err error) {
		if err != nil {
			t.Fatalf("observer watch %s: %v", kind, err)
		}
		go func() {
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-w.ResultChan():
					if !ok {
						return
					}
					o.see(kind, ev.Object)
				}
			}
		}()
	}
	d, err := kc.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{})
	start("Deployment", d, err)
	ds, err := kc.AppsV1().DaemonSets(ns).Watch(ctx, metav1.ListOptions{})
	start("DaemonSet", ds, err)
	return o
}

func (o *readyObserver) see(kind string, obj runtime.Object) {
	now := time.Now()
	r, ok := readinessOf(obj)
	if !ok || !r.Ready {
		return
	}
	m, _ := obj.(metav1.Object)
	key := kind + " " + m.GetNamespace() + "/" + m.GetName()
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, seen := o.first[key]; !seen {
		o.first[key] = now
	}
}

func (o *readyObserver) waitSeen(w Workload, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, ok := o.at(w); ok {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func (o *readyObserver) at(w Workload) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	t, ok := o.first[w.String()]
	return t, ok
}

// BenchmarkInstall installs the profile (test charts from a local HTTP
// repository) into the lab with 3 and then 100 fake nodes and reports the
// tool's overhead (wall time minus the sum of apply and wait time) and how
// late readiness is detected compared with an independent watch.
//
//	go test -run '^$' -bench BenchmarkInstall -benchtime 3x ./pkg/install
func BenchmarkInstall(b *testing.B) {
	lab := getLab(b)
	srv := serveCharts(b, testCharts(b, "1.32.1"))
	ctx := context.Background()
	for _, nodes := range []int{3, 100} {
		if have := len(lab.Nodes); have < nodes {
			if _, err := lab.AddNodes(ctx, nodes-have); err != nil {
				b.Fatalf("add nodes: %v", err)
			}
		}
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			in := newInstaller(b, lab.Flags(), nil)
			var overhead, wall, work, lagMax time.Duration
			var lagSum time.Duration
			var lagN int
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if _, err := in.Uninstall(ctx, UninstallOptions{Profile: mustProfile(b), Platform: "generic", Force: true}); err != nil {
					b.Fatal(err)
				}
				// Wait for the old pods to go so each run starts clean.
				waitNoPods(ctx, b, lab, "istio-system")
				obs := observeReady(b, lab.Clients.Kube, "istio-system")
				src := &RepoSource{URL: srv.URL, CacheDir: b.TempDir()}
				b.StartTimer()
				start := time.Now()
				res := mustRun(ctx, b, in, installOpts(b, src, "1.32.1"))
				w := time.Since(start)
				b.StopTimer()
				// The observer's copy of the last event may still be in flight.
				for _, c := range res.Components {
					for _, r := range c.Ready {
						obs.waitSeen(r.Workload, 5*time.Second)
					}
				}
				obs.stop()
				var sum time.Duration
				for _, c := range res.Components {
					sum += c.Apply + c.Wait
					for _, r := range c.Ready {
						seen, ok := obs.at(r.Workload)
						if !ok {
							b.Fatalf("observer never saw %s ready", r.Workload)
						}
						lag := r.ReadyAt.Sub(seen)
						lagSum += lag
						lagN++
						if lag > lagMax {
							lagMax = lag
						}
					}
				}
				wall += w
				work += sum
				overhead += w - sum
				b.StartTimer()
			}
			n := time.Duration(b.N)
			b.ReportMetric(float64((wall / n).Milliseconds()), "wall-ms")
			b.ReportMetric(float64((work / n).Milliseconds()), "apply+wait-ms")
			b.ReportMetric(float64((overhead / n).Milliseconds()), "overhead-ms")
			b.ReportMetric(float64(lagMax.Microseconds())/1000, "max-detect-lag-ms")
			if lagN > 0 {
				b.ReportMetric(float64((lagSum/time.Duration(lagN)).Microseconds())/1000, "mean-detect-lag-ms")
			}
		})
	}
}

func waitNoPods(ctx context.Context, t testing.TB, lab *kubelab.Lab, ns string) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		pods, err := lab.Clients.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("pods in %s not gone after uninstall", ns)
}
