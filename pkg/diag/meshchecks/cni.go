package meshchecks

import (
	"context"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// CNI names precheck recognises.
const (
	CNICilium  = "Cilium"
	CNICalico  = "Calico"
	CNIFlannel = "Flannel"
	CNIAWS     = "AWS VPC CNI"
	CNIKindnet = "kindnet"
	CNIWeave   = "Weave Net"
	CNIAntrea  = "Antrea"
	CNIOVN     = "OVN-Kubernetes"
	CNIAzure   = "Azure CNI"
)

// cniDaemonSets maps a DaemonSet name to the CNI it belongs to.
var cniDaemonSets = map[string]string{
	"cilium":          CNICilium,
	"calico-node":     CNICalico,
	"kube-flannel-ds": CNIFlannel,
	"kube-flannel":    CNIFlannel,
	"aws-node":        CNIAWS,
	"kindnet":         CNIKindnet,
	"weave-net":       CNIWeave,
	"antrea-agent":    CNIAntrea,
	"ovnkube-node":    CNIOVN,
	"azure-cns":       CNIAzure,
}

// cniNodeAnnotations maps a node annotation to the CNI that writes it; k3s's
// embedded Flannel has no DaemonSet, only these.
var cniNodeAnnotations = map[string]string{
	"flannel.alpha.coreos.com/backend-type": CNIFlannel,
	"projectcalico.org/IPv4Address":         CNICalico,
	"io.cilium.network.ipv4-cilium-host":    CNICilium,
}

// CNIFound is one CNI found in the cluster and where.
type CNIFound struct {
	Name string
	// DaemonSet is the agent DaemonSet, nil when found from node annotations.
	DaemonSet *appsv1.DaemonSet
	Evidence  string
}

// DetectCNI finds CNIs from DaemonSets and node annotations. Several may be
// chained (AWS VPC CNI with Cilium), so all are returned, sorted by name.
func DetectCNI(dss []appsv1.DaemonSet, nodes []corev1.Node) []CNIFound {
	found := map[string]*CNIFound{}
	for i := range dss {
		ds := &dss[i]
		if name, ok := cniDaemonSets[ds.Name]; ok {
			if _, dup := found[name]; !dup {
				found[name] = &CNIFound{Name: name, DaemonSet: ds, Evidence: "daemonset " + ds.Namespace + "/" + ds.Name}
			}
		}
	}
	for i := range nodes {
		node := &nodes[i]
		for ann, name := range cniNodeAnnotations {
			if _, ok := node.Annotations[ann]; ok {
				if _, dup := found[name]; !dup {
					found[name] = &CNIFound{Name: name, Evidence: "node " + node.Name + " annotation " + ann}
				}
			}
		}
	}
	out := make([]CNIFound, 0, len(found))
	for _, f := range found {
		out = append(out, *f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (p *prechecker) cnis(ctx context.Context) ([]CNIFound, error) {
	return once(p.c, "cnis", func() ([]CNIFound, error) {
		dss, err := p.c.AllDaemonSets(ctx)
		if err != nil {
			return nil, err
		}
		nodes, err := p.c.Nodes(ctx)
		if err != nil {
			return nil, err
		}
		return DetectCNI(dss, nodes), nil
	})
}

func (p *prechecker) cni(ctx context.Context, name string) (*CNIFound, error) {
	all, err := p.cnis(ctx)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].Name == name {
			return &all[i], nil
		}
	}
	return nil, nil
}

func (p *prechecker) cniDetected(ctx context.Context) error {
	all, err := p.cnis(ctx)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		return fmt.Errorf("no known CNI found (looked for %s)", knownCNIs())
	}
	var parts []string
	for _, f := range all {
		parts = append(parts, fmt.Sprintf("%s (%s)", f.Name, f.Evidence))
	}
	return infof("%s", strings.Join(parts, "\n"))
}

func knownCNIs() string {
	seen := map[string]bool{}
	var out []string
	for _, n := range cniDaemonSets {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// ciliumConfig reads the cilium-config ConfigMap next to the Cilium agent.
func (p *prechecker) ciliumConfig(ctx context.Context) (map[string]string, error) {
	f, err := p.cni(ctx, CNICilium)
	if err != nil {
		return nil, err
	}
	if f == nil {
		return nil, skipf("Cilium not detected")
	}
	ns := "kube-system"
	if f.DaemonSet != nil {
		ns = f.DaemonSet.Namespace
	}
	return once(p.c, "cilium-config", func() (map[string]string, error) {
		cm, err := p.c.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "cilium-config", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("configmap %s/cilium-config not found, so Cilium's settings cannot be read", ns)
		}
		if err != nil {
			return nil, fmt.Errorf("get configmap %s/cilium-config: %w", ns, err)
		}
		return cm.Data, nil
	})
}

func (p *prechecker) ciliumExclusive(ctx context.Context) error {
	cfg, err := p.ciliumConfig(ctx)
	if err != nil {
		return err
	}
	// Cilium treats a missing key as exclusive (its default since 1.14).
	if v, ok := cfg["cni-exclusive"]; !ok || v != "false" {
		if !ok {
			v = "unset (default true)"
		}
		return fmt.Errorf("cilium-config cni-exclusive is %s: Cilium removes istio-cni's CNI configuration", v)
	}
	return nil
}

func (p *prechecker) ciliumMasquerade(ctx context.Context) error {
	cfg, err := p.ciliumConfig(ctx)
	if err != nil {
		return err
	}
	if cfg["enable-bpf-masquerade"] == "true" {
		return fmt.Errorf("cilium-config enable-bpf-masquerade is true: kubelet health probes of ambient pods will fail")
	}
	return nil
}

func (p *prechecker) ciliumSocketLB(ctx context.Context) error {
	cfg, err := p.ciliumConfig(ctx)
	if err != nil {
		return err
	}
	kpr := cfg["kube-proxy-replacement"]
	if kpr != "true" && kpr != "strict" {
		return skipf("kube-proxy replacement is off")
	}
	if cfg["bpf-lb-sock-hostns-only"] != "true" {
		return fmt.Errorf("cilium-config has kube-proxy-replacement=%s without bpf-lb-sock-hostns-only=true: pod traffic to services bypasses ztunnel's service handling", kpr)
	}
	return nil
}

// calicoEBPF reads Calico's eBPF settings from FelixConfiguration "default"
// and, for manifest installs, from the calico-node environment.
func (p *prechecker) calicoEBPF(ctx context.Context) error {
	f, err := p.cni(ctx, CNICalico)
	if err != nil {
		return err
	}
	if f == nil {
		return skipf("Calico not detected")
	}
	bpf, ctlb := false, ""
	if f.DaemonSet != nil {
		env := containerEnv(f.DaemonSet, "calico-node")
		bpf = strings.EqualFold(env["FELIX_BPFENABLED"], "true")
		ctlb = env["FELIX_BPFCONNECTTIMELOADBALANCING"]
	}
	if p.c.Dynamic != nil {
		fc, err := p.c.Dynamic.Resource(GVRFelixConfiguration).Get(ctx, "default", metav1.GetOptions{})
		switch {
		case err == nil:
			if v, ok, _ := unstructured.NestedBool(fc.Object, "spec", "bpfEnabled"); ok {
				bpf = v
			}
			if v, ok, _ := unstructured.NestedString(fc.Object, "spec", "bpfConnectTimeLoadBalancing"); ok {
				ctlb = v
			}
		case apierrors.IsNotFound(err) || isNoMatch(err):
		default:
			return fmt.Errorf("get felixconfiguration default: %w", err)
		}
	}
	if !bpf {
		return infof("Calico runs the iptables data plane")
	}
	if ctlb == "" {
		ctlb = "TCP (default)"
	}
	if ctlb != "Disabled" {
		return fmt.Errorf("calico runs in eBPF mode with bpfConnectTimeLoadBalancing=%s: connect-time load balancing rewrites service addresses before ztunnel sees them", ctlb)
	}
	return infof("Calico eBPF mode with connect-time load balancing disabled")
}

func (p *prechecker) awsPodENI(ctx context.Context) error {
	f, err := p.cni(ctx, CNIAWS)
	if err != nil {
		return err
	}
	if f == nil || f.DaemonSet == nil {
		return skipf("AWS VPC CNI not detected")
	}
	env := containerEnv(f.DaemonSet, "aws-node")
	if env["ENABLE_POD_ENI"] != "true" {
		return infof("security groups for pods are off (ENABLE_POD_ENI is not true)")
	}
	mode := env["POD_SECURITY_GROUP_ENFORCING_MODE"]
	if mode == "" {
		mode = "strict (default)"
	}
	if mode != "standard" {
		return fmt.Errorf("aws-node has ENABLE_POD_ENI=true with POD_SECURITY_GROUP_ENFORCING_MODE=%s: pods with security groups fail their health probes under ambient", mode)
	}
	return nil
}

// containerEnv returns the literal env values of one container of a DaemonSet.
func containerEnv(ds *appsv1.DaemonSet, container string) map[string]string {
	out := map[string]string{}
	for _, c := range ds.Spec.Template.Spec.Containers {
		if c.Name != container {
			continue
		}
		for _, e := range c.Env {
			out[e.Name] = e.Value
		}
	}
	return out
}
