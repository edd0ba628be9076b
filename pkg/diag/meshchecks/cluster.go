// Package checks holds the check sets of `kubectl ambient precheck` (can
// this cluster run ambient?) and `kubectl ambient check` (is ambient
// healthy?), written against pkg/diag/checker. Checks take client interfaces
// and never build clients; every list is paged, and what several checks need
// (nodes, namespaces, pods of a DaemonSet) is listed once per run.
package meshchecks

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/checker"
)

// PageSize is the Limit of every list call; a 5,000-node cluster is listed in
// ten pages.
const PageSize = 500

const (
	ztunnelDaemonSet         = ambient.ZtunnelDaemonSet
	cniDaemonSet             = ambient.CNIDaemonSet
	waypointGatewayClassName = ambient.WaypointClass
)

// Resources read through the dynamic client; all are optional CRDs.
var (
	GVRCRD                   = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	GVRGateway               = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}
	GVRAuthorizationPolicy   = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "authorizationpolicies"}
	GVRFelixConfiguration    = schema.GroupVersionResource{Group: "crd.projectcalico.org", Version: "v1", Resource: "felixconfigurations"}
	gatewayAPIGatewaysCRD    = "gateways.gateway.networking.k8s.io"
	gatewayAPIBundleVersion  = "gateway.networking.k8s.io/bundle-version"
	gatewayAPIChannel        = "gateway.networking.k8s.io/channel"
	maxNamesInMessage        = 10
	perNamespacePodListLimit = 20
)

// Cluster is the read side every check uses: clients plus a per-run memo of
// the lists several checks share. It is safe for concurrent use.
type Cluster struct {
	Kube kubernetes.Interface
	// Dynamic reads CRD-backed objects (Gateway API, Istio, Calico); nil
	// skips the checks that need it.
	Dynamic dynamic.Interface
	// IstioNamespace is where istiod, istio-cni and ztunnel run.
	IstioNamespace string
	// Namespace narrows the enrollment checks of `check` to one namespace;
	// empty means every namespace.
	Namespace string

	mu            sync.Mutex
	memo          map[string]*memoEntry
	serverVersion string
	prefetched    bool
}

// ListConfig returns a copy of cfg for the clients checks read through:
// typed clients ask for protobuf, which the API server encodes and the client
// decodes several times faster than JSON on node and pod lists of thousands
// (the dynamic client still speaks JSON; it forces that itself).
func ListConfig(cfg *rest.Config) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.ContentType = runtime.ContentTypeProtobuf
	out.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	return out
}

// Prefetch starts, in the background, the lists most checks need (nodes,
// namespaces, the istio-cni and ztunnel DaemonSets and their pods, Helm
// releases, istiod), so their pages are fetched concurrently rather than
// one check after another. Checks then wait on the memoized results; errors
// surface in the checks that use them.
func (c *Cluster) Prefetch(ctx context.Context) {
	c.mu.Lock()
	started := c.prefetched
	c.prefetched = true
	c.mu.Unlock()
	if started {
		return
	}
	for _, name := range []string{cniDaemonSet, ztunnelDaemonSet} {
		go func() {
			if ds, err := c.DaemonSet(ctx, name); err == nil && ds != nil {
				_, _ = c.DaemonSetPods(ctx, ds)
			}
		}()
	}
	go func() { _, _ = c.Nodes(ctx) }()
	go func() { _, _ = c.AmbientPods(ctx) }()
	go func() { _, _ = c.Releases(ctx) }()
	go func() { _, _ = c.Istiods(ctx, c.IstioNamespace) }()
}

// NewCluster returns a Cluster for one run.
func NewCluster(kube kubernetes.Interface, dyn dynamic.Interface, istioNamespace, namespace string) *Cluster {
	if istioNamespace == "" {
		istioNamespace = ambient.IstioNamespace
	}
	return &Cluster{Kube: kube, Dynamic: dyn, IstioNamespace: istioNamespace, Namespace: namespace}
}

// once memoizes fn under key for the life of the Cluster. Each key has its
// own sync.Once, so a memoized list may build on another one.
func once[T any](c *Cluster, key string, fn func() (T, error)) (T, error) {
	c.mu.Lock()
	if c.memo == nil {
		c.memo = map[string]*memoEntry{}
	}
	e, ok := c.memo[key]
	if !ok {
		e = &memoEntry{}
		c.memo[key] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.v, e.err = fn() })
	v, _ := e.v.(T)
	return v, e.err
}

type memoEntry struct {
	once sync.Once
	v    any
	err  error
}

