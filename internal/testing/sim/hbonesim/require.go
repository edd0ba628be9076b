package hbonesim

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Require skips a real-traffic test (locally) or fails it (CI=true) when it
// cannot run here: it needs root and iproute2 for network namespaces, and
// the named tools. With -short it is skipped unless CI=true.
func Require(t testing.TB, what string, tools ...string) {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if testing.Short() && !ci {
		t.Skip(what + " creates network namespaces (root); skipped with -short")
	}
	var missing []string
	if why := Available(); why != "" {
		missing = append(missing, why)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool+" not installed (apt-get install -y "+tool+")")
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := what + " needs: " + strings.Join(missing, "; ")
	if ci {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
