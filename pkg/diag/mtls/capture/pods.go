package capture

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kwatch "k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// matchWorkload: the pod's name, a name prefix followed by "-" (pods of a
// Deployment or StatefulSet), or the app / app.kubernetes.io/name label.
func matchWorkload(p *corev1.Pod, w string) bool {
	if w == "" {
		return false
	}
	return p.Name == w || strings.HasPrefix(p.Name, w+"-") || p.Labels["app"] == w || p.Labels["app.kubernetes.io/name"] == w
}

func capturePod(ns, node, suffix, image string, d time.Duration) *corev1.Pod {
	priv := true
	no := false
	zero := int64(0)
	name := "ambient-capture-" + suffix + "-" + node
	if len(name) > 63 {
		name = name[:63]
	}
	name = strings.TrimRight(name, "-.")
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels: map[string]string{Label: "true", "app.kubernetes.io/managed-by": "kubectl-ambient"},
		},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			HostNetwork:                   true,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &zero,
			AutomountServiceAccountToken:  &no,
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name:    "capture",
				Image:   image,
				Command: []string{"sleep", strconv.Itoa(int(d/time.Second) + 120)},
				SecurityContext: &corev1.SecurityContext{
					Privileged:   &priv,
					Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}},
				},
			}},
		},
	}
}

// NamespaceName is the namespace a run with this suffix creates for its
// capture pods when no --capture-namespace is given.
func NamespaceName(suffix string) string { return "ambient-capture-" + suffix }

// createCaptureNamespace makes the run's own namespace for its capture
// pods, labelled so Pod Security admits privileged host-network pods there
// and so Cleanup finds it if the run is interrupted.
func createCaptureNamespace(ctx context.Context, kc kubernetes.Interface, name string, extra map[string]string) error {
	labels := map[string]string{}
	for k, v := range extra {
		labels[k] = v
	}
	for k, v := range map[string]string{
		Label:                                "true",
		"app.kubernetes.io/managed-by":       "kubectl-ambient",
		"pod-security.kubernetes.io/enforce": "privileged",
		"pod-security.kubernetes.io/audit":   "privileged",
		"pod-security.kubernetes.io/warn":    "privileged",
	} {
		labels[k] = v
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := kc.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		if apierrors.IsForbidden(err) {
			return fmt.Errorf("create capture namespace %q: %w; %w: verify-mtls needs RBAC to create and delete namespaces (docs/rbac.md)", name, err, ErrOwnNamespace)
		}
		return fmt.Errorf("create capture namespace %q: %w", name, err)
	}
	return nil
}

// deleteCaptureNamespace deletes the run's own namespace, on its own
// context: it must happen after Ctrl-C too.
func deleteCaptureNamespace(kc kubernetes.Interface, name string, progress io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kc.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		_, _ = fmt.Fprintf(progress, "warning: delete capture namespace %s: %v; remove leftovers with verify-mtls --cleanup\n", name, err)
	}
}

// explainCreate says why a capture pod was refused. It never advises
// relaxing a namespace: the capture pods belong in a namespace of their own
// or in one that admits privileged pods already.
func explainCreate(ns string, own bool, err error) error {
	switch {
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "PodSecurity") && own:
		return fmt.Errorf("create capture pod in namespace %q: %w; %w: it is labelled privileged, yet an admission policy refused the privileged host-network capture pod", ns, err, ErrOwnNamespace)
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "PodSecurity"):
		return fmt.Errorf("create capture pod in namespace %q: %w; %w: the capture pod is privileged with host networking", ns, err, ErrNamespaceRefused)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("create capture pod in namespace %q: %w; verify-mtls needs RBAC create/delete pods and create pods/exec there (docs/rbac.md)", ns, err)
	}
	return fmt.Errorf("create capture pod in namespace %q: %w", ns, err)
}

func waitRunning(ctx context.Context, kc kubernetes.Interface, ns, name string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var phase corev1.PodPhase
	_, err := WatchPods(ctx, kc, ns, Label, func(state map[string]*corev1.Pod) bool {
		if p := state[name]; p != nil {
			phase = p.Status.Phase
		}
		return phase == corev1.PodRunning || phase == corev1.PodFailed || phase == corev1.PodSucceeded
	})
	switch {
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("capture pod %s/%s not running after %s (image pull or scheduling?); check kubectl describe pod -n %s %s", ns, name, limit, ns, name)
	case err != nil:
		return fmt.Errorf("wait for capture pod %s/%s: %w", ns, name, err)
	case phase != corev1.PodRunning:
		return fmt.Errorf("capture pod %s/%s ended (%s) before the capture; check kubectl describe pod -n %s %s", ns, name, phase, ns, name)
	}
	return nil
}

// WatchPods lists the pods matching selector in ns, then follows a watch
// until done holds for the current state (pods by name) or ctx ends.
func WatchPods(ctx context.Context, kc kubernetes.Interface, ns, selector string, done func(map[string]*corev1.Pod) bool) (map[string]*corev1.Pod, error) {
	for {
		list, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return nil, fmt.Errorf("list pods in namespace %s: %w", ns, err)
		}
		state := map[string]*corev1.Pod{}
		for i := range list.Items {
			state[list.Items[i].Name] = &list.Items[i]
		}
		if done(state) {
			return state, nil
		}
		w, err := kc.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: selector, ResourceVersion: list.ResourceVersion})
		if err != nil {
			return nil, fmt.Errorf("watch pods in namespace %s: %w", ns, err)
		}
		finished, err := follow(ctx, w, state, done)
		w.Stop()
		if finished || err != nil {
			return state, err
		}
		// The watch closed (server timeout): list again and resume.
	}
}

func follow(ctx context.Context, w kwatch.Interface, state map[string]*corev1.Pod, done func(map[string]*corev1.Pod) bool) (bool, error) {
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false, nil
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod {
				continue
			}
			switch ev.Type {
			case kwatch.Added, kwatch.Modified:
				state[p.Name] = p
			case kwatch.Deleted:
				delete(state, p.Name)
			}
			if done(state) {
				return true, nil
			}
		}
	}
}

// Cleanup deletes capture pods left behind (all namespaces when ns is
// empty) and returns their names.
func Cleanup(ctx context.Context, kc kubernetes.Interface, ns string) ([]string, error) {
	list, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: Label})
	if err != nil {
		return nil, fmt.Errorf("list capture pods: %w", err)
	}
	var gone []string
	for _, p := range list.Items {
		zero := int64(0)
		if err := kc.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
			return gone, fmt.Errorf("delete capture pod %s/%s: %w", p.Namespace, p.Name, err)
		}
		gone = append(gone, p.Namespace+"/"+p.Name)
	}
	if ns != "" {
		return gone, nil
	}
	nss, err := kc.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: Label})
	if err != nil {
		return gone, fmt.Errorf("list capture namespaces: %w", err)
	}
	for _, n := range nss.Items {
		if err := kc.CoreV1().Namespaces().Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return gone, fmt.Errorf("delete capture namespace %s: %w", n.Name, err)
		}
		gone = append(gone, "namespace "+n.Name)
	}
	return gone, nil
}
