package kubelab

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RequireRootTools skips the test unless it runs as root with every tool on
// the PATH (tcpdump, ip, ...), naming what is missing; under CI=true it fails
// instead, because CI must never skip a real-traffic test silently.
func RequireRootTools(t testing.TB, what string, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := what + " needs: " + strings.Join(missing, ", ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
