package kubelab

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// nodeWorkers is how many node creations run at once: enough to keep the
// API server busy, few enough not to starve a 2-core machine.
const nodeWorkers = 32

// AddNodes creates n more fake nodes (named NodePrefix + index), managed by
// the lab's kwok, and returns their names once kwok has made them Ready.
// Nodes 0..255 get a /24 podCIDR of the lab's pod CIDR; later ones use
// kwok's default range, still inside PodCIDR.
func (l *Lab) AddNodes(ctx context.Context, n int) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	l.mu.Lock()
	first := l.nextNode
	l.nextNode += n
	l.mu.Unlock()

	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("%s%d", NodePrefix, first+i)
	}
	work := make(chan int)
	errs := make(chan error, nodeWorkers)
	var wg sync.WaitGroup
	for range min(nodeWorkers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := l.createNode(ctx, names[i], first+i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var firstErr error
feed:
	for i := range n {
		select {
		case work <- i:
		case firstErr = <-errs:
			break feed
		case <-ctx.Done():
			firstErr = ctx.Err()
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr == nil {
		select {
		case firstErr = <-errs:
		default:
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if err := l.waitNodesReady(ctx, names); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.Nodes = append(l.Nodes, names...)
	l.mu.Unlock()
	return names, nil
}

func (l *Lab) createNode(ctx context.Context, name string, index int) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
			Annotations: map[string]string{
				NodeAnnotation:                 "fake",
				"node.alpha.kubernetes.io/ttl": "0",
			},
		},
	}
	if l.net != nil {
		if cidr := l.net.NodeCIDR(index); cidr != "" {
			node.Spec.PodCIDR = cidr
			node.Spec.PodCIDRs = []string{cidr}
		}
	}
	if _, err := l.Clients.Kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create fake node %s: %w", name, err)
	}
	return nil
}

// waitNodesReady polls the (watch-cached) node list until every named node
// reports Ready.
func (l *Lab) waitNodesReady(ctx context.Context, names []string) error {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	timeout := 60*time.Second + time.Duration(len(names))*20*time.Millisecond
	deadline := time.Now().Add(timeout)
	for {
		if dead := l.deadComponent(); dead != "" {
			return fmt.Errorf("%s exited; see %s/logs/%s.log", dead, l.Dir, dead)
		}
		list, err := l.Clients.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err == nil {
			for i := range list.Items {
				if want[list.Items[i].Name] && nodeReady(&list.Items[i]) {
					delete(want, list.Items[i].Name)
				}
			}
			if len(want) == 0 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d fake nodes not Ready after %s: check the kwok log in %s/logs", len(want), len(names), timeout, l.Dir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
