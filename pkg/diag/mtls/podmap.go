package mtls

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// Workload is what an address belongs to.
type Workload struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	// Enrolled means ztunnel captures the pod's traffic (ambient).
	Enrolled bool `json:"enrolled"`
	// Sidecar means the pod runs an Istio sidecar proxy.
	Sidecar bool `json:"sidecar"`
	// OptedOut means the pod carries istio.io/dataplane-mode=none: it is
	// outside the mesh whatever its namespace says.
	OptedOut bool `json:"optedOut,omitempty"`
	// HostNetwork means the address is a node's, used by host-network
	// pods: never in the mesh (istio-cni skips them).
	HostNetwork bool `json:"hostNetwork,omitempty"`
}

// Name is namespace/pod.
func (w Workload) Name() string {
	if w.Namespace == "" {
		return w.Pod
	}
	return w.Namespace + "/" + w.Pod
}

// Mesh reports whether the workload's traffic is meant to be mTLS.
func (w Workload) Mesh() bool { return (w.Enrolled || w.Sidecar) && !w.HostNetwork }

// Mode is "ambient", "sidecar", "host-network" or "none".
func (w Workload) Mode() string {
	switch {
	case w.HostNetwork:
		return "host-network"
	case w.Sidecar:
		return "sidecar"
	case w.Enrolled:
		return "ambient"
	}
	return "none"
}

// PodMap maps pod IPs to workloads.
type PodMap map[netip.Addr]Workload

// LoadPodMap reads a mapping file, YAML or JSON:
//
//	10.244.1.5: {namespace: shop, pod: cart-7d9f, enrolled: true, sidecar: false}
func LoadPodMap(r io.Reader) (PodMap, error) {
	b, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return nil, err
	}
	raw := map[string]Workload{}
	if len(bytes.TrimSpace(b)) > 0 {
		// YAML is a superset of JSON; strict so typos in keys are reported.
		j, err := yaml.YAMLToJSON(b)
		if err != nil {
			return nil, fmt.Errorf("parse pod mapping: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("parse pod mapping: %w; want {ip: {namespace, pod, enrolled, sidecar}}", err)
		}
	}
	m := make(PodMap, len(raw))
	for k, w := range raw {
		a, err := netip.ParseAddr(k)
		if err != nil {
			return nil, fmt.Errorf("parse pod mapping: key %q is not an IP address", k)
		}
		m[a.Unmap()] = w
	}
	return m, nil
}

// PodMapFromPods maps every pod IP to its workload. Host-network pods share
// the node's address: it maps to the node ("node/<name>"), outside the mesh,
// unless a pod has it. Pods labelled istio.io/dataplane-mode=none are
// outside the mesh too.
func PodMapFromPods(pods []corev1.Pod) PodMap {
	m := PodMap{}
	hosts := PodMap{}
	for i := range pods {
		p := &pods[i]
		if p.Spec.HostNetwork {
			for _, ip := range podIPs(p) {
				if a, err := netip.ParseAddr(ip); err == nil && p.Spec.NodeName != "" {
					hosts[a.Unmap()] = Workload{Namespace: "node", Pod: p.Spec.NodeName, HostNetwork: true}
				}
			}
			continue
		}
		optOut := p.Labels[ambient.LabelDataplaneMode] == ambient.DataplaneNone
		w := Workload{
			Namespace: p.Namespace,
			Pod:       p.Name,
			Enrolled:  p.Annotations[ambient.AnnotationRedirection] == ambient.RedirectionEnabled && !optOut,
			Sidecar:   p.Annotations[ambient.AnnotationSidecarStatus] != "",
			OptedOut:  optOut,
		}
		for _, ip := range podIPs(p) {
			if a, err := netip.ParseAddr(ip); err == nil {
				m[a.Unmap()] = w
			}
		}
	}
	for a, w := range hosts {
		if _, ok := m[a]; !ok {
			m[a] = w
		}
	}
	return m
}

func podIPs(p *corev1.Pod) []string {
	var out []string
	for _, ip := range p.Status.PodIPs {
		out = append(out, ip.IP)
	}
	if len(out) == 0 && p.Status.PodIP != "" {
		out = append(out, p.Status.PodIP)
	}
	return out
}
