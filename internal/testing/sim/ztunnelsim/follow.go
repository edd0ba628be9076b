package ztunnelsim

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// ScenarioFunc picks the scenario of the ztunnel that runs version on node.
type ScenarioFunc func(node, version string) Scenario

// Follower plays ztunnel for the pods a real DaemonSet creates in the lab:
// every Running ztunnel pod with an IP gets a stand-in on its IP whose
// version is the pod's image tag (so a chart upgrade shows in istio_build),
// and a NotReady stand-in makes the pod NotReady as kubelet's readiness
// probe would. Pods that go away have their stand-in stopped.
type Follower struct {
	c        kubernetes.Interface
	ns, sel  string
	listen   ListenFunc
	mu       sync.Mutex
	scenario ScenarioFunc
	served   map[types.UID]*followed
	errs     []error
	done     chan struct{}
}

type followed struct {
	node, pod, version string
	scenario           Scenario
	stand              *Stand
	servers            *Servers
}

// Follow starts a Follower for the pods matching selector in ns; it runs
// until ctx ends (then Close waits for it).
func Follow(ctx context.Context, c kubernetes.Interface, ns, selector string, listen ListenFunc, sc ScenarioFunc) *Follower {
	f := &Follower{c: c, ns: ns, sel: selector, listen: listen, scenario: sc, served: map[types.UID]*followed{}, done: make(chan struct{})}
	go f.loop(ctx)
	return f
}

// SetScenario changes the scenarios; running stand-ins switch on the next tick.
func (f *Follower) SetScenario(sc ScenarioFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scenario = sc
}

// Errors returns what went wrong while following (listen or status errors).
func (f *Follower) Errors() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]error(nil), f.errs...)
}

// Versions returns the version each node's stand-in reports, by node.
func (f *Follower) Versions() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for _, s := range f.served {
		out[s.node] = s.version
	}
	return out
}

// Close waits for the loop to end (cancel its context first) and stops
// every stand-in.
func (f *Follower) Close() {
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.served {
		s.servers.Close()
	}
}

func (f *Follower) loop(ctx context.Context) {
	defer close(f.done)
	for {
		f.tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (f *Follower) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, err)
}

func (f *Follower) tick(ctx context.Context) {
	pods, err := f.c.CoreV1().Pods(f.ns).List(ctx, metav1.ListOptions{LabelSelector: f.sel})
	if err != nil {
		return
	}
	live := map[types.UID]bool{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp == nil && p.Status.PodIP != "" && p.Status.Phase == corev1.PodRunning {
			live[p.UID] = true
		}
	}
	// Stop serving pods that are gone or going first: a DaemonSet's new pod
	// on a node can get the address its deleted predecessor listened on.
	f.mu.Lock()
	for uid, s := range f.served {
		if !live[uid] {
			s.servers.Close()
			delete(f.served, uid)
		}
	}
	f.mu.Unlock()
	for i := range pods.Items {
		p := &pods.Items[i]
		if !live[p.UID] {
			continue
		}
		version := ""
		for _, c := range p.Spec.Containers {
			version = ambient.ImageVersion(c.Image)
		}
		f.mu.Lock()
		want := f.scenario(p.Spec.NodeName, version)
		cur := f.served[p.UID]
		f.mu.Unlock()
		if cur != nil && cur.scenario == want {
			continue
		}
		if cur != nil {
			cur.servers.Close()
		}
		st := New(p.Spec.NodeName, want)
		st.Version = version
		var lst []net.Listener
		ok := true
		for _, port := range []int{ambient.PortMetrics, ambient.PortReadiness, ambient.PortAdmin} {
			l, err := f.listen(p.Status.PodIP, port)
			if err != nil {
				f.fail(fmt.Errorf("listen %s:%d for pod %s: %w", p.Status.PodIP, port, p.Name, err))
				ok = false
				break
			}
			lst = append(lst, l)
		}
		if !ok {
			for _, l := range lst {
				_ = l.Close()
			}
			continue
		}
		fo := &followed{node: p.Spec.NodeName, pod: p.Name, version: version, scenario: want, stand: st, servers: st.Serve(lst...)}
		f.mu.Lock()
		f.served[p.UID] = fo
		f.mu.Unlock()
		if err := SetPodReady(ctx, f.c, p, want != NotReady); err != nil {
			f.fail(err)
		}
	}
}

// SetPodReady writes the pod's Ready conditions and container readiness, as
// kubelet does after its readiness probe.
func SetPodReady(ctx context.Context, c kubernetes.Interface, p *corev1.Pod, ready bool) error {
	for range 20 {
		cur, err := c.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return nil // gone
		}
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		changed := false
		for i := range cur.Status.Conditions {
			cd := &cur.Status.Conditions[i]
			if (cd.Type == corev1.PodReady || cd.Type == corev1.ContainersReady) && cd.Status != st {
				cd.Status, cd.LastTransitionTime, changed = st, metav1.Now(), true
			}
		}
		for i := range cur.Status.ContainerStatuses {
			if cur.Status.ContainerStatuses[i].Ready != ready {
				cur.Status.ContainerStatuses[i].Ready, changed = ready, true
			}
		}
		if !changed {
			return nil
		}
		_, err = c.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("set readiness of pod %s/%s: %w", p.Namespace, p.Name, err)
		}
		return nil
	}
	return fmt.Errorf("set readiness of pod %s/%s: conflicts kept coming", p.Namespace, p.Name)
}
