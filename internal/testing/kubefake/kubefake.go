// Package kubefake is a kube.Factory for command tests that need no server:
// a fake typed clientset (fake.NewClientset) and a fake dynamic client,
// seeded with the objects a test passes. It is modelled on kubectl's
// pkg/cmd/testing fake factory: the command under test runs its whole
// Complete/Validate/Run path against it.
package kubefake

import (
	authv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// Host is the server address the fake's REST configuration names.
const Host = "https://fake.invalid:6443"

// Factory is a kube.Factory backed by fake clients.
type Factory struct {
	// Kube is the typed fake; tests add reactors or objects to it.
	Kube *fake.Clientset
	// Dynamic is the dynamic fake; it knows the list kinds given to New.
	Dynamic *dynamicfake.FakeDynamicClient
	// NS is the namespace Namespace returns; Explicit says whether -n set it.
	NS       string
	Explicit bool
	// Context is what ContextName returns.
	Context string
	// Err, when set, is returned by RESTConfig and Clients (no cluster).
	Err error
	// Getter is returned by RESTClientGetter (nil unless a test sets it).
	Getter genericclioptions.RESTClientGetter
}

// New returns a fake factory whose typed client holds objs. Unstructured
// objects in dynObjs seed the dynamic client; listKinds maps each resource
// the dynamic client may list to its list kind (e.g. gateways -> GatewayList).
func New(objs []runtime.Object, listKinds map[schema.GroupVersionResource]string, dynObjs ...runtime.Object) *Factory {
	return &Factory{
		Kube:    fake.NewClientset(objs...),
		Dynamic: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, dynObjs...),
		NS:      "default",
		Context: "fake",
	}
}

// AllowAll answers every SelfSubjectAccessReview with allowed (the fake
// clientset stores the review and answers "not allowed" otherwise).
func (f *Factory) AllowAll() *Factory {
	f.Kube.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authv1.SelfSubjectAccessReview).DeepCopy()
		r.Status.Allowed = true
		return true, r, nil
	})
	return f
}

// RESTConfig returns a configuration naming Host; nothing dials it.
func (f *Factory) RESTConfig() (*rest.Config, error) {
	if f.Err != nil {
		return nil, f.Err
	}
	return &rest.Config{Host: Host}, nil
}

// Clients returns the fake clients.
func (f *Factory) Clients() (*kube.Clients, error) {
	cfg, err := f.RESTConfig()
	if err != nil {
		return nil, err
	}
	return &kube.Clients{Config: cfg, Kube: f.Kube, Dynamic: f.Dynamic, Discovery: f.Kube.Discovery()}, nil
}

// Namespace returns NS and Explicit.
func (f *Factory) Namespace() (string, bool, error) { return f.NS, f.Explicit, nil }

// RESTClientGetter returns Getter.
func (f *Factory) RESTClientGetter() genericclioptions.RESTClientGetter { return f.Getter }

// ContextName returns Context.
func (f *Factory) ContextName() string { return f.Context }

var (
	_ kube.Factory = (*Factory)(nil)
)
