package install

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/fixtures"

	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	repo "helm.sh/helm/v4/pkg/repo/v1"
)

// repoRoot is the module root (tests run in pkg/install).
func repoRoot(t testing.TB) string {
	t.Helper()
	return fixtures.RepoRoot()
}

func testCharts(t testing.TB, sub ...string) string {
	return fixtures.Path(append([]string{"charts"}, sub...)...)
}

// chartRepo is a real Helm repository (index.yaml + .tgz) served over HTTP
// on 127.0.0.1, holding the test charts packaged by the test.
type chartRepo struct {
	URL string

	mu       sync.Mutex
	requests []string
}

func (r *chartRepo) Requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

// serveCharts packages every chart directory under dirs into a temporary
// folder, indexes it, and serves it until the test ends.
func serveCharts(t testing.TB, dirs ...string) *chartRepo {
	t.Helper()
	out := t.TempDir()
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() || e.Name() != "Chart.yaml" {
				return err
			}
			ch, err := loader.LoadDir(filepath.Dir(p))
			if err != nil {
				return err
			}
			_, err = chartutil.Save(ch, out)
			return err
		})
		if err != nil {
			t.Fatalf("package test charts in %s: %v", d, err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &chartRepo{URL: "http://" + ln.Addr().String() + "/charts"}
	idx, err := repo.IndexDirectory(out, r.URL)
	if err != nil {
		t.Fatalf("index test charts: %v", err)
	}
	idx.SortEntries()
	if err := idx.WriteFile(filepath.Join(out, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := http.StripPrefix("/charts", http.FileServer(http.Dir(out)))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, req.URL.Path)
		r.mu.Unlock()
		fs.ServeHTTP(w, req)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

func mustProfile(t testing.TB) *Profile {
	t.Helper()
	p, err := LoadProfile()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuffer is a goroutine-safe buffer for progress output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	// onWrite, when set, sees every write (to cancel at a given step).
	onWrite func(string)
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	n, err := s.b.Write(p)
	f := s.onWrite
	s.mu.Unlock()
	if f != nil {
		f(string(p))
	}
	return n, err
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func contextWithCancelOn(parent context.Context, buf *syncBuffer, marker string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	buf.onWrite = func(s string) {
		if strings.Contains(s, marker) {
			cancel()
		}
	}
	return ctx, cancel
}

// Reset empties the buffer.
func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}
