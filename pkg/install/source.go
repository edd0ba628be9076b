package install

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/registry"
	repo "helm.sh/helm/v4/pkg/repo/v1"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// ErrChartNotFound is returned (wrapped) when a source has no chart of a
// name, or not at the version asked for.
var ErrChartNotFound = errors.New("chart not found")

// ErrVersionNotFound is returned (wrapped, together with ErrChartNotFound)
// when the chart exists but not at the version asked for.
var ErrVersionNotFound = errors.New("chart version not found")

// ErrBadRepository is returned (wrapped) for a chart repository that is not
// an http(s):// or oci:// URL.
var ErrBadRepository = errors.New("not an http(s):// or oci:// URL")

// ErrRepositoryIndex is returned (wrapped) when a chart repository's index
// cannot be downloaded.
var ErrRepositoryIndex = errors.New("chart repository index unavailable")

// Source is where charts come from: a Helm repository over HTTP, an OCI
// registry, or local directories and .tgz files.
type Source interface {
	// String names the source in messages.
	String() string
	// Versions lists the versions of a chart, newest first.
	Versions(ctx context.Context, name string) ([]string, error)
	// Load returns a chart at an exact version.
	Load(ctx context.Context, name, version string) (*chart.Chart, error)
	// Local reports whether the source is on disk (air-gapped); local
	// sources holding a single version of a chart need no --version.
	Local() bool
}

// NewSource picks the source for --repo or --charts. charts wins when given;
// an oci:// reference is an OCI registry; anything else is an HTTP Helm
// repository. cacheDir holds downloaded indexes and charts ("" = none).
func NewSource(repoURL string, chartPaths []string, cacheDir string) (Source, error) {
	if len(chartPaths) > 0 {
		return NewLocalSource(chartPaths...)
	}
	if strings.HasPrefix(repoURL, "oci://") {
		return NewOCISource(repoURL)
	}
	u, err := url.Parse(repoURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("chart repository %q: %w", repoURL, ErrBadRepository)
	}
	return &RepoSource{URL: strings.TrimSuffix(repoURL, "/"), CacheDir: cacheDir}, nil
}

// DefaultCacheDir is where downloaded indexes and charts are kept, like
// helm's repository cache: $XDG_CACHE_HOME/kubectl-ambient/helm/repository.
func DefaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "kubectl-ambient", "helm", "repository")
}

// sortVersions sorts versions newest first (non-versions last) and drops
// adjacent duplicates.
func sortVersions(vs []string) []string {
	ambient.SortVersionsNewestFirst(vs)
	return slices.Compact(vs)
}

func versionNotFound(src Source, name, version string, have []string) error {
	if len(have) == 0 {
		return fmt.Errorf("%w: no chart %q in %s", ErrChartNotFound, name, src)
	}
	return fmt.Errorf("%w: chart %s version %s is not in %s; versions available: %s%w",
		ErrChartNotFound, name, version, src, strings.Join(have, ", "), silent{ErrVersionNotFound})
}

// LocalSource finds charts in directories (any depth, by the name in each
// Chart.yaml, so folder names need not match) and .tgz archives. When two
// paths hold the same name and version, the first path given wins.
type LocalSource struct {
	paths  []string
	charts map[string]map[string]localChart // name -> version -> where
}

type localChart struct {
	path  string
	chart *chart.Chart // set for archives, loaded while indexing
}

// NewLocalSource indexes the given directories and .tgz files.
func NewLocalSource(paths ...string) (*LocalSource, error) {
	s := &LocalSource{paths: paths, charts: map[string]map[string]localChart{}}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("chart path %s: %w", p, err)
		}
		if !st.IsDir() {
			if err := s.addArchive(p); err != nil {
				return nil, err
			}
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "templates" || (d.Name() != "." && strings.HasPrefix(d.Name(), ".") && path != p) {
					return filepath.SkipDir
				}
				return nil
			}
			switch {
			case d.Name() == "Chart.yaml":
				dir := filepath.Dir(path)
				// A chart vendored under another chart's charts/ folder is
				// part of its parent, not a component of its own.
				if filepath.Base(filepath.Dir(dir)) == "charts" && fileExists(filepath.Join(filepath.Dir(filepath.Dir(dir)), "Chart.yaml")) {
					return nil
				}
				ch, err := loader.LoadDir(dir)
				if err != nil {
					return fmt.Errorf("load chart in %s: %w", dir, err)
				}
				s.add(ch.Metadata.Name, ch.Metadata.Version, localChart{path: dir})
			case strings.HasSuffix(d.Name(), ".tgz"):
				return s.addArchive(path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("chart path %s: %w", p, err)
		}
	}
	return s, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func (s *LocalSource) addArchive(p string) error {
	ch, err := loader.LoadFile(p)
	if err != nil {
		return fmt.Errorf("load chart archive %s: %w", p, err)
	}
	s.add(ch.Metadata.Name, ch.Metadata.Version, localChart{path: p, chart: ch})
	return nil
}

