package platform

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ErrDetect marks a failed platform detection (the nodes could not be read).
var ErrDetect = errors.New("detect the platform")

// NodeLister is the one call DetectCluster makes; client-go's
// CoreV1().Nodes() satisfies it, so this package needs no client.
type NodeLister interface {
	List(ctx context.Context, opts metav1.ListOptions) (*corev1.NodeList, error)
}

// DetectCluster lists the nodes and detects the platform from them. A list
// error comes back wrapping both ErrDetect and the API error.
func DetectCluster(ctx context.Context, nodes NodeLister) (Result, error) {
	list, err := nodes.List(ctx, metav1.ListOptions{})
	if err != nil {
		return Result{}, fmt.Errorf("%w: list nodes: %w", ErrDetect, err)
	}
	return Detect(list.Items), nil
}
