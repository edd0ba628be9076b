// Command kubectl-ambient operates Istio's ambient mesh. Installed on PATH it
// runs as `kubectl ambient`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/cmd"
)

func main() {
	// client-go reports some transport trouble (a failed port-forward stream)
	// through klog as well as through the error it returns. The commands
	// already turn those errors into one actionable line, so klog's copy is
	// noise on a user's terminal.
	klog.SetOutput(io.Discard)
	klog.LogToStderr(false)

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
