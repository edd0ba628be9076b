// Command lab runs the kubectl-ambient lab in the background: a real
// kube-apiserver, etcd, controller-manager and scheduler on 127.0.0.1 with
// kwok fake nodes (see internal/testing/kubelab).
//
//	go run ./hack/lab up [--nodes N]   # start, print `export KUBECONFIG=...`
//	go run ./hack/lab env              # print it again
//	go run ./hack/lab status           # components, pids, nodes
//	go run ./hack/lab down             # stop every process by pid, remove the netns
//
// State lives in $LAB_RUN (default ~/.cache/kubectl-ambient/lab/run). Build
// the binaries first with hack/lab/build.sh.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

const usage = `usage: go run ./hack/lab <command> [flags]

commands:
  up [--nodes N]   start the lab in the background (default 3 fake nodes) and print
                   the export line for KUBECONFIG; a lab already up is left as it is
  env              print the export line of the running lab
  status           show the lab's processes and nodes (exit 1 when it is not up)
  down             stop the lab's processes by pid and remove its network namespace

environment:
  LAB_RUN    state directory (default ~/.cache/kubectl-ambient/lab/run)
  LAB_HOME   binaries in $LAB_HOME/bin (default ~/.cache/kubectl-ambient/lab)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ue usageError
		fmt.Fprintf(os.Stderr, "lab: %v\n", err)
		if errors.As(err, &ue) {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

func runDir() string {
	if d := os.Getenv("LAB_RUN"); d != "" {
		return d
	}
	return filepath.Join(filepath.Dir(kubelab.DefaultBinDir()), "run")
}

func run(ctx context.Context, args []string, out, errOut io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New("missing command")}
	}
	dir := runDir()
	switch args[0] {
	case "up":
		fs := flag.NewFlagSet("up", flag.ContinueOnError)
		fs.SetOutput(errOut)
		nodes := fs.Int("nodes", 3, "number of fake nodes")
		if err := fs.Parse(args[1:]); err != nil {
			return usageError{err}
		}
		if *nodes < 1 {
			return usageError{fmt.Errorf("--nodes %d: need at least 1", *nodes)}
		}
		return up(ctx, dir, *nodes, out, errOut)
	case "env":
		if !running(dir) {
			return fmt.Errorf("no lab running in %s; start one with `go run ./hack/lab up`", dir)
		}
		_, _ = fmt.Fprintf(out, "export KUBECONFIG=%s\n", filepath.Join(dir, "kubeconfig"))
		return nil
	case "status":
		return status(ctx, dir, out)
	case "down":
		if err := kubelab.StopDir(dir); err != nil {
			return err
		}
		_, _ = fmt.Fprintf(errOut, "lab in %s stopped\n", dir)
		return nil
	case "-h", "--help", "help":
		_, _ = fmt.Fprint(out, usage)
		return nil
	default:
		return usageError{fmt.Errorf("unknown command %q", args[0])}
	}
}

// running reports whether every recorded component of the lab in dir runs.
func running(dir string) bool {
	ps, err := kubelab.Processes(dir)
	if err != nil || len(ps) == 0 {
		return false
	}
	for _, p := range ps {
		if !p.Running {
			return false
		}
	}
	return true
}

func up(ctx context.Context, dir string, nodes int, out, errOut io.Writer) error {
	if running(dir) {
		_, _ = fmt.Fprintf(errOut, "lab already running in %s (stop it with `go run ./hack/lab down`)\n", dir)
		_, _ = fmt.Fprintf(out, "export KUBECONFIG=%s\n", filepath.Join(dir, "kubeconfig"))
		return nil
	}
	// Whatever a previous lab left (a crash, a reboot) goes first.
	if err := kubelab.StopDir(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear old lab state %s: %w", dir, err)
	}
	begin := time.Now()
	lab, err := kubelab.Start(ctx, kubelab.Options{Nodes: nodes, Dir: dir, Detached: true})
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(errOut, "lab up in %s: %s, %d nodes, pod CIDR %s, netns %q, logs in %s\n",
		time.Since(begin).Round(time.Millisecond), lab.Server, len(lab.Nodes), lab.PodCIDR, lab.NetNS, filepath.Join(dir, "logs"))
	_, _ = fmt.Fprintf(out, "export KUBECONFIG=%s\n", lab.Kubeconfig)
	return nil
}

func status(ctx context.Context, dir string, out io.Writer) error {
	ps, err := kubelab.Processes(dir)
	if err != nil {
		return err
	}
	if len(ps) == 0 {
		return fmt.Errorf("no lab in %s; start one with `go run ./hack/lab up`", dir)
	}
	st, err := kubelab.ReadState(dir)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(out, "server:     %s\nkubeconfig: %s\npod CIDR:   %s\nnetns:      %s\nstarted:    %s\n\n",
		st.Server, st.Kubeconfig, st.PodCIDR, st.NetNS, st.Started.Format(time.RFC3339))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "COMPONENT\tPID\tSTATE")
	down := 0
	for _, p := range ps {
		state := "running"
		if !p.Running {
			state = "stopped"
			down++
		}
		_, _ = fmt.Fprintf(tw, "%s\t%d\t%s\n", p.Name, p.PID, state)
	}
	_ = tw.Flush()
	if down > 0 {
		return fmt.Errorf("%d lab components are not running; restart with `go run ./hack/lab down && go run ./hack/lab up`", down)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig)
	if err != nil {
		return fmt.Errorf("load %s: %w", st.Kubeconfig, err)
	}
	c, err := kube.NewClients(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nodes, err := c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return kube.Unreachable(cfg.Host, err)
	}
	_, _ = fmt.Fprintf(out, "\nnodes: %d\n", len(nodes.Items))
	return nil
}
