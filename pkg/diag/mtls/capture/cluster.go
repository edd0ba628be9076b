package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/mtls"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// Conditions a caller can test with errors.Is and answer with its own
// alternative (judging offline, another namespace, other pod selectors).
var (
	// ErrPodMap: the cluster's pods could not be listed to map addresses.
	ErrPodMap = errors.New("map capture addresses to pods")
	// ErrOwnNamespace: the run's own capture namespace could not be created
	// or refused the privileged capture pod.
	ErrOwnNamespace = errors.New("the run's own capture namespace cannot hold the capture pods")
	// ErrNamespaceRefused: the named capture namespace refused the
	// privileged capture pod.
	ErrNamespaceRefused = errors.New("the capture namespace does not admit privileged pods")
	// ErrNoPods: no running pod with an address matched the selectors.
	ErrNoPods = errors.New("no running pods with an ip match the selectors")
	// ErrWriteFile: the copy of the capture could not be written.
	ErrWriteFile = errors.New("write the capture to")
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
		return nil, fmt.Errorf("%w: %w", ErrPodMap, err)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = kube.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	list, err := clients.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, kube.Unreachable(clients.Config.Host, fmt.Errorf("%w: list pods: %w", ErrPodMap, err))
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