func (s *LocalSource) add(name, version string, c localChart) {
	if s.charts[name] == nil {
		s.charts[name] = map[string]localChart{}
	}
	if _, dup := s.charts[name][version]; !dup {
		s.charts[name][version] = c
	}
}

// String implements Source.
func (s *LocalSource) String() string { return "--charts " + strings.Join(s.paths, ",") }

// Local implements Source.
func (s *LocalSource) Local() bool { return true }

// Versions implements Source.
func (s *LocalSource) Versions(_ context.Context, name string) ([]string, error) {
	var out []string
	for v := range s.charts[name] {
		out = append(out, v)
	}
	return sortVersions(out), nil
}

// Load implements Source.
func (s *LocalSource) Load(ctx context.Context, name, version string) (*chart.Chart, error) {
	c, ok := s.charts[name][version]
	if !ok {
		have, _ := s.Versions(ctx, name)
		return nil, versionNotFound(s, name, version, have)
	}
	if c.chart != nil {
		return c.chart, nil
	}
	ch, err := loader.LoadDir(c.path)
	if err != nil {
		return nil, fmt.Errorf("load chart %s %s from %s: %w", name, version, c.path, err)
	}
	return ch, nil
}

// RepoSource is a classic Helm repository: index.yaml plus chart archives.
// The index is downloaded once per run (as `helm install --repo` does) and
// kept in CacheDir with the charts; a cached chart whose digest matches the
// index is not downloaded again.
type RepoSource struct {
	URL      string
	CacheDir string
	// Client is the HTTP client; nil means a client with a 60 s timeout.
	Client *http.Client

	once  sync.Once
	index *repo.IndexFile
	err   error
}

// String implements Source.
func (s *RepoSource) String() string { return "repository " + s.URL }

// Local implements Source.
func (s *RepoSource) Local() bool { return false }

func (s *RepoSource) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	return &http.Client{Timeout: 60 * time.Second}
}

func (s *RepoSource) cacheKey() string {
	h := sha256.Sum256([]byte(s.URL))
	return hex.EncodeToString(h[:8])
}

func (s *RepoSource) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client().Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func (s *RepoSource) loadIndex(ctx context.Context) (*repo.IndexFile, error) {
	s.once.Do(func() {
		body, err := s.get(ctx, s.URL+"/index.yaml")
		if err != nil {
			s.err = fmt.Errorf("%w: download the index of chart repository %s: %w", ErrRepositoryIndex, s.URL, err)
			return
		}
		dir := s.CacheDir
		tmp := ""
		if dir == "" {
			if tmp, err = os.MkdirTemp("", "kubectl-ambient-index"); err != nil {
				s.err = err
				return
			}
			dir = tmp
			defer func() { _ = os.RemoveAll(tmp) }()
		}
		if err := os.MkdirAll(dir, 0o750); err != nil {
			s.err = fmt.Errorf("create chart cache %s: %w", dir, err)
			return
		}
		p := filepath.Join(dir, s.cacheKey()+"-index.yaml")
		if err := writeFileAtomic(p, body); err != nil {
			s.err = fmt.Errorf("cache the index of %s: %w", s.URL, err)
			return
		}
		idx, err := repo.LoadIndexFile(p)
		if err != nil {
			s.err = fmt.Errorf("read the index of chart repository %s: %w", s.URL, err)
			return
		}
		s.index = idx
	})
	return s.index, s.err
}

