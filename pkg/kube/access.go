package kube

import (
	"context"
	"sync"

	authv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// maxAccessReviews bounds the SelfSubjectAccessReviews in flight.
const maxAccessReviews = 16

// Allowed asks the API server whether the current identity may do each of
// attrs (one SelfSubjectAccessReview each, in parallel) and returns the
// answers in the same order. It returns the first request error, with no
// answers, when any question could not be asked.
func Allowed(ctx context.Context, kc kubernetes.Interface, attrs []authv1.ResourceAttributes) ([]bool, error) {
	out := make([]bool, len(attrs))
	errs := make([]error, len(attrs))
	sem := make(chan struct{}, maxAccessReviews)
	var wg sync.WaitGroup
	for i := range attrs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			r, err := kc.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
				&authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs[i]}}, metav1.CreateOptions{})
			if err != nil {
				errs[i] = err
				return
			}
			out[i] = r.Status.Allowed
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
