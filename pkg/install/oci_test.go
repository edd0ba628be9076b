package install

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/registry"
)

// ociRegistry is a minimal read-only OCI distribution server on 127.0.0.1
// (GET /v2/, tags/list, manifests and blobs), holding the test charts the
// way `helm push` lays them out: a config blob with the chart metadata, a
// layer with the .tgz, an image manifest tagged with the chart version.
type ociRegistry struct {
	host      string
	blobs     map[string][]byte            // digest -> content
	manifests map[string]map[string]string // repo -> tag -> manifest digest
}

func digestOf(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

func serveOCI(t *testing.T, prefix string, dirs ...string) *ociRegistry {
	t.Helper()
	r := &ociRegistry{blobs: map[string][]byte{}, manifests: map[string]map[string]string{}}
	tmp := t.TempDir()
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() || e.Name() != "Chart.yaml" {
				return err
			}
			ch, err := loader.LoadDir(filepath.Dir(p))
			if err != nil {
				return err
			}
			tgzPath, err := chartutil.Save(ch, tmp)
			if err != nil {
				return err
			}
			tgz, err := os.ReadFile(tgzPath)
			if err != nil {
				return err
			}
			cfg, _ := json.Marshal(ch.Metadata)
			r.blobs[digestOf(tgz)], r.blobs[digestOf(cfg)] = tgz, cfg
			man, _ := json.Marshal(map[string]any{
				"schemaVersion": 2,
				"mediaType":     "application/vnd.oci.image.manifest.v1+json",
				"config":        map[string]any{"mediaType": registry.ConfigMediaType, "digest": digestOf(cfg), "size": len(cfg)},
				"layers":        []any{map[string]any{"mediaType": registry.ChartLayerMediaType, "digest": digestOf(tgz), "size": len(tgz)}},
			})
			r.blobs[digestOf(man)] = man
			repo := prefix + "/" + ch.Metadata.Name
			if r.manifests[repo] == nil {
				r.manifests[repo] = map[string]string{}
			}
			r.manifests[repo][ch.Metadata.Version] = digestOf(man)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.host = ln.Addr().String()
	srv := &http.Server{Handler: r}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

func (r *ociRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	p := strings.TrimPrefix(req.URL.Path, "/v2/")
	if p == "" || req.URL.Path == "/v2" {
		w.WriteHeader(http.StatusOK)
		return
	}
	send := func(b []byte, mediaType string) {
		w.Header().Set("Content-Type", mediaType)
		w.Header().Set("Docker-Content-Digest", digestOf(b))
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		if req.Method != http.MethodHead {
			_, _ = w.Write(b)
		}
	}
	notFound := func() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errors":[{"code":"NAME_UNKNOWN","message":"not found"}]}`))
	}
	switch {
	case strings.HasSuffix(p, "/tags/list"):
		repo := strings.TrimSuffix(p, "/tags/list")
		tags := []string{}
		for tag := range r.manifests[repo] {
			tags = append(tags, tag)
		}
		if len(tags) == 0 {
			notFound()
			return
		}
		b, _ := json.Marshal(map[string]any{"name": repo, "tags": tags})
		send(b, "application/json")
	case strings.Contains(p, "/manifests/"):
		repo, ref, _ := strings.Cut(p, "/manifests/")
		d := ref
		if !strings.HasPrefix(ref, "sha256:") {
			d = r.manifests[repo][ref]
		}
		b, ok := r.blobs[d]
		if !ok {
			notFound()
			return
		}
		send(b, "application/vnd.oci.image.manifest.v1+json")
	case strings.Contains(p, "/blobs/"):
		_, d, _ := strings.Cut(p, "/blobs/")
		b, ok := r.blobs[d]
		if !ok {
			notFound()
			return
		}
		send(b, "application/octet-stream")
	default:
		notFound()
	}
}

func TestOCISource(t *testing.T) {
	reg := serveOCI(t, "istio-release/charts", testCharts(t))
	src, err := NewSource("oci://"+reg.host+"/istio-release/charts", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	vs, err := src.Versions(ctx, "ztunnel")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(vs, ",") != "1.32.1,1.32.0,1.31.0,1.30.0,1.29.0,1.28.0,1.27.0" {
		t.Errorf("versions = %v", vs)
	}
	steps, err := Resolve(ctx, Options{Profile: mustProfile(t), Source: src, Version: "1.29.0", Platform: "generic"})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range steps {
		if st.Chart.Metadata.Version != "1.29.0" || len(st.Chart.Templates) == 0 {
			t.Errorf("%s: pulled %s with %d templates", st.Release, st.Chart.Metadata.Version, len(st.Chart.Templates))
		}
	}
	var b bytes.Buffer
	if err := RenderAll(&b, steps); err != nil || !strings.Contains(b.String(), "kind: DaemonSet") {
		t.Errorf("render of OCI charts: %v", err)
	}
	_, err = Resolve(ctx, Options{Profile: mustProfile(t), Source: src, Version: "1.33.0", Platform: "generic"})
	if !errors.Is(err, ErrChartNotFound) || !strings.Contains(err.Error(), "version 1.33.0") || !strings.Contains(err.Error(), "1.32.1, 1.32.0, 1.31.0, 1.30.0, 1.29.0, 1.28.0, 1.27.0") {
		t.Errorf("missing OCI version: %v", err)
	}
}
