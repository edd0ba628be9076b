package kubelab

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// PluginPackage is the import path of the kubectl-ambient binary.
const PluginPackage = "github.com/kubectl-ambient/kubectl-ambient/cmd/kubectl-ambient"

var builds struct {
	mu   sync.Mutex
	dir  string
	done map[string]*buildResult
}

type buildResult struct {
	once sync.Once
	bin  string
	err  error
}

// BuildBinary builds the Go command pkg (an import path in this module)
// with CGO off and the given -ldflags, once per test process, and returns
// the binary's path. KAMB_BIN names a plugin binary built beforehand (used
// for PluginPackage without ldflags). The binaries live in one temporary
// directory that Main removes when the tests end.
func BuildBinary(t testing.TB, pkg string, ldflags ...string) string {
	t.Helper()
	if b := os.Getenv("KAMB_BIN"); b != "" && pkg == PluginPackage && len(ldflags) == 0 {
		return b
	}
	key := pkg + "\x00" + strings.Join(ldflags, " ")
	builds.mu.Lock()
	if builds.done == nil {
		builds.done = map[string]*buildResult{}
	}
	r := builds.done[key]
	if r == nil {
		r = &buildResult{}
		builds.done[key] = r
	}
	builds.mu.Unlock()
	r.once.Do(func() {
		dir, err := buildDir()
		if err != nil {
			r.err = err
			return
		}
		sum := sha256.Sum256([]byte(key))
		r.bin = filepath.Join(dir, hex.EncodeToString(sum[:4]), path.Base(pkg))
		args := []string{"build", "-o", r.bin}
		if len(ldflags) > 0 {
			args = append(args, "-ldflags", strings.Join(ldflags, " "))
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			r.err = fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.bin
}

func buildDir() (string, error) {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir == "" {
		d, err := os.MkdirTemp("", "kamb-build-")
		if err != nil {
			return "", err
		}
		builds.dir = d
	}
	return builds.dir, nil
}

// removeBuilds deletes what BuildBinary built.
func removeBuilds() {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
		builds.dir = ""
	}
}
