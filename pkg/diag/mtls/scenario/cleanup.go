package scenario

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// deleteNamespaces deletes the pods (at once, they have no grace
// period) and then the namespaces.
func deleteNamespaces(ctx context.Context, kc kubernetes.Interface, names []string) error {
	zero := int64(0)
	var errs []error
	for _, ns := range names {
		list, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, p := range list.Items {
				if err := kc.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
					errs = append(errs, fmt.Errorf("delete pod %s/%s: %w", ns, p.Name, err))
				}
			}
		}
		if err := kc.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete namespace %s: %w", ns, err))
		}
	}
	return errors.Join(errs...)
}

// Cleanup deletes the namespaces (and their pods) of scenario runs
// left behind and returns their names.
func Cleanup(ctx context.Context, kc kubernetes.Interface) ([]string, error) {
	list, err := kc.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: Label})
	if err != nil {
		return nil, explain("list scenario namespaces", err)
	}
	var names []string
	for _, ns := range list.Items {
		names = append(names, ns.Name)
	}
	return names, deleteNamespaces(ctx, kc, names)
}
