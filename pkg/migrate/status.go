package migrate

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// NamespaceStatus compares a namespace's intent (labels) with what istio-cni
// actually did to its pods.
type NamespaceStatus struct {
	Namespace string `json:"namespace"`
	// Intent is ambient, sidecar or none, from the namespace labels.
	Intent      string `json:"intent"`
	Mode        Mode   `json:"mode"`
	Journal     bool   `json:"journal"`
	Pods        int    `json:"pods"`
	Captured    int    `json:"captured"`
	Pending     int    `json:"pending"`
	Missing     int    `json:"missing"`
	Sidecars    int    `json:"sidecars"`
	OptedOut    int    `json:"optedOut"`
	HostNetwork int    `json:"hostNetwork"`
	// Unexpected counts pods captured although the namespace is not enrolled
	// (pod-level enrollment or a stale annotation).
	Unexpected int `json:"unexpected"`
	// Converged is true when every pod matches the intent.
	Converged bool   `json:"converged"`
	Summary   string `json:"summary"`
}

// BuildStatus reports intent versus actual for the named namespaces, or,
// when names is empty, for every namespace that has an Istio label, a
// journal, sidecars or captured pods. Pure: it reads only the snapshot.
func BuildStatus(s *Snapshot, names []string) ([]NamespaceStatus, error) {
	byName := map[string]*corev1.Namespace{}
	for i := range s.Namespaces {
		byName[s.Namespaces[i].Name] = &s.Namespaces[i]
	}
	for _, n := range names {
		if _, ok := byName[n]; !ok {
			return nil, fmt.Errorf("enroll status %q: %w; list namespaces with kubectl get ns", n, ErrNotFound)
		}
	}
	podsByNS := map[string][]*corev1.Pod{}
	for i := range s.Pods {
		p := &s.Pods[i]
		podsByNS[p.Namespace] = append(podsByNS[p.Namespace], p)
	}
	selected := names
	if len(selected) == 0 {
		for _, ns := range s.Namespaces {
			selected = append(selected, ns.Name)
		}
	}
	sort.Strings(selected)
	var out []NamespaceStatus
	for _, name := range selected {
		ns := byName[name]
		st := namespaceStatus(ns, podsByNS[name])
		if len(names) == 0 && st.Intent == "none" && !st.Journal && st.Sidecars == 0 && st.Captured+st.Pending+st.Unexpected == 0 {
			continue
		}
		out = append(out, st)
	}
	return out, nil
}

func namespaceStatus(ns *corev1.Namespace, pods []*corev1.Pod) NamespaceStatus {
	st := NamespaceStatus{Namespace: ns.Name}
	_, st.Journal = ns.Annotations[AnnotationJournal]
	enrolled := ns.Labels[ambient.LabelDataplaneMode] == ambient.DataplaneAmbient
	switch {
	case enrolled:
		st.Intent = "ambient"
	case injectionOn(ns.Labels):
		st.Intent = "sidecar"
	default:
		st.Intent = "none"
	}
	np := planNamespace(ns, pods, nil, map[string]bool{KindAuthorizationPolicy: true}, PlanOptions{})
	st.Mode = np.Mode
	for _, p := range pods {
		c := classify(p)
		if c == classSkip {
			continue
		}
		st.Pods++
		red := p.Annotations[ambient.AnnotationRedirection]
		podAmbient := enrolled || p.Labels[ambient.LabelDataplaneMode] == ambient.DataplaneAmbient
		switch c {
		case classSidecar:
			st.Sidecars++
		case classOptedOut:
			st.OptedOut++
		case classHostNetwork:
			st.HostNetwork++
		case classCapture:
			switch {
			case !podAmbient && red != "":
				st.Unexpected++
			case !podAmbient:
			case red == ambient.RedirectionEnabled:
				st.Captured++
			case red == ambient.RedirectionPending:
				st.Pending++
			default:
				st.Missing++
			}
		}
	}
	st.Converged = st.Pending == 0 && st.Missing == 0 && st.Unexpected == 0 && (st.Intent != "ambient" || st.Sidecars == 0)
	switch {
	case st.Intent == "ambient" && st.Converged:
		st.Summary = "all pods captured"
	case st.Intent == "ambient" && st.Pending+st.Missing > 0:
		st.Summary = fmt.Sprintf("%d pod(s) not captured yet", st.Pending+st.Missing)
	case st.Intent == "ambient":
		st.Summary = fmt.Sprintf("%d sidecar pod(s) awaiting next rollout", st.Sidecars)
	case st.Unexpected > 0:
		st.Summary = fmt.Sprintf("%d pod(s) still carry a redirection annotation", st.Unexpected)
	case st.Captured+st.Pending+st.Missing > 0:
		st.Summary = "some pods enrolled individually"
	default:
		st.Summary = "not enrolled"
	}
	return st
}
