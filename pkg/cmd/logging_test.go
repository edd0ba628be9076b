package cmd

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"
)

// captureStderr runs fn with os.Stderr redirected and returns what it wrote.
func captureStderr(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	fn()
	os.Stderr = saved
	_ = w.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}

// logClientGoErrors reports errors the way client-go's port-forward does:
// through utilruntime's handlers and through klog.
func logClientGoErrors() {
	utilruntime.HandleError(errors.New(`an error occurred forwarding 15000 -> 15000: connection reset`))
	klog.ErrorS(errors.New("lost connection to pod"), "An error occurred forwarding")
	klog.V(4).Info("GET https://example/api/v1/pods")
	klog.Flush()
}

// TestKlogSilentByDefault is the `check` defect: a failed port-forward
// printed E1206 ... portforward.go ... logger="UnhandledError" lines.
func TestKlogSilentByDefault(t *testing.T) {
	var out, errOut bytes.Buffer
	root := NewRootCmd(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	root.SetArgs([]string{"version", "--client"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	got := captureStderr(t, logClientGoErrors)
	if got != "" || strings.Contains(errOut.String(), "forwarding") {
		t.Errorf("client-go logged at -v 0: stderr %q, ErrOut %q", got, errOut.String())
	}
}

// TestKlogVerbose shows client-go's lines on ErrOut with -v.
func TestKlogVerbose(t *testing.T) {
	var out, errOut bytes.Buffer
	root := NewRootCmd(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	root.SetArgs([]string{"version", "--client", "-v", "4"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { (&logFlags{}).apply(io.Discard) })
	got := captureStderr(t, logClientGoErrors)
	for _, want := range []string{"an error occurred forwarding", "lost connection to pod", "GET https://example"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("-v 4: ErrOut lacks %q:\n%s", want, errOut.String())
		}
	}
	if got != "" {
		t.Errorf("-v 4 also wrote to the process's stderr: %q", got)
	}
}
