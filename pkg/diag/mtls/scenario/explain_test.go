package scenario

import (
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// explain names the condition with a sentinel the command layer maps to
// its flags; the message itself names none.
func TestExplainConditions(t *testing.T) {
	pods := schema.GroupResource{Resource: "pods"}
	tests := []struct {
		name string
		err  error
		is   error
		want string
	}{
		{"admission refused", apierrors.NewForbidden(pods, "cap", errors.New(`violates PodSecurity "baseline:latest": privileged`)), ErrCaptureRefused, "only its capture pods do"},
		{"rbac", apierrors.NewForbidden(pods, "cap", errors.New("no rbac")), nil, "see docs/rbac.md"},
		{"run exists", apierrors.NewAlreadyExists(schema.GroupResource{Resource: "namespaces"}, "mtls-abc"), ErrRunExists, "a run with the same suffix exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := explain("create namespace mtls-abc", tt.err)
			msg := err.Error()
			if !errors.Is(err, tt.err) || !strings.HasPrefix(msg, "create namespace mtls-abc: ") || !strings.Contains(msg, tt.want) || strings.Contains(msg, "--") {
				t.Errorf("explain = %q, want it to wrap the API error and say %q, naming no flag", msg, tt.want)
			}
			for _, s := range []error{ErrCaptureRefused, ErrRunExists} {
				if got := errors.Is(err, s); got != errors.Is(tt.is, s) {
					t.Errorf("errors.Is(%q, %v) = %v", msg, s, got)
				}
			}
		})
	}
}
