package kube

import (
	"context"
	"errors"
	"strings"
	"testing"

	authv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestRequireAsksWideThenNarrow checks the one permission check: a denied
// cluster-wide answer is asked again per namespace, and every missing
// permission is named in one ErrForbidden.
func TestRequireAsksWideThenNarrow(t *testing.T) {
	kc := fake.NewClientset()
	var asked []string
	kc.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authv1.SelfSubjectAccessReview)
		at := r.Spec.ResourceAttributes
		asked = append(asked, at.Verb+" "+at.Resource+" "+at.Namespace)
		// patch namespaces: allowed; pods: allowed only in "shop".
		r.Status.Allowed = at.Resource == "namespaces" || (at.Resource == "pods" && at.Namespace == "shop")
		return true, r, nil
	})
	err := Require(context.Background(), kc, []Permission{
		{Verb: "patch", Resource: "namespaces"},
		{Verb: "list", Resource: "pods", Namespace: "shop"},
		{Verb: "list", Resource: "pods", Namespace: "payments"},
		{Verb: "list", Resource: "pods", Namespace: "shop"},
	})
	if !errors.Is(err, ErrForbidden) {
		t.Fatalf("err = %v, want ErrForbidden", err)
	}
	var fe *ForbiddenError
	if !errors.As(err, &fe) || len(fe.Missing) != 1 || fe.Missing[0].Namespace != "payments" {
		t.Fatalf("missing = %+v, want list pods in payments only", fe)
	}
	if want := "cannot list pods in namespace payments"; !strings.Contains(err.Error(), want) {
		t.Errorf("err = %q, want %q", err, want)
	}
	if len(asked) != 4 { // two wide, two narrow (shop asked once)
		t.Errorf("asked %d questions %v, want 4", len(asked), asked)
	}
	if err := Require(context.Background(), kc, []Permission{{Verb: "get", Resource: "namespaces"}}); err != nil {
		t.Errorf("allowed: err = %v", err)
	}
}
