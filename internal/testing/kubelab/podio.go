package kubelab

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
)

// kwok reads per-pod logs and port-forward rules from these resources
// (--enable-crds); the lab installs its own minimal definitions of them.
var (
	crdGVR         = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	logsGVR        = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "logs"}
	portForwardGVR = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "portforwards"}
)

// kwokCRDKinds are passed to kwok's --enable-crds.
var kwokCRDKinds = []string{"Logs", "PortForward"}

func kwokCRD(kind, plural string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata": map[string]any{
			"name":   plural + ".kwok.x-k8s.io",
			"labels": map[string]any{"app.kubernetes.io/part-of": "kubectl-ambient-lab"},
		},
		"spec": map[string]any{
			"group": "kwok.x-k8s.io",
			"scope": "Namespaced",
			"names": map[string]any{"kind": kind, "listKind": kind + "List", "plural": plural, "singular": strings.ToLower(kind)},
			"versions": []any{map[string]any{
				"name": "v1alpha1", "served": true, "storage": true,
				"subresources": map[string]any{"status": map[string]any{}},
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type":                                 "object",
					"x-kubernetes-preserve-unknown-fields": true,
				}},
			}},
		},
	}}
}

// installKwokCRDs creates the CRDs kwok watches for per-pod rules.
func (l *Lab) installKwokCRDs(ctx context.Context) error {
	for _, c := range []*unstructured.Unstructured{kwokCRD("Logs", "logs"), kwokCRD("PortForward", "portforwards")} {
		if _, err := l.Clients.Dynamic.Resource(crdGVR).Create(ctx, c, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create crd %s: %w", c.GetName(), err)
		}
	}
	return nil
}

// waitKwokCRDs waits until the API server serves the CRDs, so kwok's
// informers find them at start.
func (l *Lab) waitKwokCRDs(ctx context.Context) error {
	for _, name := range []string{"logs.kwok.x-k8s.io", "portforwards.kwok.x-k8s.io"} {
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			c, err := l.Clients.Dynamic.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			conds, _, _ := unstructured.NestedSlice(c.Object, "status", "conditions")
			for _, ci := range conds {
				m, _ := ci.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("crd %s not established: %w", name, err)
		}
	}
	return nil
}

// podLogs tracks the per-container log files registered with kwok.
type podLogs struct {
	mu    sync.Mutex
	files map[string]map[string]string // "ns/pod" -> container -> file
}

// ContainerLogPath is the file kwok serves as the log of one container of a
// fake pod once WriteContainerLog registered it.
func (l *Lab) ContainerLogPath(namespace, pod, container string) string {
	return filepath.Join(l.Dir, "podlogs", namespace, pod, container+".log")
}

// WriteContainerLog appends lines (CRI log format, stamped now, stdout) to
// one container's log of a fake pod. The first write for a container
// registers its file with kwok and returns only once `kubectl logs` (the
// API server's pods/log) serves it; later writes just append.
func (l *Lab) WriteContainerLog(ctx context.Context, namespace, pod, container string, lines ...string) error {
	if container == "" {
		return fmt.Errorf("write log of pod %s/%s: container name is empty", namespace, pod)
	}
	path := l.ContainerLogPath(namespace, pod, container)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("create log directory for pod %s/%s: %w", namespace, pod, err)
	}
	if err := appendCRILines(path, lines); err != nil {
		return err
	}
	l.logs.mu.Lock()
	defer l.logs.mu.Unlock()
	if l.logs.files == nil {
		l.logs.files = map[string]map[string]string{}
	}
	key := namespace + "/" + pod
	if l.logs.files[key][container] == path {
		return nil
	}
	if l.logs.files[key] == nil {
		l.logs.files[key] = map[string]string{}
	}
	l.logs.files[key][container] = path
	var entries []any
	containers := make([]string, 0, len(l.logs.files[key]))
	for c := range l.logs.files[key] {
		containers = append(containers, c)
	}
	sort.Strings(containers)
	for _, c := range containers {
		entries = append(entries, map[string]any{"containers": []any{c}, "logsFile": l.logs.files[key][c], "follow": true})
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
		"metadata": map[string]any{"name": pod, "namespace": namespace},
		"spec":     map[string]any{"logs": entries},
	}}
	if err := l.applyKwokRule(ctx, logsGVR, obj); err != nil {
		delete(l.logs.files[key], container)
		return fmt.Errorf("register log of pod %s/%s container %s: %w", namespace, pod, container, err)
	}
	// kwok picks the rule up through a watch: wait until it serves this file.
	want := strings.TrimSpace(lastLine(lines))
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		raw, err := l.Clients.Kube.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(ctx)
		if err != nil {
			return false, nil
		}
		return strings.Contains(string(raw), want), nil
	})
	if err != nil {
		return fmt.Errorf("log of pod %s/%s container %s not served by kwok after 10s: %w", namespace, pod, container, err)
	}
	return nil
}

