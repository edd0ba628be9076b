package capture

import (
	"context"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
)

// limitedWriter keeps the first n bytes written to it and drops the rest
// without failing the writer (a chatty command's stderr).
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		q := p
		if len(q) > l.n {
			q = q[:l.n]
		}
		l.n -= len(q)
		_, _ = l.w.Write(q)
	}
	return len(p), nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Exec runs cmd in a container of a pod through the API server's
// pods/exec, streaming its output, until it ends or ctx is cancelled.
func Exec(ctx context.Context, cfg *rest.Config, kc kubernetes.Interface, ns, pod, container string, cmd []string, stdout, stderr io.Writer) error {
	req := kc.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return err
	}
	return ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: stdout, Stderr: stderr})
}

// ExecDiscard runs cmd like Exec and drops its output; a failure carries the
// first line of what the command wrote to stderr.
func ExecDiscard(ctx context.Context, cfg *rest.Config, kc kubernetes.Interface, ns, pod, container string, cmd []string) error {
	var stderr strings.Builder
	err := Exec(ctx, cfg, kc, ns, pod, container, cmd, io.Discard, &limitedWriter{w: &stderr, n: 1024})
	if err == nil {
		return nil
	}
	if s := firstLine(strings.TrimSpace(stderr.String())); s != "" {
		return fmt.Errorf("%w: %s", err, s)
	}
	return err
}
