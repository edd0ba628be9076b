// Package platform recognises the Kubernetes distribution a cluster runs on
// from its nodes. It is a leaf package (no Helm, no clients) so install and
// precheck can share it.
package platform

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Platform names, as Istio's global.platform value spells them. Generic is a
// cluster with no special needs (kind and plain kubeadm clusters included).
const (
	Generic   = "generic"
	GKE       = "gke"
	EKS       = "eks"
	K3s       = "k3s"
	K3d       = "k3d"
	MicroK8s  = "microk8s"
	Minikube  = "minikube"
	OpenShift = "openshift"
	Kind      = "kind"
)

// Known lists every platform name --platform accepts, besides "auto".
var Known = []string{GKE, EKS, K3s, K3d, MicroK8s, Minikube, OpenShift, Kind, Generic}

// IsKnown reports whether name is one of Known.
func IsKnown(name string) bool { return slices.Contains(Known, name) }

// Result is the detected platform and the evidence that decided it.
type Result struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// rule recognises one platform from one node; it returns the evidence or "".
type rule struct {
	name  string
	match func(n *corev1.Node) string
}

// rules are ordered from most to least specific: k3d runs k3s, so it is
// checked before k3s; OpenShift nodes may also carry cloud provider IDs.
var rules = []rule{
	{OpenShift, func(n *corev1.Node) string {
		if _, ok := n.Labels["node.openshift.io/os_id"]; ok {
			return "label node.openshift.io/os_id"
		}
		if strings.Contains(n.Status.NodeInfo.OSImage, "Red Hat Enterprise Linux CoreOS") {
			return "os image " + n.Status.NodeInfo.OSImage
		}
		return ""
	}},
	{K3d, func(n *corev1.Node) string {
		if strings.HasPrefix(n.Spec.ProviderID, "k3s://k3d-") || (strings.HasPrefix(n.Name, "k3d-") && strings.Contains(n.Status.NodeInfo.KubeletVersion, "+k3s")) {
			return "k3s node named " + n.Name
		}
		return ""
	}},
	{K3s, func(n *corev1.Node) string {
		if strings.Contains(n.Status.NodeInfo.KubeletVersion, "+k3s") {
			return "kubelet version " + n.Status.NodeInfo.KubeletVersion
		}
		if strings.HasPrefix(n.Spec.ProviderID, "k3s://") {
			return "provider ID " + n.Spec.ProviderID
		}
		return ""
	}},
	{MicroK8s, func(n *corev1.Node) string {
		if _, ok := n.Labels["microk8s.io/cluster"]; ok {
			return "label microk8s.io/cluster"
		}
		return ""
	}},
	{Minikube, func(n *corev1.Node) string {
		if _, ok := n.Labels["minikube.k8s.io/name"]; ok {
			return "label minikube.k8s.io/name"
		}
		return ""
	}},
	{GKE, func(n *corev1.Node) string {
		if _, ok := n.Labels["cloud.google.com/gke-nodepool"]; ok {
			return "label cloud.google.com/gke-nodepool"
		}
		if strings.Contains(n.Status.NodeInfo.KubeletVersion, "-gke.") {
			return "kubelet version " + n.Status.NodeInfo.KubeletVersion
		}
		return ""
	}},
	{EKS, func(n *corev1.Node) string {
		if _, ok := n.Labels["eks.amazonaws.com/nodegroup"]; ok {
			return "label eks.amazonaws.com/nodegroup"
		}
		if strings.Contains(n.Status.NodeInfo.KubeletVersion, "-eks-") {
			return "kubelet version " + n.Status.NodeInfo.KubeletVersion
		}
		return ""
	}},
	{Kind, func(n *corev1.Node) string {
		if strings.HasPrefix(n.Spec.ProviderID, "kind://") {
			return "provider ID " + n.Spec.ProviderID
		}
		return ""
	}},
}

// Detect names the platform the nodes belong to. The first rule that matches
// any node wins; with no match the platform is Generic.
func Detect(nodes []corev1.Node) Result {
	if len(nodes) == 0 {
		return Result{Name: Generic, Reason: "no nodes to inspect"}
	}
	for _, r := range rules {
		for i := range nodes {
			if why := r.match(&nodes[i]); why != "" {
				return Result{Name: r.name, Reason: fmt.Sprintf("node %s: %s", nodes[i].Name, why)}
			}
		}
	}
	return Result{Name: Generic, Reason: fmt.Sprintf("no platform-specific labels, provider IDs or kubelet versions on %d node(s)", len(nodes))}
}
