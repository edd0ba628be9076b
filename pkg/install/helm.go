package install

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	helmkube "helm.sh/helm/v4/pkg/kube"
	ri "helm.sh/helm/v4/pkg/release"
	release "helm.sh/helm/v4/pkg/release/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FieldManager is the server-side apply field manager kubectl-ambient writes
// every object with. A conflict names it, so `kubectl get -o yaml
// --show-managed-fields` tells the user which tool owns which field.
const FieldManager = "kubectl-ambient"

func init() {
	// Helm 4 keeps the field manager in a package variable; its default is
	// the process name, which would change with the binary's file name.
	helmkube.ManagedFieldsManager = FieldManager
}

// v1Release turns what Helm 4's storage and actions return (an interface
// that may one day hold other release schemas) into the v1 release Helm 3
// and Helm 4 both write.
func v1Release(r ri.Releaser) (*release.Release, error) {
	switch rel := r.(type) {
	case *release.Release:
		return rel, nil
	case release.Release:
		return &rel, nil
	case nil:
		return nil, nil
	default:
		return nil, fmt.Errorf("helm release of unsupported type %T; this kubectl-ambient reads release schema v1 only", r)
	}
}

// waitOurs is the wait strategy kubectl-ambient hands Helm: Helm 4 asks its
// kube client for a waiter by strategy name, and ours (helmClient below)
// answers this one with the watch-based Waiter of wait.go. Helm's own
// kstatus watcher ("watcher") waits correctly too, but ours reports each
// workload's progress and the pods' reasons when it gives up, and it sees
// readiness within the watch event's latency (measured in bench_test.go);
// plugging it into Helm keeps Helm in charge of what follows a failed wait
// (RollbackOnFailure) and of recording the revision.
const waitOurs helmkube.WaitStrategy = "kubectl-ambient-watch"

// helmClient is Helm's kube client with our waiter behind waitOurs.
type helmClient struct {
	*helmkube.Client
	in *Installer
}

var _ helmkube.InterfaceWaitOptions = (*helmClient)(nil)

// GetWaiter implements helmkube.Interface.
func (c *helmClient) GetWaiter(ws helmkube.WaitStrategy) (helmkube.Waiter, error) {
	return c.GetWaiterWithOptions(ws)
}

// GetWaiterWithOptions implements helmkube.InterfaceWaitOptions.
func (c *helmClient) GetWaiterWithOptions(ws helmkube.WaitStrategy, opts ...helmkube.WaitOption) (helmkube.Waiter, error) {
	if ws != waitOurs {
		return c.Client.GetWaiterWithOptions(ws, opts...)
	}
	// Hooks and deletions keep Helm's behaviour (our charts have no hooks).
	inner, err := c.Client.GetWaiterWithOptions(helmkube.HookOnlyStrategy, opts...)
	if err != nil {
		return nil, err
	}
	return &helmWaiter{Waiter: inner, in: c.in}, nil
}

// helmWaiter waits for a release's Deployments and DaemonSets with Waiter.
type helmWaiter struct {
	helmkube.Waiter
	in *Installer
}

// Wait implements helmkube.Waiter.
func (w *helmWaiter) Wait(resources helmkube.ResourceList, timeout time.Duration) error {
	var ws []Workload
	for _, r := range resources {
		if r.Mapping == nil || r.Mapping.GroupVersionKind.Group != "apps" {
			continue
		}
		if k := r.Mapping.GroupVersionKind.Kind; k == "Deployment" || k == "DaemonSet" {
			ws = append(ws, Workload{Kind: k, Namespace: r.Namespace, Name: r.Name})
		}
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].String() < ws[j].String() })
	return w.in.waitFor(ws, timeout)
}

// WaitWithJobs implements helmkube.Waiter (our charts have no Jobs).
func (w *helmWaiter) WaitWithJobs(resources helmkube.ResourceList, timeout time.Duration) error {
	return w.Wait(resources, timeout)
}

// current is the wait state of the component being applied: Helm calls the
// waiter without a context, so installOne leaves it here. Components are
// applied one at a time.
type current struct {
	ctx      context.Context
	onUpdate func(Workload, Readiness)
	onWait   func([]Workload)
	applied  time.Time // when Helm finished applying and started waiting
	ready    []WaitResult
	waited   bool
	// interrupted is set when ctx ended during the wait: the waiter then
	// returns success so Helm records the revision as deployed (it is
	// applied), and installOne reports the interruption; a re-run finds the
	// release unchanged and only waits again.
	interrupted error
}

func (in *Installer) waitFor(ws []Workload, timeout time.Duration) error {
	in.mu.Lock()
	cur := in.cur
	in.mu.Unlock()
	if cur == nil || cur.waited {
		// A wait outside installOne, or the second wait of one component
		// (Helm's rollback of a failed upgrade): the caller reports the
		// rollback and does not wait for it.
		return nil
	}
	cur.waited = true
	cur.applied = time.Now()
	if cur.onWait != nil {
		cur.onWait(ws)
	}
	ctx, cancel := context.WithTimeout(cur.ctx, timeout)
	defer cancel()
	wt := &Waiter{Kube: in.Kube, OnUpdate: cur.onUpdate}
	ready, err := wt.Wait(ctx, ws)
	cur.ready = ready
	if err != nil && cur.ctx.Err() != nil {
		cur.interrupted = err
		return nil
	}
	return err
}

// ErrConflict is returned (wrapped) when server-side apply refused a field
// another field manager owns; --force-conflicts takes it over.
var ErrConflict = errors.New("server-side apply conflict")

// ErrNotOurs is returned (wrapped) when an object the chart would create
// already exists and no release of ours owns it; --adopt takes it over.
var ErrNotOurs = errors.New("object not owned by this release")

var conflictObject = regexp.MustCompile(`conflict occurred while applying object (\S+) (\S+), Kind=(\w+)`)

// conflictOf describes a server-side apply conflict in err: the object, each
// field and the manager that owns it. "" when err is no conflict.
func conflictOf(err error) string {
	var st apierrors.APIStatus
	if !errors.As(err, &st) || st.Status().Reason != metav1.StatusReasonConflict {
		return ""
	}
	obj := "an object"
	if m := conflictObject.FindStringSubmatch(err.Error()); m != nil {
		obj = fmt.Sprintf("%s %s", m[3], strings.TrimPrefix(m[1], "/")) // "DaemonSet istio-system/ztunnel"
	}
	var fields []string
	if d := st.Status().Details; d != nil {
		for _, c := range d.Causes {
			// The API server's message is `conflict with "manager" using
			// apps/v1`, the field its path.
			fields = append(fields, fmt.Sprintf("%s (%s)", c.Field, c.Message))
		}
	}
	if len(fields) == 0 {
		return fmt.Sprintf("%s: %s", obj, st.Status().Message)
	}
	return fmt.Sprintf("%s: field manager %q cannot set %s", obj, FieldManager, strings.Join(fields, ", "))
}

// ownershipOf describes an existing object no release of ours owns, from
// Helm's ownership check. "" when err is something else.
func ownershipOf(err error) string {
	msg := err.Error()
	i := strings.Index(msg, " exists and cannot be imported into the current release")
	if i < 0 {
		return ""
	}
	return msg[:i] + " exists and is not part of this release"
}
