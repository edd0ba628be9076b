// Command kubectl-ambient operates Istio's ambient mesh. Installed on PATH it
// runs as `kubectl ambient`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/cmd"
)

func main() {
	// client-go's own log lines (klog) are silent unless -v is given: the
	// root command routes them (pkg/cmd/logging.go).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	err := cmd.NewRootCmd(streams).ExecuteContext(ctx)
	stop()
	if err != nil {
		var silent cmd.SilentError
		if !errors.As(err, &silent) {
			fmt.Fprintln(os.Stderr, "error: "+err.Error())
		}
		os.Exit(cmd.ExitCode(err))
	}
}
