package cmd

import (
	"context"
	"flag"
	"io"
	"strconv"

	"github.com/spf13/pflag"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/klog/v2"
)

// defaultErrorHandlers are client-go's handlers for errors it cannot return
// (a failed port-forward stream): they log through klog.
var defaultErrorHandlers = utilruntime.ErrorHandlers

// logFlags is the persistent -v flag: client-go's own log lines (klog) at
// this verbosity go to stderr; 0, the default, keeps them off a user's
// terminal, where every command already turns those errors into one line.
type logFlags struct{ verbosity int }

func (l *logFlags) bind(fs *pflag.FlagSet) {
	fs.IntVarP(&l.verbosity, "v", "v", 0, "client-go log verbosity on stderr (0 is silent; 4 shows requests, 8 bodies)")
}

// apply routes klog and client-go's unhandled-error handlers: to errOut
// from -v 1 on, nowhere at -v 0.
func (l *logFlags) apply(errOut io.Writer) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	// Only SetOutput's writer gets lines: no files, and no copy of errors on
	// the process's stderr behind our back (klog's stderrthreshold).
	for k, v := range map[string]string{
		"v": strconv.Itoa(max(l.verbosity, 0)), "logtostderr": "false", "alsologtostderr": "false",
		"stderrthreshold": "FATAL",
	} {
		_ = fs.Set(k, v)
	}
	if l.verbosity <= 0 {
		klog.SetOutput(io.Discard)
		utilruntime.ErrorHandlers = []utilruntime.ErrorHandler{func(context.Context, error, string, ...any) {}}
		return
	}
	klog.SetOutput(errOut)
	utilruntime.ErrorHandlers = defaultErrorHandlers
}