// pageAll pages through a list call with Limit and Continue. The first page
// asks for resourceVersion "0", as client-go's informers do for their initial
// list: the API server may then answer from its watch cache (no etcd read,
// possibly a moment stale) and, doing so, return everything in one page; if
// it pages anyway, the continue token is followed as usual.
func pageAll[T any](ctx context.Context, opts metav1.ListOptions, list func(metav1.ListOptions) ([]T, string, error)) ([]T, error) {
	opts.Limit = PageSize
	opts.ResourceVersion = "0"
	var out []T
	for {
		items, next, err := list(opts)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
		if next == "" {
			return out, nil
		}
		// A continue token carries its own resource version.
		opts.Continue, opts.ResourceVersion = next, ""
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// Nodes lists every node once per run.
func (c *Cluster) Nodes(ctx context.Context) ([]corev1.Node, error) {
	return once(c, "nodes", func() ([]corev1.Node, error) {
		items, err := pageAll(ctx, metav1.ListOptions{}, func(o metav1.ListOptions) ([]corev1.Node, string, error) {
			l, err := c.Kube.CoreV1().Nodes().List(ctx, o)
			if err != nil {
				return nil, "", err
			}
			return l.Items, l.Continue, nil
		})
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		return items, nil
	})
}

// Namespaces lists every namespace once per run.
func (c *Cluster) Namespaces(ctx context.Context) ([]corev1.Namespace, error) {
	return once(c, "namespaces", func() ([]corev1.Namespace, error) {
		items, err := pageAll(ctx, metav1.ListOptions{}, func(o metav1.ListOptions) ([]corev1.Namespace, string, error) {
			l, err := c.Kube.CoreV1().Namespaces().List(ctx, o)
			if err != nil {
				return nil, "", err
			}
			return l.Items, l.Continue, nil
		})
		if err != nil {
			return nil, fmt.Errorf("list namespaces: %w", err)
		}
		return items, nil
	})
}

// Namespace gets one namespace; nil with no error when it does not exist.
func (c *Cluster) namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	return once(c, "ns/"+name, func() (*corev1.Namespace, error) {
		ns, err := c.Kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("get namespace %s: %w", name, err)
		}
		return ns, nil
	})
}

// ErrNamespaceNotFound is returned (wrapped) when the namespace the checks
// are narrowed to does not exist.
var ErrNamespaceNotFound = errors.New("not found")

// scopedNamespaces returns the namespaces the enrollment checks look at:
// just c.Namespace when narrowed, else all.
func (c *Cluster) scopedNamespaces(ctx context.Context) ([]corev1.Namespace, error) {
	if c.Namespace == "" {
		return c.Namespaces(ctx)
	}
	ns, err := c.namespace(ctx, c.Namespace)
	if err != nil {
		return nil, err
	}
	if ns == nil {
		return nil, fmt.Errorf("namespace %q %w", c.Namespace, ErrNamespaceNotFound)
	}
	return []corev1.Namespace{*ns}, nil
}

