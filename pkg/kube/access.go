package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
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

// ErrForbidden is the one error (wrapped) that says the current identity
// lacks a permission; every package checks for it with errors.Is.
var ErrForbidden = errors.New("permission denied")

// Permission is one thing the current identity must be allowed to do. An
// empty Namespace means cluster-wide.
type Permission struct {
	Verb, Group, Resource, Subresource, Namespace string
}

// String reads "create daemonsets.apps in namespace istio-system".
func (p Permission) String() string {
	r := p.Resource
	if p.Group != "" {
		r += "." + p.Group
	}
	if p.Subresource != "" {
		r += "/" + p.Subresource
	}
	where := "cluster-wide"
	if p.Namespace != "" {
		where = "in namespace " + p.Namespace
	}
	return fmt.Sprintf("%s %s %s", p.Verb, r, where)
}

// ForbiddenError lists every permission Require found missing, sorted. It
// matches ErrForbidden with errors.Is.
type ForbiddenError struct {
	Missing []Permission
}

func (e *ForbiddenError) Error() string {
	return fmt.Sprintf("%s: the current identity cannot %s", ErrForbidden, strings.Join(e.Strings(), ", cannot "))
}

// Is makes errors.Is(err, ErrForbidden) true.
func (e *ForbiddenError) Is(target error) bool { return target == ErrForbidden }

// Strings returns the missing permissions as sorted text.
func (e *ForbiddenError) Strings() []string {
	out := make([]string, len(e.Missing))
	for i, p := range e.Missing {
		out[i] = p.String()
	}
	sort.Strings(out)
	return out
}

// Require asks the API server (SelfSubjectAccessReview) whether the current
// identity holds every permission in perms, and returns a *ForbiddenError
// naming all that are missing, or the request error when a question could
// not be asked. Namespaced permissions are asked once cluster-wide first (one
// answer covers every namespace) and per namespace only when that is denied.
func Require(ctx context.Context, kc kubernetes.Interface, perms []Permission) error {
	type key struct{ Verb, Group, Resource, Subresource string }
	perNS := map[key][]string{}
	var order []key
	for _, p := range perms {
		k := key{p.Verb, p.Group, p.Resource, p.Subresource}
		if _, ok := perNS[k]; !ok {
			order = append(order, k)
		}
		if !slices.Contains(perNS[k], p.Namespace) {
			perNS[k] = append(perNS[k], p.Namespace)
		}
	}
	attr := func(p Permission) authv1.ResourceAttributes {
		return authv1.ResourceAttributes{Verb: p.Verb, Group: p.Group, Resource: p.Resource, Subresource: p.Subresource, Namespace: p.Namespace}
	}
	wide := make([]authv1.ResourceAttributes, len(order))
	for i, k := range order {
		wide[i] = attr(Permission{Verb: k.Verb, Group: k.Group, Resource: k.Resource, Subresource: k.Subresource})
	}
	allowed, err := Allowed(ctx, kc, wide)
	if err != nil {
		return fmt.Errorf("check permissions: %w", err)
	}
	var missing, narrow []Permission
	for i, k := range order {
		if allowed[i] {
			continue
		}
		for _, ns := range perNS[k] {
			p := Permission{Verb: k.Verb, Group: k.Group, Resource: k.Resource, Subresource: k.Subresource, Namespace: ns}
			if ns == "" {
				missing = append(missing, p)
			} else {
				narrow = append(narrow, p)
			}
		}
	}
	attrs := make([]authv1.ResourceAttributes, len(narrow))
	for i, p := range narrow {
		attrs[i] = attr(p)
	}
	if allowed, err = Allowed(ctx, kc, attrs); err != nil {
		return fmt.Errorf("check permissions: %w", err)
	}
	for i, ok := range allowed {
		if !ok {
			missing = append(missing, narrow[i])
		}
	}
	if len(missing) > 0 {
		return &ForbiddenError{Missing: missing}
	}
	return nil
}
