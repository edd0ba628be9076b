package install

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// ComponentStatus is one row of `install status`.
type ComponentStatus struct {
	Component    string    `json:"component"`
	Release      string    `json:"release"`
	Namespace    string    `json:"namespace"`
	Installed    bool      `json:"installed"`
	ChartVersion string    `json:"chartVersion,omitempty"`
	AppVersion   string    `json:"appVersion,omitempty"`
	Revision     int       `json:"revision,omitempty"`
	Status       string    `json:"status"`
	Updated      time.Time `json:"updated,omitzero"`
	Ready        bool      `json:"ready"`
	// Readiness details each workload ("DaemonSet ztunnel: 3/3 nodes ready").
	Readiness []string `json:"readiness,omitempty"`
}

// candidateNamespaces are where a component's release may live: its
// namespace on the given platform, then istio-system and kube-system (an
// install made for another platform).
func candidateNamespaces(c Component) []string {
	out := []string{c.Namespace}
	for _, ns := range []string{ambient.IstioNamespace, "kube-system"} {
		if ns != c.Namespace {
			out = append(out, ns)
		}
	}
	return out
}

// Status reports every component's release and whether its workloads are
// ready, with one GET per workload (no waiting).
func (in *Installer) Status(ctx context.Context, p *Profile, platformName string) ([]ComponentStatus, error) {
	comps, err := p.ForPlatform(platformName)
	if err != nil {
		return nil, err
	}
	if err := in.reachable(ctx); err != nil {
		return nil, err
	}
	var out []ComponentStatus
	for _, c := range comps {
		row := ComponentStatus{Component: c.Chart, Release: c.Release, Namespace: c.Namespace, Status: "not installed"}
		for _, ns := range candidateNamespaces(c) {
			c.Namespace = ns
			rel, err := in.lastRelease(c)
			if err != nil {
				return nil, err
			}
			if rel == nil || rel.Info.Status == "uninstalled" {
				continue
			}
			row.Namespace = ns
			row.Installed = true
			row.ChartVersion = rel.Chart.Metadata.Version
			row.AppVersion = rel.Chart.Metadata.AppVersion
			row.Revision = rel.Version
			row.Status = rel.Info.Status.String()
			row.Updated = rel.Info.LastDeployed
			row.Ready = true
			for _, w := range Workloads(rel.Manifest, ns) {
				r, err := in.readinessNow(ctx, w)
				if err != nil {
					return nil, err
				}
				row.Ready = row.Ready && r.Ready
				row.Readiness = append(row.Readiness, fmt.Sprintf("%s %s: %s", w.Kind, w.Name, r.Detail))
			}
			break
		}
		out = append(out, row)
	}
	return out, nil
}

const detailMissing = "missing (deleted outside Helm?)"

func (in *Installer) readinessNow(ctx context.Context, w Workload) (Readiness, error) {
	var r Readiness
	var err error
	switch w.Kind {
	case "Deployment":
		var d *appsv1.Deployment
		if d, err = in.Kube.AppsV1().Deployments(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{}); err == nil {
			r, _ = readinessOf(d)
		}
	case "DaemonSet":
		var ds *appsv1.DaemonSet
		if ds, err = in.Kube.AppsV1().DaemonSets(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{}); err == nil {
			r, _ = readinessOf(ds)
		}
	}
	if apierrors.IsNotFound(err) {
		return Readiness{Detail: detailMissing}, nil
	}
	if err != nil {
		return r, in.clusterErr(fmt.Errorf("get %s: %w", w, err))
	}
	return r, nil
}

// FormatReadiness joins a status row's readiness details.
func (s ComponentStatus) FormatReadiness() string {
	if !s.Installed {
		return "-"
	}
	if len(s.Readiness) == 0 {
		return "no workloads"
	}
	return strings.Join(s.Readiness, "; ")
}
