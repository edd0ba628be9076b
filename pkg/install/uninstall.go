package install

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"helm.sh/helm/v4/pkg/action"
	helmkube "helm.sh/helm/v4/pkg/kube"
	rcommon "helm.sh/helm/v4/pkg/release/common"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
)

// ErrNotReady is returned (wrapped) when a component did not become ready
// within Options.Timeout.
var ErrNotReady = errors.New("did not become ready")

// ErrBadSet is returned (wrapped) for a Values.Set or Values.SetString
// expression that does not parse or whose key names no component.
var ErrBadSet = errors.New("bad value expression")

// ErrAmbientInUse is returned (wrapped) when namespaces are still enrolled.
var ErrAmbientInUse = errors.New("ambient mesh in use")

// ErrNotConfirmed is returned when the user declines the CRD purge.
var ErrNotConfirmed = errors.New("not confirmed")

// UninstallOptions describe an uninstall.
type UninstallOptions struct {
	Profile  *Profile
	Platform string
	// Force uninstalls even while namespaces are enrolled in ambient.
	Force bool
	// PurgeCRDs also deletes Istio's CRDs and so every Istio resource.
	PurgeCRDs bool
	// Confirm is asked before purging CRDs (nil = refuse); it gets the
	// question and returns the answer.
	Confirm func(question string) (bool, error)
}

// UninstallResult says what was removed.
type UninstallResult struct {
	Removed      []string `json:"removed"`
	NotInstalled []string `json:"notInstalled,omitempty"`
	// CRDs lists the CRDs deleted with --purge-crds; Kept the Istio CRDs left.
	CRDs      []string `json:"crdsDeleted,omitempty"`
	KeptCRDs  int      `json:"crdsKept"`
	Resources int      `json:"resourcesDeleted,omitempty"`
}

// IstioCRDs lists the CRDs of *.istio.io groups and how many resources each
// holds now.
func (in *Installer) IstioCRDs(ctx context.Context) (names []string, resources int, err error) {
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	list, err := in.Dynamic.Resource(crdGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, 0, in.clusterErr(fmt.Errorf("list CRDs: %w", err))
	}
	for _, crd := range list.Items {
		group, _, _ := unstructuredString(crd.Object, "spec", "group")
		if group != "istio.io" && !strings.HasSuffix(group, ".istio.io") {
			continue
		}
		names = append(names, crd.GetName())
		plural, _, _ := unstructuredString(crd.Object, "spec", "names", "plural")
		version := storageVersion(crd.Object)
		if plural == "" || version == "" {
			continue
		}
		items, err := in.Dynamic.Resource(schema.GroupVersionResource{Group: group, Version: version, Resource: plural}).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, 0, fmt.Errorf("count %s: %w", crd.GetName(), err)
		}
		resources += len(items.Items)
	}
	slices.Sort(names)
	return names, resources, nil
}

func unstructuredString(obj map[string]any, path ...string) (string, bool, error) {
	cur := any(obj)
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		cur = m[p]
	}
	s, ok := cur.(string)
	return s, ok, nil
}

func storageVersion(obj map[string]any) string {
	spec, _ := obj["spec"].(map[string]any)
	vs, _ := spec["versions"].([]any)
	for _, v := range vs {
		m, _ := v.(map[string]any)
		if st, _ := m["storage"].(bool); st {
			name, _ := m["name"].(string)
			return name
		}
	}
	return ""
}

