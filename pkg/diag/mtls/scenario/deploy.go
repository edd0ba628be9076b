package scenario

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"

	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls/capture"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// checkAccess asks the API server (SelfSubjectAccessReview) for
// each permission the scenario needs; when the reviews themselves cannot be
// made, the run goes on and a refusal is explained where it happens.
func checkAccess(ctx context.Context, kc kubernetes.Interface, namespaces ...string) error {
	attrs := []authv1.ResourceAttributes{
		{Verb: "list", Resource: "nodes"},
		{Verb: "create", Resource: "namespaces"},
		{Verb: "delete", Resource: "namespaces"},
	}
	for _, ns := range namespaces {
		for _, verb := range []string{"create", "delete", "list", "watch"} {
			attrs = append(attrs, authv1.ResourceAttributes{Namespace: ns, Verb: verb, Resource: "pods"})
		}
		attrs = append(attrs, authv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "pods", Subresource: "exec"})
	}
	allowed, err := kube.Allowed(ctx, kc, attrs)
	if err != nil {
		// The review is advice: the writes explain a refusal themselves.
		return nil
	}
	var missing []string
	for i, a := range attrs {
		if allowed[i] {
			continue
		}
		what := "cannot " + a.Verb + " " + a.Resource
		if a.Subresource != "" {
			what += "/" + a.Subresource
		}
		if a.Namespace != "" {
			what += " in namespace " + a.Namespace
		}
		missing = append(missing, what)
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("verify-mtls scenario refused before changing anything: %s; grant the role in docs/rbac.md (verify-mtls scenario)", strings.Join(missing, ", "))
}

// schedulableNodes returns the Ready nodes that take ordinary pods, sorted.
func schedulableNodes(ctx context.Context, kc kubernetes.Interface) ([]string, error) {
	list, err := kc.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, explain("list nodes", err)
	}
	var out []string
	for _, n := range list.Items {
		if n.Spec.Unschedulable || !isReady(&n) || hasBlockingTaint(&n) {
			continue
		}
		out = append(out, n.Name)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, errors.New("no ready, schedulable node without NoSchedule taints to run the scenario on; check kubectl get nodes")
	}
	return out, nil
}

func isReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func hasBlockingTaint(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return true
		}
	}
	return false
}

// scenarioPlan places one server per namespace on the first node, a client
// per namespace beside it and, with a second node, one there.
func scenarioPlan(mesh, plain string, nodes []string) []scenarioPod {
	var plan []scenarioPod
	for _, ns := range []string{mesh, plain} {
		enrolled := ns == mesh
		plan = append(plan,
			scenarioPod{name: "server", ns: ns, node: nodes[0], role: "server", enrolled: enrolled},
			scenarioPod{name: "client-same-node", ns: ns, node: nodes[0], role: "client", enrolled: enrolled, placement: SameNode})
		if len(nodes) > 1 {
			plan = append(plan, scenarioPod{name: "client-cross-node", ns: ns, node: nodes[1], role: "client", enrolled: enrolled, placement: CrossNode})
		}
	}
	return plan
}

func createNamespace(ctx context.Context, kc kubernetes.Interface, name, suffix string, enrolled bool) error {
	labels := map[string]string{
		Label:                          suffix,
		"app.kubernetes.io/managed-by": "kubectl-ambient",
	}
	if enrolled {
		labels[ambient.LabelDataplaneMode] = ambient.DataplaneAmbient
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := kc.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return explain("create namespace "+name, err)
	}
	return nil
}

func (o *Options) pod(p scenarioPod) *corev1.Pod {
	zero := int64(0)
	no := false
	c := corev1.Container{Name: p.role, Image: o.ClientImage, Command: []string{"sleep", "86400"}}
	if p.role == "server" {
		port := strconv.Itoa(o.Port)
		c = corev1.Container{Name: "server", Image: o.ServerImage, Args: []string{"netexec", "--http-port=" + port, "--udp-port=-1"},
			Ports: []corev1.ContainerPort{{Name: "app", ContainerPort: int32(o.Port)}}} //nolint:gosec // G115: the port is validated to 1-65535
		if o.ServerCommand != "" {
			c.Args = nil
			c.Command = []string{"sh", "-c", o.ServerCommand}
		}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: p.name, Namespace: p.ns,
			Labels: map[string]string{Label: o.Suffix, "app": p.name, "app.kubernetes.io/managed-by": "kubectl-ambient"},
		},
		Spec: corev1.PodSpec{
			NodeName:                      p.node,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &zero,
			AutomountServiceAccountToken:  &no,
			Containers:                    []corev1.Container{c},
		},
	}
}

// waitPods waits until every planned pod runs with an IP and, in
// the enrolled namespace, carries istio-cni's redirection annotation.
func waitPods(ctx context.Context, kc kubernetes.Interface, o Options, plan []scenarioPod) (map[string]*corev1.Pod, error) {
	fmt.Fprintf(o.Progress, "waiting up to %s for %d pods to run (and be captured by istio-cni in the ambient namespace)\n", o.PodTimeout, len(plan))
	ctx, cancel := context.WithTimeout(ctx, o.PodTimeout)
	defer cancel()
	out := map[string]*corev1.Pod{}
	var missing string
	for _, ns := range []string{plan[0].ns, plan[len(plan)-1].ns} {
		var want []scenarioPod
		for _, p := range plan {
			if p.ns == ns {
				want = append(want, p)
			}
		}
		state, err := capture.WatchPods(ctx, kc, ns, Label+"="+o.Suffix, func(state map[string]*corev1.Pod) bool {
			missing = ""
			for _, p := range want {
				if why := podNotReady(state[p.name], p.enrolled); why != "" {
					missing = fmt.Sprintf("pod %s/%s %s", ns, p.name, why)
					return false
				}
			}
			return true
		})
		if err != nil {
			if ctx.Err() != nil && missing != "" {
				hint := "check kubectl describe pod -n " + ns + " (image pull or scheduling?)"
				if strings.Contains(missing, ambient.AnnotationRedirection) {
					hint = "is istio-cni running? check kubectl get pods -A -l k8s-app=istio-cni-node and that ztunnel runs on the node"
				}
				return nil, fmt.Errorf("scenario pods not ready after %s: %s; %s", o.PodTimeout, missing, hint)
			}
			return nil, explain("wait for the scenario pods", err)
		}
		for k, v := range state {
			out[ns+"/"+k] = v
		}
	}
	return out, nil
}

func podNotReady(p *corev1.Pod, enrolled bool) string {
	switch {
	case p == nil:
		return "does not exist"
	case p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded:
		return "ended (" + string(p.Status.Phase) + ")"
	case p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "":
		return "is not running with an ip (phase " + string(p.Status.Phase) + ")"
	case enrolled && p.Annotations[ambient.AnnotationRedirection] != ambient.RedirectionEnabled:
		got := p.Annotations[ambient.AnnotationRedirection]
		if got == "" {
			got = "unset"
		}
		return "has no " + ambient.AnnotationRedirection + "=enabled (" + got + ")"
	}
	return ""
}
