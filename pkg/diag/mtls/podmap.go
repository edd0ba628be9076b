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

// Pod annotations that say how a pod is meshed.
const ()

// Workload is what an address belongs to.
type Workload struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	// Enrolled means ztunnel captures the pod's traffic (ambient).
	Enrolled bool `json:"enrolled"`
	// Sidecar means the pod runs an Istio sidecar proxy.
	Sidecar bool `json:"sidecar"`
}

// Name is namespace/pod.
func (w Workload) Name() string {
	if w.Namespace == "" {
		return w.Pod
	}
	return w.Namespace + "/" + w.Pod
}

// Mesh reports whether the workload's traffic is meant to be mTLS.
func (w Workload) Mesh() bool { return w.Enrolled || w.Sidecar }

// Mode is "ambient", "sidecar" or "none".
func (w Workload) Mode() string {
	switch {
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
// the node's address and are left out: their traffic is not a pod's own.
func PodMapFromPods(pods []corev1.Pod) PodMap {
	m := PodMap{}
	for i := range pods {
		p := &pods[i]
		if p.Spec.HostNetwork {
			continue
		}
		w := Workload{
			Namespace: p.Namespace,
			Pod:       p.Name,
			Enrolled:  p.Annotations[ambient.AnnotationRedirection] == ambient.RedirectionEnabled,
			Sidecar:   p.Annotations[ambient.AnnotationSidecarStatus] != "",
		}
		ips := p.Status.PodIPs
		if len(ips) == 0 && p.Status.PodIP != "" {
			ips = []corev1.PodIP{{IP: p.Status.PodIP}}
		}
		for _, ip := range ips {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				m[a.Unmap()] = w
			}
		}
	}
	return m
}
