package ztunnelsim

import (
	"context"
	"fmt"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// ListenFunc opens a listener on a fake pod's IP (kubelab.Lab.ListenPod).
type ListenFunc func(podIP string, port int) (net.Listener, error)

// Deployment is a set of stand-ins running behind real ztunnel pods in a lab.
type Deployment struct {
	Stands  map[string]*Stand // by node
	Pods    map[string]string // ztunnel pod name by node
	servers []*Servers
}

// Close stops the stand-ins' servers.
func (d *Deployment) Close() {
	for _, s := range d.servers {
		s.Close()
	}
}

// ZtunnelPod returns the pod object the lab creates for a node's ztunnel:
// labelled app=ztunnel in ns, pinned to the node, with ztunnel's container
// name, image and ports.
func ZtunnelPod(ns, node, version string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "ztunnel-" + node, Namespace: ns, Labels: map[string]string{"app": "ztunnel", "sim.kubectl-ambient.io/test-only": "true"}},
		Spec: corev1.PodSpec{
			NodeName:    node,
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name: ambient.ProxyContainer, Image: "docker.io/istio/ztunnel:" + version + "-distroless",
				Ports: []corev1.ContainerPort{
					{Name: "ztunnel-stats", ContainerPort: 15020}, {Name: "readiness", ContainerPort: 15021}, {Name: "admin", ContainerPort: 15000},
				},
			}},
		},
	}
}

// Deploy creates a ztunnel pod for every node whose scenario is not
// NoZtunnel, waits until each has an IP, serves its stand-in on ztunnel's
// three ports through listen, and marks the Restarting ones as restarted.
func Deploy(ctx context.Context, c kubernetes.Interface, ns string, scenarios map[string]Scenario, listen ListenFunc) (*Deployment, error) {
	d := &Deployment{Stands: map[string]*Stand{}, Pods: map[string]string{}}
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create namespace %s: %w", ns, err)
	}
	for node, sc := range scenarios {
		if sc == NoZtunnel {
			continue
		}
		st := New(node, sc)
		d.Stands[node] = st
		pod := ZtunnelPod(ns, node, st.Version)
		if _, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return d, fmt.Errorf("create ztunnel pod for node %s: %w", node, err)
		}
		d.Pods[node] = pod.Name
	}
	for node, name := range d.Pods {
		var ip string
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			ip = p.Status.PodIP
			return ip != "" && p.Status.Phase == corev1.PodRunning, nil
		})
		if err != nil {
			return d, fmt.Errorf("ztunnel pod %s/%s got no IP: %w", ns, name, err)
		}
		var ls []net.Listener
		for _, port := range []int{15020, 15021, 15000} {
			l, err := listen(ip, port)
			if err != nil {
				return d, fmt.Errorf("listen on %s:%d for node %s: %w", ip, port, node, err)
			}
			ls = append(ls, l)
		}
		d.servers = append(d.servers, d.Stands[node].Serve(ls...))
		if d.Stands[node].Scenario == Restarting {
			if err := MarkRestarted(ctx, c, ns, name, 3, "Error", 2*time.Minute); err != nil {
				return d, err
			}
		}
	}
	return d, nil
}

// MarkRestarted writes container statuses that say the ztunnel container
// restarted n times, the last time ago, for reason (what kubelet would write).
func MarkRestarted(ctx context.Context, c kubernetes.Interface, ns, name string, n int32, reason string, ago time.Duration) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		if len(p.Status.ContainerStatuses) == 0 {
			return false, nil
		}
		now := time.Now()
		for i := range p.Status.ContainerStatuses {
			cs := &p.Status.ContainerStatuses[i]
			cs.RestartCount = n
			cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 1, Reason: reason,
				StartedAt:  metav1.NewTime(now.Add(-ago - time.Minute)),
				FinishedAt: metav1.NewTime(now.Add(-ago)),
			}}
		}
		_, err = c.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return false, nil
		}
		return err == nil, err
	})
}

// AppPods creates count application pods on node in namespace ns, with the
// redirection annotation istio-cni would write (redirection "" leaves it off).
func AppPods(ctx context.Context, c kubernetes.Interface, ns, node string, count int, redirection string, sidecar bool) error {
	for i := 0; i < count; i++ {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%s-%s-%d", node, redirection, i), Namespace: ns, Annotations: map[string]string{}},
			Spec: corev1.PodSpec{NodeName: node, Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
				Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
		}
		if redirection != "" {
			p.Annotations[ambient.AnnotationRedirection] = redirection
		}
		if sidecar {
			p.Name = fmt.Sprintf("app-%s-sidecar-%d", node, i)
			p.Annotations[ambient.AnnotationSidecarStatus] = `{"containers":["istio-proxy"]}`
		}
		if _, err := c.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create app pod %s/%s: %w", ns, p.Name, err)
		}
	}
	return nil
}
