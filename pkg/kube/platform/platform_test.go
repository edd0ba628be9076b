package platform

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name, providerID, kubelet string, labels map[string]string) corev1.Node {
	return corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.NodeSpec{ProviderID: providerID},
		Status:     corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: kubelet}},
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name  string
		nodes []corev1.Node
		want  string
	}{
		{"no nodes", nil, Generic},
		{"kwok fake nodes", []corev1.Node{node("kwok-0", "kwok://kwok-0", "fake", map[string]string{"type": "kwok"})}, Generic},
		{"gke by label", []corev1.Node{node("gke-a", "gce://p/z/gke-a", "v1.33.1-gke.100", map[string]string{"cloud.google.com/gke-nodepool": "default"})}, GKE},
		{"eks by kubelet", []corev1.Node{node("ip-10-0-0-1", "aws:///us-east-1a/i-1", "v1.33.0-eks-4096722", nil)}, EKS},
		{"k3s", []corev1.Node{node("srv", "k3s://srv", "v1.33.1+k3s1", nil)}, K3s},
		{"k3d before k3s", []corev1.Node{node("k3d-dev-server-0", "k3s://k3d-dev-server-0", "v1.33.1+k3s1", nil)}, K3d},
		{"microk8s", []corev1.Node{node("mk", "", "v1.33.0", map[string]string{"microk8s.io/cluster": "true"})}, MicroK8s},
		{"minikube", []corev1.Node{node("minikube", "", "v1.33.0", map[string]string{"minikube.k8s.io/name": "minikube"})}, Minikube},
		{"openshift wins over cloud", []corev1.Node{node("m0", "aws:///x", "v1.33.0", map[string]string{"node.openshift.io/os_id": "rhcos", "eks.amazonaws.com/nodegroup": "x"})}, OpenShift},
		{"kind", []corev1.Node{node("dev-control-plane", "kind://docker/dev/dev-control-plane", "v1.33.1", nil)}, Kind},
		{"second node decides", []corev1.Node{node("a", "", "v1.33.0", nil), node("b", "", "v1.33.0", map[string]string{"minikube.k8s.io/name": "x"})}, Minikube},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Detect(tt.nodes)
			if got.Name != tt.want {
				t.Fatalf("Detect = %q (%s), want %q", got.Name, got.Reason, tt.want)
			}
			if got.Reason == "" {
				t.Fatal("Detect gave no reason")
			}
			if !IsKnown(got.Name) {
				t.Fatalf("%q is not in Known", got.Name)
			}
		})
	}
}
