// Command ztunnel-sim is a TEST-ONLY stand-in for ztunnel's HTTP endpoints,
// for the lab demo: for every ztunnel pod the installed DaemonSet runs on a
// kwok node it serves metrics (15020), readiness (15021) and the admin
// config_dump (15000) on the pod's IP inside the lab's network namespace, so
// `kubectl ambient status` and `check` read real HTTP through the API
// server's pod proxy. It does no networking of its own. Never run it against
// a real cluster.
//
//	go run ./internal/testing/sim/cmd/ztunnel-sim --lab-run ~/.cache/kubectl-ambient/lab/demo-run
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/cmd/internal/simcmd"
	sim "github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/ztunnelsim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

func main() {
	def := os.Getenv("LAB_RUN")
	if def == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			def = filepath.Join(dir, "kubectl-ambient", "lab", "run")
		}
	}
	labRun := flag.String("lab-run", def, "state directory of the running lab")
	ns := flag.String("namespace", ambient.IstioNamespace, "namespace of the ztunnel pods")
	selector := flag.String("selector", ambient.ZtunnelSelector, "label selector of the ztunnel pods")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *labRun, *ns, *selector); err != nil {
		fmt.Fprintln(os.Stderr, "error: "+err.Error())
		os.Exit(1)
	}
}

func run(ctx context.Context, labRun, ns, selector string) error {
	st, err := kubelab.ReadState(labRun)
	if err != nil {
		return fmt.Errorf("%w; start the lab with go run ./hack/lab up", err)
	}
	if st.NetNS == "" {
		return fmt.Errorf("the lab in %s has no pod network namespace (it needs root); ztunnel-sim cannot serve pod IPs", labRun)
	}
	c, err := simcmd.Connect(st.Kubeconfig)
	if err != nil {
		return err
	}
	var pods []corev1.Pod
	// Wait until every ztunnel pod is Running with an IP (kwok starts them
	// within a second of the DaemonSet controller creating them).
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, nil
		}
		pods = list.Items
		for _, p := range pods {
			if p.Status.PodIP == "" || p.Status.Phase != corev1.PodRunning {
				return false, nil
			}
		}
		return len(pods) > 0, nil
	})
	if err != nil {
		return fmt.Errorf("no running ztunnel pods (%s) in namespace %s: %w; install the ambient profile first", selector, ns, err)
	}
	var servers []*sim.Servers
	for _, p := range pods {
		stand := sim.New(p.Spec.NodeName, sim.Healthy)
		if img := p.Spec.Containers[0].Image; strings.Contains(img, ":") {
			stand.Version = strings.TrimSuffix(img[strings.LastIndex(img, ":")+1:], "-distroless")
		}
		var ls []net.Listener
		for _, port := range []int{15020, 15021, 15000} {
			l, err := kubelab.ListenInNetNS(st.NetNS, net.JoinHostPort(p.Status.PodIP, fmt.Sprint(port)))
			if err != nil {
				return err
			}
			ls = append(ls, l)
		}
		servers = append(servers, stand.Serve(ls...))
	}
	fmt.Printf("ztunnel stand-in (test-only) serving %d ztunnel pods in %s\n", len(pods), st.NetNS)
	<-ctx.Done()
	for _, s := range servers {
		s.Close()
	}
	return nil
}