// AmbientNamespaces returns the names of the (scoped) namespaces labelled
// istio.io/dataplane-mode=ambient, sorted.
func (c *Cluster) AmbientNamespaces(ctx context.Context) ([]string, error) {
	nss, err := c.scopedNamespaces(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ns := range nss {
		if ns.Labels[ambient.LabelDataplaneMode] == ambient.DataplaneAmbient {
			out = append(out, ns.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// listPods pages through pods in namespace ns ("" for all) with a selector.
func (c *Cluster) listPods(ctx context.Context, ns, selector string) ([]corev1.Pod, error) {
	items, err := pageAll(ctx, metav1.ListOptions{LabelSelector: selector}, func(o metav1.ListOptions) ([]corev1.Pod, string, error) {
		l, err := c.Kube.CoreV1().Pods(ns).List(ctx, o)
		if err != nil {
			return nil, "", err
		}
		return l.Items, l.Continue, nil
	})
	if err != nil {
		where := "all namespaces"
		if ns != "" {
			where = "namespace " + ns
		}
		return nil, fmt.Errorf("list pods in %s: %w", where, err)
	}
	return items, nil
}

// AmbientPods returns the pods of the ambient namespaces. With few ambient
// namespaces it lists each; with many, one paged cluster-wide list is
// cheaper than a request per namespace.
func (c *Cluster) AmbientPods(ctx context.Context) ([]corev1.Pod, error) {
	return once(c, "ambient-pods", func() ([]corev1.Pod, error) {
		nss, err := c.AmbientNamespaces(ctx)
		if err != nil {
			return nil, err
		}
		if len(nss) == 0 {
			return nil, nil
		}
		if len(nss) > perNamespacePodListLimit {
			all, err := c.listPods(ctx, "", "")
			if err != nil {
				return nil, err
			}
			in := map[string]bool{}
			for _, n := range nss {
				in[n] = true
			}
			var out []corev1.Pod
			for _, p := range all {
				if in[p.Namespace] {
					out = append(out, p)
				}
			}
			return out, nil
		}
		var out []corev1.Pod
		for _, ns := range nss {
			pods, err := c.listPods(ctx, ns, "")
			if err != nil {
				return nil, err
			}
			out = append(out, pods...)
		}
		return out, nil
	})
}

// DaemonSet gets a DaemonSet in the Istio namespace; nil when absent.
func (c *Cluster) DaemonSet(ctx context.Context, name string) (*appsv1.DaemonSet, error) {
	return once(c, "ds/"+name, func() (*appsv1.DaemonSet, error) {
		ds, err := c.Kube.AppsV1().DaemonSets(c.IstioNamespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("get daemonset %s/%s: %w", c.IstioNamespace, name, err)
		}
		return ds, nil
	})
}

// DaemonSetPods lists the pods a DaemonSet's selector matches in its namespace.
func (c *Cluster) DaemonSetPods(ctx context.Context, ds *appsv1.DaemonSet) ([]corev1.Pod, error) {
	return once(c, "ds-pods/"+ds.Name, func() ([]corev1.Pod, error) {
		sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
		if err != nil {
			return nil, fmt.Errorf("daemonset %s/%s has an invalid selector: %w", ds.Namespace, ds.Name, err)
		}
		return c.listPods(ctx, ds.Namespace, sel.String())
	})
}

// AllDaemonSets lists DaemonSets in every namespace (CNI detection).
func (c *Cluster) AllDaemonSets(ctx context.Context) ([]appsv1.DaemonSet, error) {
	return once(c, "all-ds", func() ([]appsv1.DaemonSet, error) {
		items, err := pageAll(ctx, metav1.ListOptions{}, func(o metav1.ListOptions) ([]appsv1.DaemonSet, string, error) {
			l, err := c.Kube.AppsV1().DaemonSets("").List(ctx, o)
			if err != nil {
				return nil, "", err
			}
			return l.Items, l.Continue, nil
		})
		if err != nil {
			return nil, fmt.Errorf("list daemonsets: %w", err)
		}
		return items, nil
	})
}

// Istiods lists istiod Deployments (label app=istiod) in ns ("" for all).
func (c *Cluster) Istiods(ctx context.Context, ns string) ([]appsv1.Deployment, error) {
	return once(c, "istiod/"+ns, func() ([]appsv1.Deployment, error) {
		items, err := pageAll(ctx, metav1.ListOptions{LabelSelector: ambient.IstiodSelector}, func(o metav1.ListOptions) ([]appsv1.Deployment, string, error) {
			l, err := c.Kube.AppsV1().Deployments(ns).List(ctx, o)
			if err != nil {
				return nil, "", err
			}
			return l.Items, l.Continue, nil
		})
		if err != nil {
			return nil, fmt.Errorf("list istiod deployments: %w", err)
		}
		sort.Slice(items, func(i, j int) bool {
			return items[i].Namespace+"/"+items[i].Name < items[j].Namespace+"/"+items[j].Name
		})
		return items, nil
	})
}

// listDynamic pages through a CRD-backed resource. found is false when the
// resource type is not served (the CRD is not installed).
func (c *Cluster) listDynamic(ctx context.Context, gvr schema.GroupVersionResource, ns string) (items []unstructured.Unstructured, found bool, err error) {
	if c.Dynamic == nil {
		return nil, false, nil
	}
	items, err = pageAll(ctx, metav1.ListOptions{}, func(o metav1.ListOptions) ([]unstructured.Unstructured, string, error) {
		l, err := c.Dynamic.Resource(gvr).Namespace(ns).List(ctx, o)
		if err != nil {
			return nil, "", err
		}
		return l.Items, l.GetContinue(), nil
	})
	if apierrors.IsNotFound(err) || isNoMatch(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("list %s: %w", gvr.GroupResource(), err)
	}
	return items, true, nil
}

func isNoMatch(err error) bool {
	return err != nil && strings.Contains(err.Error(), "the server could not find the requested resource")
}

// names joins up to maxNamesInMessage items and says how many more there are.
func names(items []string) string {
	if len(items) <= maxNamesInMessage {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:maxNamesInMessage], ", "), len(items)-maxNamesInMessage)
}

// podReady reports whether the pod's Ready condition is True.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// hasInjection reports whether a namespace asks for sidecar injection.
func hasInjection(labels map[string]string) bool {
	return labels[ambient.LabelInjection] == "enabled" || labels[ambient.LabelRev] != ""
}

// infof and skipf are short names for the check outcomes used throughout.
var (
	infof = checker.Info
	skipf = checker.Skip
	warnf = checker.Warn
)
