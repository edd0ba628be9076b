// Command waypoint-sim is a TEST-ONLY stand-in for the part of istiod that
// deploys waypoints, for the lab demo: it creates the waypoint Deployment and
// Service for each istio-waypoint Gateway, marks it Programmed and writes
// istio.io/WaypointBound on Services that use it. See package waypointsim.
// Never run it against a real cluster.
//
//	go run ./internal/testing/sim/cmd/waypoint-sim --kubeconfig /path/to/lab/kubeconfig
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/cmd/internal/simcmd"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/waypointsim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/waypoint"
)

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the lab cluster")
	never := flag.Bool("never-program", false, "play an istiod that never programs waypoints")
	flag.Parse()
	if err := run(*kubeconfig, *never); err != nil {
		fmt.Fprintln(os.Stderr, "error: "+err.Error())
		os.Exit(1)
	}
}

func run(kubeconfig string, never bool) error {
	c, err := simcmd.Connect(kubeconfig)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var g waypoint.GVRs
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		g, err = waypoint.Discover(c.Discovery)
		return err == nil && g.Gateway.Resource != "", nil
	}); err != nil {
		return fmt.Errorf("the Gateway API is not served: %w", err)
	}
	fmt.Fprintln(os.Stderr, "waypoint stand-in (test-only) running against", c.Config.Host)
	return waypointsim.New(c.Kube, c.Dynamic, g.Gateway, waypointsim.Options{NeverProgram: never}).Run(ctx)
}
