package collector

import "context"

// RawConfigDump returns ztunnel's /config_dump unparsed, read through a
// port-forward: verify-mtls reads more of it (trust domains, workloadState)
// than the health view keeps. The caller bounds the time with ctx.
func (p PortForwardAdmin) RawConfigDump(ctx context.Context, ns, pod string) ([]byte, error) {
	return p.get(ctx, ns, pod, "/config_dump")
}
