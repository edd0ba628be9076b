// Package kube is the one place where kubectl-ambient builds Kubernetes
// clients. Everything else takes kubernetes.Interface, dynamic.Interface or a
// narrow interface of its own.
package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ErrNoCluster is returned (wrapped) when no kubeconfig or cluster can be found.
var ErrNoCluster = errors.New("no cluster configured")

// ErrUnreachable is returned (wrapped) when the configured cluster does not answer.
var ErrUnreachable = errors.New("cluster unreachable")

// CLI client settings. A CLI makes bursts of requests (a LIST, a WATCH, a
// patch per namespace) and then exits, so client-side token-bucket throttling
// only adds waits: it is switched off (QPS < 0) and the API server's priority
// and fairness does the flow control, as it does for every other client.
const (
	DefaultQPS   float32 = -1
	DefaultBurst int     = 1000
	// DefaultTimeout bounds a single request that has no deadline of its own.
	DefaultTimeout time.Duration = 30 * time.Second
)

// Factory is what commands need from the cluster connection: the REST
// configuration, the client bundle, the namespace from -n or the kubeconfig,
// the getter Helm initialises from, and the kubeconfig context's name.
// ConfigFactory implements it from kubectl's flags; tests use the fake in
// internal/testing/kubefake.
type Factory interface {
	// RESTConfig returns the client configuration, or an ErrNoCluster error.
	RESTConfig() (*rest.Config, error)
	// Clients builds typed, dynamic and discovery clients.
	Clients() (*Clients, error)
	// Namespace returns the namespace from -n or the kubeconfig context, and
	// whether it was set explicitly.
	Namespace() (string, bool, error)
	// RESTClientGetter returns the getter Helm's action.Configuration.Init takes.
	RESTClientGetter() genericclioptions.RESTClientGetter
	// ContextName names the kubeconfig context in use (--context, else the
	// current context), or "" when there is none.
	ContextName() string
}

// ConfigFactory builds clients from kubectl's standard connection flags.
type ConfigFactory struct {
	flags *genericclioptions.ConfigFlags
}

// NewFactory wraps flags (normally bound to the root command's persistent
// flags) so every client it builds uses the CLI settings above.
func NewFactory(flags *genericclioptions.ConfigFlags) *ConfigFactory {
	prev := flags.WrapConfigFn
	flags.WrapConfigFn = func(c *rest.Config) *rest.Config {
		if prev != nil {
			c = prev(c)
		}
		c.QPS = DefaultQPS
		c.Burst = DefaultBurst
		if c.UserAgent == "" {
			c.UserAgent = "kubectl-ambient"
		}
		return c
	}
	return &ConfigFactory{flags: flags}
}

// Flags returns the connection flags, for callers (Helm) that need a
// genericclioptions.RESTClientGetter. ConfigFlags implements it.
func (f *ConfigFactory) Flags() *genericclioptions.ConfigFlags { return f.flags }

// RESTClientGetter returns the getter Helm's action.Configuration.Init takes.
func (f *ConfigFactory) RESTClientGetter() genericclioptions.RESTClientGetter { return f.flags }

// ContextName returns --context when given, else the kubeconfig's current context.
func (f *ConfigFactory) ContextName() string {
	if c := f.flags.Context; c != nil && *c != "" {
		return *c
	}
	if raw, err := f.flags.ToRawKubeConfigLoader().RawConfig(); err == nil {
		return raw.CurrentContext
	}
	return ""
}

var _ Factory = (*ConfigFactory)(nil)

// whyNoClusters says where the kubeconfig was looked for when none of the
// files read defines a cluster.
func (f *ConfigFactory) whyNoClusters() string {
	describe := func(path string) string {
		switch st, err := os.Stat(path); { //nolint:gosec // G703: the user named this file (flag or KUBECONFIG); only its existence is reported
		case err != nil:
			return path + " does not exist"
		case st.IsDir():
			return path + " is a directory"
		default:
			return path + " defines no cluster"
		}
	}
	if f.flags.KubeConfig != nil && *f.flags.KubeConfig != "" {
		return "kubeconfig " + describe(*f.flags.KubeConfig)
	}
	if env := os.Getenv("KUBECONFIG"); env != "" {
		var parts []string
		for _, p := range filepath.SplitList(env) {
			if p != "" {
				parts = append(parts, describe(p))
			}
		}
		return "KUBECONFIG: " + strings.Join(parts, ", ")
	}
	return "no kubeconfig found (KUBECONFIG is unset and " + describe(clientcmd.RecommendedHomeFile) + ")"
}

