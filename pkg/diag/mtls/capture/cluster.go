package capture

import (
	"context"
	"fmt"
	"io"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// ClientsFunc returns the cluster's clients. It is called only when a
// client is needed: a capture judged offline needs no cluster at all.
type ClientsFunc func() (*kube.Clients, error)

// ClusterPods maps the pods of every namespace by address; it implements
// mtls.PodLister.
type ClusterPods struct {
	Clients ClientsFunc
	// Timeout bounds the list (default kube.DefaultTimeout).
	Timeout time.Duration
}

// PodMap lists the pods and maps their addresses.
func (c ClusterPods) PodMap(ctx context.Context) (mtls.PodMap, error) {
	clients, err := c.Clients()
	if err != nil {
		return nil, fmt.Errorf("map capture addresses to pods: %w; or pass --pods FILE to judge offline", err)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = kube.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	list, err := clients.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, kube.Unreachable(clients.Config.Host, fmt.Errorf("list pods to map capture addresses: %w; or pass --pods FILE", err))
	}
	return mtls.PodMapFromPods(list.Items), nil
}

// Capturer runs Live with the cluster's clients; it implements
// mtls.Capturer.
type Capturer struct {
	Clients ClientsFunc
}

// Capture runs one live capture; its capture pods are gone when it returns.
func (c Capturer) Capture(ctx context.Context, cfg mtls.LiveConfig, progress io.Writer) (*mtls.LiveResult, error) {
	clients, err := c.Clients()
	if err != nil {
		return nil, err
	}
	res, err := Live(ctx, clients.Config, clients.Kube, Options{LiveConfig: cfg, Progress: progress})
	if err != nil {
		return nil, kube.Unreachable(clients.Config.Host, err)
	}
	return res, nil
}
