// Command meshclient is a TEST-ONLY stand-in for ztunnel's outbound path in
// the lab, where no real ztunnel runs. The verify-mtls scenario test passes
// it as --client-command; kwok's exec runs it on the lab host once per
// client -> server case. Like ztunnel, it looks up both ends in the cluster:
// when both pods carry ambient.istio.io/redirection=enabled it tunnels the
// request as HBONE (TLS 1.3 mTLS with SPIFFE certificates, ALPN h2, HTTP/2
// CONNECT to podIP:port on 15008), otherwise it sends it in plaintext to the
// app port; either way from the client pod's IP inside the lab's pod
// network namespace. --broken plays a dataplane that bypasses ztunnel
// (plaintext between enrolled pods); --classical offers only a classical
// key exchange (X25519) in the HBONE handshake. Never run it against a real cluster.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/cmd/internal/simcmd"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/hbonesim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

func main() {
	var o options
	flag.StringVar(&o.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the lab cluster")
	flag.StringVar(&o.netns, "netns", "", "the lab's pod network namespace")
	flag.StringVar(&o.caDir, "ca-dir", "", "directory with the test CA (hbone.CA.Save)")
	flag.StringVar(&o.namespace, "namespace", "", "client pod namespace")
	flag.StringVar(&o.pod, "pod", "", "client pod name")
	flag.StringVar(&o.target, "target", "", "server pod ip:port")
	flag.BoolVar(&o.broken, "broken", false, "bypass the mesh: plaintext even between enrolled pods")
	flag.BoolVar(&o.classical, "classical", false, "offer only the classical X25519 key exchange (no post-quantum hybrid) in the HBONE handshake")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mode, err := o.run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "meshclient: "+err.Error())
		os.Exit(1)
	}
	fmt.Println(mode)
}

type options struct {
	kubeconfig, netns, caDir, namespace, pod, target string
	broken, classical                                bool
}

func (o options) run(ctx context.Context) (string, error) {
	if o.netns == "" || o.namespace == "" || o.pod == "" || o.target == "" {
		return "", errors.New("--netns, --namespace, --pod and --target are required")
	}
	clients, err := simcmd.Connect(o.kubeconfig)
	if err != nil {
		return "", err
	}
	src, err := clients.Kube.CoreV1().Pods(o.namespace).Get(ctx, o.pod, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	host, _, err := net.SplitHostPort(o.target)
	if err != nil {
		return "", err
	}
	// ztunnel knows every workload; the stand-in asks the API server.
	all, err := clients.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	var dstNS, dstSA string
	dstEnrolled := false
	for _, p := range all.Items {
		if p.Status.PodIP == host && !p.Spec.HostNetwork {
			dstNS, dstSA = p.Namespace, p.Spec.ServiceAccountName
			dstEnrolled = p.Annotations[ambient.AnnotationRedirection] == "enabled"
		}
	}
	srcEnrolled := src.Annotations[ambient.AnnotationRedirection] == "enabled"
	dial := hbonesim.Netns{Name: o.netns}.Dialer(src.Status.PodIP)
	msg := []byte("GET / HTTP/1.1\r\nHost: " + o.target + "\r\nUser-Agent: meshclient\r\n\r\n")

	if !srcEnrolled || !dstEnrolled || o.broken {
		c, err := dial(ctx, o.target)
		if err != nil {
			return "", err
		}
		defer func() { _ = c.Close() }()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		return "plaintext", hbonesim.RoundTrip(c, msg)
	}
	ca, err := hbonesim.LoadCA(o.caDir)
	if err != nil {
		return "", fmt.Errorf("load ca from --ca-dir: %w", err)
	}
	cert, err := ca.Issue(src.Namespace, saName(src.Spec.ServiceAccountName))
	if err != nil {
		return "", err
	}
	tlsCfg := ca.ClientConfig(cert, ca.SPIFFEID(dstNS, saName(dstSA)))
	if o.classical {
		// A ztunnel built without post-quantum support: the server can only
		// pick a classical group.
		tlsCfg.CurvePreferences = []tls.CurveID{tls.X25519}
	}
	cl, err := hbonesim.DialClient(ctx, net.JoinHostPort(host, fmt.Sprint(hbonesim.Port)), tlsCfg, dial)
	if err != nil {
		return "", err
	}
	defer func() { _ = cl.Close() }()
	st, err := cl.Connect(ctx, o.target)
	if err != nil {
		return "", err
	}
	defer func() { _ = st.Close() }()
	return "hbone", hbonesim.RoundTrip(st, msg)
}

func saName(sa string) string {
	if sa == "" {
		return "default"
	}
	return sa
}