// RESTConfig returns the client configuration, or a clear error when there is
// no usable kubeconfig.
func (f *ConfigFactory) RESTConfig() (*rest.Config, error) {
	// With no kubeconfig at all client-go falls back to http://localhost:8080,
	// which then fails as "connection refused": say what is really missing.
	// (In a pod, client-go uses the in-cluster configuration instead.)
	if raw, err := f.flags.ToRawKubeConfigLoader().RawConfig(); err == nil && len(raw.Clusters) == 0 &&
		(f.flags.APIServer == nil || *f.flags.APIServer == "") && os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return nil, fmt.Errorf("%w: %s", ErrNoCluster, f.whyNoClusters())
	}
	cfg, err := f.flags.ToRESTConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, fmt.Errorf("%w: no kubeconfig found", ErrNoCluster)
		}
		return nil, fmt.Errorf("%w: %w", ErrNoCluster, err)
	}
	return cfg, nil
}

// Namespace returns the namespace from -n or the kubeconfig context, and
// whether it was set explicitly.
func (f *ConfigFactory) Namespace() (string, bool, error) {
	return f.flags.ToRawKubeConfigLoader().Namespace()
}

// Clients bundles the clients a command may need.
type Clients struct {
	Config    *rest.Config
	Kube      kubernetes.Interface
	Dynamic   dynamic.Interface
	Discovery discovery.DiscoveryInterface
}

// Clients builds typed, dynamic and discovery clients.
func (f *ConfigFactory) Clients() (*Clients, error) {
	cfg, err := f.RESTConfig()
	if err != nil {
		return nil, err
	}
	return NewClients(cfg)
}

// NewClients builds the client bundle from a rest.Config (tests use it with
// the lab's configuration).
func NewClients(cfg *rest.Config) (*Clients, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = DefaultQPS, DefaultBurst
	}
	// The typed client speaks protobuf: listing 10,000 pods decodes several
	// times faster than JSON. The dynamic client needs JSON (unstructured).
	pc := rest.CopyConfig(cfg)
	pc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	pc.ContentType = "application/vnd.kubernetes.protobuf"
	kc, err := kubernetes.NewForConfig(pc)
	if err != nil {
		return nil, fmt.Errorf("build kubernetes client for %s: %w", cfg.Host, err)
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build dynamic client for %s: %w", cfg.Host, err)
	}
	return &Clients{Config: cfg, Kube: kc, Dynamic: dc, Discovery: kc.Discovery()}, nil
}

// ServerVersion asks the cluster for its version and turns transport errors
// into one actionable line.
func ServerVersion(ctx context.Context, c *Clients) (*version.Info, error) {
	rc := c.Kube.Discovery().RESTClient()
	if rc == nil {
		// A discovery client without REST (the fake in command tests).
		info, err := c.Kube.Discovery().ServerVersion()
		return info, Unreachable(c.Config.Host, err)
	}
	body, err := rc.Get().AbsPath("/version").Timeout(10 * time.Second).Do(ctx).Raw()
	if err != nil {
		return nil, Unreachable(c.Config.Host, err)
	}
	var info version.Info
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, fmt.Errorf("read /version from %s: %w", c.Config.Host, err)
	}
	return &info, nil
}

// Unreachable wraps err as ErrUnreachable with the standard message when err
// is a transport failure; API errors (RBAC, not found) pass through.
func Unreachable(host string, err error) error {
	if err == nil {
		return nil
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Code != 0 {
		return err
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "connection refused") {
		return fmt.Errorf("%w: no cluster reachable at %s: %w", ErrUnreachable, host, rootCause(err))
	}
	return err
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}