// Versions implements Source.
func (s *RepoSource) Versions(ctx context.Context, name string) ([]string, error) {
	idx, err := s.loadIndex(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, cv := range idx.Entries[name] {
		out = append(out, cv.Version)
	}
	return sortVersions(out), nil
}

// Load implements Source.
func (s *RepoSource) Load(ctx context.Context, name, version string) (*chart.Chart, error) {
	idx, err := s.loadIndex(ctx)
	if err != nil {
		return nil, err
	}
	cv, err := idx.Get(name, version)
	if err != nil || cv.Version != version {
		have, _ := s.Versions(ctx, name)
		return nil, versionNotFound(s, name, version, have)
	}
	if len(cv.URLs) == 0 {
		return nil, fmt.Errorf("chart %s %s in %s has no download URL", name, version, s.URL)
	}
	var cached string
	if s.CacheDir != "" {
		cached = filepath.Join(s.CacheDir, s.cacheKey(), fmt.Sprintf("%s-%s.tgz", name, version))
		if b, err := os.ReadFile(cached); err == nil && digestOK(b, cv.Digest) {
			return loader.LoadArchive(bytes.NewReader(b))
		}
	}
	u, err := repo.ResolveReferenceURL(s.URL+"/", cv.URLs[0])
	if err != nil {
		return nil, fmt.Errorf("chart %s %s: bad URL %q in the index of %s: %w", name, version, cv.URLs[0], s.URL, err)
	}
	b, err := s.get(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("download chart %s %s: %w", name, version, err)
	}
	if !digestOK(b, cv.Digest) {
		return nil, fmt.Errorf("chart %s %s from %s: digest does not match the repository index; the download is corrupt or the index is stale", name, version, u)
	}
	if cached != "" {
		if err := os.MkdirAll(filepath.Dir(cached), 0o750); err == nil {
			_ = writeFileAtomic(cached, b) // a cache miss next time is harmless
		}
	}
	ch, err := loader.LoadArchive(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("load chart %s %s from %s: %w", name, version, u, err)
	}
	return ch, nil
}

func digestOK(b []byte, want string) bool {
	if want == "" {
		return true
	}
	h := sha256.Sum256(b)
	return strings.EqualFold(strings.TrimPrefix(want, "sha256:"), hex.EncodeToString(h[:]))
}

func writeFileAtomic(p string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-"+filepath.Base(p))
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), p)
}

// OCISource is an OCI registry holding charts as <ref>/<name>:<version>.
// Registries on a loopback address are spoken to over plain HTTP.
type OCISource struct {
	Ref string // without the oci:// prefix

	once   sync.Once
	client *registry.Client
	err    error
}

// NewOCISource checks an oci:// reference.
func NewOCISource(ref string) (*OCISource, error) {
	r := strings.TrimSuffix(strings.TrimPrefix(ref, "oci://"), "/")
	if r == "" || !strings.Contains(r, "/") && !strings.Contains(r, ":") && !strings.Contains(r, ".") {
		return nil, fmt.Errorf("OCI reference %q must look like oci://registry.example/path", ref)
	}
	return &OCISource{Ref: r}, nil
}

// String implements Source.
func (s *OCISource) String() string { return "oci://" + s.Ref }

// Local implements Source.
func (s *OCISource) Local() bool { return false }

func (s *OCISource) registry() (*registry.Client, error) {
	s.once.Do(func() {
		opts := []registry.ClientOption{registry.ClientOptWriter(io.Discard)}
		host := s.Ref
		if i := strings.Index(host, "/"); i >= 0 {
			host = host[:i]
		}
		if h, _, ok := strings.Cut(host, ":"); ok {
			host = h
		}
		if host == "localhost" || host == "127.0.0.1" || host == "[::1]" {
			opts = append(opts, registry.ClientOptPlainHTTP())
		}
		s.client, s.err = registry.NewClient(opts...)
	})
	return s.client, s.err
}

// Versions implements Source.
func (s *OCISource) Versions(_ context.Context, name string) ([]string, error) {
	c, err := s.registry()
	if err != nil {
		return nil, err
	}
	tags, err := c.Tags(s.Ref + "/" + name)
	if err != nil {
		if strings.Contains(err.Error(), "not found") {
			return nil, nil
		}
		return nil, fmt.Errorf("list versions of %s/%s: %w", s, name, err)
	}
	return sortVersions(tags), nil
}

// Load implements Source.
func (s *OCISource) Load(_ context.Context, name, version string) (*chart.Chart, error) {
	c, err := s.registry()
	if err != nil {
		return nil, err
	}
	res, err := c.Pull(fmt.Sprintf("%s/%s:%s", s.Ref, name, version))
	if err != nil {
		if have, verr := s.Versions(context.Background(), name); verr == nil && !slices.Contains(have, version) {
			return nil, versionNotFound(s, name, version, have)
		}
		return nil, fmt.Errorf("pull chart %s/%s:%s: %w", s, name, version, err)
	}
	return loader.LoadArchive(bytes.NewReader(res.Chart.Data))
}

// silent wraps a sentinel for errors.Is without adding to the message.
type silent struct{ err error }

func (s silent) Error() string { return "" }
func (s silent) Unwrap() error { return s.err }
