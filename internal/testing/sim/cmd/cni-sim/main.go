// Command cni is a TEST-ONLY stand-in for istio-cni, for the lab demo: it
// writes ambient.istio.io/redirection on pods the way istio-cni does and
// nothing else (no networking). See package cnisim. Never run it against a
// real cluster.
//
//	go run ./internal/testing/sim/cmd/cni-sim --kubeconfig /path/to/lab/kubeconfig
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/cmd/internal/simcmd"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/cnisim"
)

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the lab cluster")
	delay := flag.Duration("delay", 0, "play a ztunnel slow to accept pods: write pending, then enabled after this long (0: enabled at once, one write per pod, as istio-cni does)")
	quiet := flag.Bool("quiet", false, "do not log each annotation write")
	flag.Parse()
	if err := run(*kubeconfig, *delay, *quiet); err != nil {
		fmt.Fprintln(os.Stderr, "error: "+err.Error())
		os.Exit(1)
	}
}

func run(kubeconfig string, delay time.Duration, quiet bool) error {
	clients, err := simcmd.Connect(kubeconfig)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := cnisim.Options{Delay: delay}
	if !quiet {
		opts.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	}
	fmt.Fprintln(os.Stderr, "cni stand-in (test-only) running against", clients.Config.Host)
	return cnisim.New(clients.Kube, opts).Run(ctx)
}