func lastLine(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		parts := strings.Split(strings.TrimRight(lines[i], "\n"), "\n")
		if s := parts[len(parts)-1]; strings.TrimSpace(s) != "" {
			return s
		}
	}
	return ""
}

func appendCRILines(path string, lines []string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("open fake pod log %s: %w", path, err)
	}
	var b strings.Builder
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for _, line := range lines {
		for _, part := range strings.Split(strings.TrimRight(line, "\n"), "\n") {
			fmt.Fprintf(&b, "%s stdout F %s\n", now, part)
		}
	}
	if _, err := f.WriteString(b.String()); err != nil {
		_ = f.Close()
		return fmt.Errorf("write fake pod log %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write fake pod log %s: %w", path, err)
	}
	return nil
}

// ForwardPodPort makes `kubectl port-forward` (the API server's
// pods/portforward) to port of a fake pod reach target ("host:port"),
// typically a simulator listening on 127.0.0.1 or, with ListenPod, on the
// pod's own IP. Calling it again for the same pod replaces that port's rule.
// kwok picks the rule up through a watch within moments.
func (l *Lab) ForwardPodPort(ctx context.Context, namespace, pod string, port int, target string) error {
	if _, _, err := splitHostPort(target); err != nil {
		return fmt.Errorf("forward pod %s/%s port %d: target %q: %w", namespace, pod, port, target, err)
	}
	l.forwards.mu.Lock()
	defer l.forwards.mu.Unlock()
	if l.forwards.rules == nil {
		l.forwards.rules = map[string]map[int]string{}
	}
	key := namespace + "/" + pod
	if l.forwards.rules[key] == nil {
		l.forwards.rules[key] = map[int]string{}
	}
	l.forwards.rules[key][port] = target
	ports := make([]int, 0, len(l.forwards.rules[key]))
	for p := range l.forwards.rules[key] {
		ports = append(ports, p)
	}
	sort.Ints(ports)
	var entries []any
	for _, p := range ports {
		h, tp, _ := splitHostPort(l.forwards.rules[key][p])
		entries = append(entries, map[string]any{
			"ports":  []any{int64(p)},
			"target": map[string]any{"address": h, "port": int64(tp)},
		})
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "PortForward",
		"metadata": map[string]any{"name": pod, "namespace": namespace},
		"spec":     map[string]any{"forwards": entries},
	}}
	if err := l.applyKwokRule(ctx, portForwardGVR, obj); err != nil {
		return fmt.Errorf("forward pod %s/%s port %d to %s: %w", namespace, pod, port, target, err)
	}
	return nil
}

type portForwards struct {
	mu    sync.Mutex
	rules map[string]map[int]string // "ns/pod" -> pod port -> target
}

func splitHostPort(target string) (string, int, error) {
	host, p, err := net.SplitHostPort(target)
	if err != nil {
		return "", 0, err
	}
	var port int
	if _, err := fmt.Sscanf(p, "%d", &port); err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number between 1 and 65535", p)
	}
	return host, port, nil
}

// applyKwokRule creates obj or replaces its spec.
func (l *Lab) applyKwokRule(ctx context.Context, gvr schema.GroupVersionResource, obj *unstructured.Unstructured) error {
	ri := l.Clients.Dynamic.Resource(gvr).Namespace(obj.GetNamespace())
	_, err := ri.Create(ctx, obj, metav1.CreateOptions{})
	if err == nil || !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if err != nil {
		return err
	}
	cur.Object["spec"] = obj.Object["spec"]
	_, err = ri.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}
