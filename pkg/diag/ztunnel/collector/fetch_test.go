package collector

import (
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestProxyErrorRecoversTheStatus: the lab's kube-apiserver answered a pod
// proxy request to a port nothing listens on with this protobuf Status
// (bytes as received); client-go turned it into a bare "unable to handle
// the request". The probe must see the dial error, and a ztunnel's own 503
// (a text body) must stay a 503.
func TestProxyErrorRecoversTheStatus(t *testing.T) {
	generic := apierrors.NewGenericServerResponse(503, "get", schema.GroupResource{Resource: "pods"}, "http:zt:15021", "unknown", 0, true)
	body := []byte("k8s\x00\n\f\n\x02v1\x12\x06Status\x12\x7f\n\x06\n\x00\x12\x00\x1a\x00\x12\aFailure\x1aUerror trying to reach service: dial tcp 10.196.0.1:15021: connect: connection refused\"\x12ServiceUnavailable0\xf7\x03\x1a\x00\"\x00")
	err := proxyError(generic, body)
	var st apierrors.APIStatus
	if !errors.As(err, &st) || st.Status().Code != 503 || !strings.Contains(st.Status().Message, "dial tcp 10.196.0.1:15021: connect: connection refused") {
		t.Fatalf("protobuf Status: got %v", err)
	}
	jsonBody := []byte(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"error trying to reach service: dial tcp 10.0.0.9:15020: i/o timeout","reason":"ServiceUnavailable","code":503}`)
	if err := proxyError(generic, jsonBody); !strings.Contains(err.Error(), "i/o timeout") {
		t.Fatalf("JSON Status: got %v", err)
	}
	notReady := apierrors.NewGenericServerResponse(503, "get", schema.GroupResource{Resource: "pods"}, "http:zt:15021", "not ready", 0, true)
	if err := proxyError(notReady, []byte("not ready")); !errors.Is(err, notReady) {
		t.Fatalf("ztunnel's own 503 changed: %v", err)
	}
	if err := proxyError(generic, nil); !errors.Is(err, generic) {
		t.Fatalf("no body: %v", err)
	}
}
