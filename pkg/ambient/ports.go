package ambient

// Ports of ztunnel and HBONE.
const (
	// PortHBONE is the HBONE (mTLS tunnel) port, inbound in the pod's netns.
	PortHBONE = 15008
	// PortOutboundCapture receives the pod's redirected outbound traffic.
	PortOutboundCapture = 15001
	// PortInboundCapture receives plaintext inbound traffic.
	PortInboundCapture = 15006
	// PortDNS is ztunnel's DNS proxy.
	PortDNS = 15053
	// PortMetrics serves ztunnel's /metrics.
	PortMetrics = 15020
	// PortReadiness serves ztunnel's /healthz/ready.
	PortReadiness = 15021
	// PortAdmin serves ztunnel's admin API (/config_dump); it listens on
	// localhost only, so it is reached by port-forward or exec.
	PortAdmin = 15000
)

// Source addresses istio-cni gives kubelet health probes (SNAT) so ztunnel
// lets them into a captured pod in plaintext (istio-cni's iptables rules).
const (
	KubeletProbeSourceIPv4 = "169.254.7.127"
	KubeletProbeSourceIPv6 = "fd16:9254:7127:1337:ffff:ffff:ffff:ffff"
)