// Uninstall removes the releases in reverse install order. Helm keeps CRDs
// (and Istio's base chart marks its CRDs keep); only PurgeCRDs deletes them.
func (in *Installer) Uninstall(ctx context.Context, o UninstallOptions) (*UninstallResult, error) {
	res := &UninstallResult{}
	if err := in.reachable(ctx); err != nil {
		return res, err
	}
	enrolled, err := ambientNamespaces(ctx, in.Kube)
	if err != nil {
		return res, in.clusterErr(fmt.Errorf("list namespaces enrolled in ambient: %w", err))
	}
	if len(enrolled) > 0 {
		if !o.Force {
			return res, fmt.Errorf("%w: namespaces enrolled in ambient: %s (label istio.io/dataplane-mode=ambient); their pods would lose mTLS; unenroll them first (kubectl ambient unenroll namespace %s)",
				ErrAmbientInUse, strings.Join(enrolled, ", "), strings.Join(enrolled, " "))
		}
		in.Progress.Note("warning: uninstalling while namespaces are enrolled in ambient: %s (--force)", strings.Join(enrolled, ", "))
	}
	var crds []string
	var count int
	if o.PurgeCRDs {
		crds, count, err = in.IstioCRDs(ctx)
		if err != nil {
			return res, err
		}
		q := fmt.Sprintf("--purge-crds deletes %d Istio CRDs and with them %d Istio resources (policies, routes) in all namespaces. Continue? [y/N] ", len(crds), count)
		ok := false
		if o.Confirm != nil {
			if ok, err = o.Confirm(q); err != nil {
				return res, err
			}
		}
		if !ok {
			return res, fmt.Errorf("%w: deleting the Istio CRDs was declined; nothing was uninstalled", ErrNotConfirmed)
		}
	}
	comps, err := o.Profile.ForPlatform(o.Platform)
	if err != nil {
		return res, err
	}
	slices.Reverse(comps)
	for _, c := range comps {
		in.Progress.Start(c.Chart, fmt.Sprintf("uninstalling release %s", c.Release))
		found := false
		for _, ns := range candidateNamespaces(c) {
			c.Namespace = ns
			rel, err := in.lastRelease(c)
			if err != nil {
				in.Progress.Done(false, "cannot read the release")
				return res, err
			}
			if rel == nil || rel.Info.Status == rcommon.StatusUninstalled {
				continue
			}
			found = true
			cfg, err := in.config(ns)
			if err != nil {
				return res, err
			}
			un := action.NewUninstall(cfg)
			un.IgnoreNotFound = true
			un.Description = "uninstalled by kubectl ambient"
			un.WaitStrategy = helmkube.HookOnlyStrategy // Helm 4 requires one; we do not wait for deletions
			if _, err := un.Run(c.Release); err != nil {
				in.Progress.Done(false, "failed")
				return res, in.clusterErr(fmt.Errorf("uninstall release %s in %s: %w; run the same command again to continue", c.Release, ns, err))
			}
			res.Removed = append(res.Removed, c.Release)
			in.Progress.Done(true, fmt.Sprintf("release %s removed from %s", c.Release, ns))
			break
		}
		if !found {
			res.NotInstalled = append(res.NotInstalled, c.Release)
			in.Progress.Done(true, fmt.Sprintf("release %s not installed", c.Release))
		}
	}
	if o.PurgeCRDs {
		crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
		for _, n := range crds {
			if err := in.Dynamic.Resource(crdGVR).Delete(ctx, n, metav1.DeleteOptions{}); err != nil {
				return res, in.clusterErr(fmt.Errorf("delete CRD %s: %w; run the same command again to finish", n, err))
			}
			res.CRDs = append(res.CRDs, n)
		}
		res.Resources = count
		in.Progress.Start("crds", fmt.Sprintf("waiting for %d Istio CRDs and their resources to be deleted", len(crds)))
		if err := in.waitCRDsGone(ctx, crds, 2*time.Minute); err != nil {
			in.Progress.Done(false, "not all deleted")
			return res, err
		}
		in.Progress.Done(true, fmt.Sprintf("%d CRDs deleted", len(crds)))
	} else {
		kept, _, err := in.IstioCRDs(ctx)
		if err == nil {
			res.KeptCRDs = len(kept)
		}
	}
	return res, nil
}

// waitCRDsGone watches CRDs until none of names exists: the API server
// deletes a CRD only after removing every resource of its kind.
func (in *Installer) waitCRDsGone(ctx context.Context, names []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	c := in.Dynamic.Resource(crdGVR)
	for {
		list, err := c.List(ctx, metav1.ListOptions{})
		if err != nil {
			return in.clusterErr(fmt.Errorf("list CRDs: %w", err))
		}
		left := map[string]bool{}
		for _, crd := range list.Items {
			if slices.Contains(names, crd.GetName()) {
				left[crd.GetName()] = true
			}
		}
		if len(left) == 0 {
			return nil
		}
		w, err := c.Watch(ctx, metav1.ListOptions{ResourceVersion: list.GetResourceVersion()})
		if err != nil {
			return in.clusterErr(fmt.Errorf("watch CRDs: %w", err))
		}
		done, err := func() (bool, error) {
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					var rest []string
					for n := range left {
						rest = append(rest, n)
					}
					slices.Sort(rest)
					return false, fmt.Errorf("CRDs still being deleted after %s: %s; their resources may have finalizers (kubectl get %s -A)", timeout, strings.Join(rest, ", "), rest[0])
				case ev, ok := <-w.ResultChan():
					if !ok || ev.Type == watch.Error {
						return false, nil // list again
					}
					if ev.Type != watch.Deleted {
						continue
					}
					if m, ok := ev.Object.(metav1.Object); ok {
						delete(left, m.GetName())
					}
					if len(left) == 0 {
						return true, nil
					}
				}
			}
		}()
		if done || err != nil {
			return err
		}
	}
}
