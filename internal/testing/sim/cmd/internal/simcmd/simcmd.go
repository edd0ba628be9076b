// Package simcmd holds what the test-only stand-in commands share: reaching
// the lab cluster from a kubeconfig.
package simcmd

import (
	"fmt"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// Connect builds the clients of the lab cluster the kubeconfig names.
func Connect(kubeconfig string) (*kube.Clients, error) {
	if kubeconfig == "" {
		return nil, fmt.Errorf("no kubeconfig: pass --kubeconfig or set KUBECONFIG to the lab's kubeconfig")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	return kube.NewClients(cfg)
}
