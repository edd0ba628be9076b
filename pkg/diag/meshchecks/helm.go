package meshchecks

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Release is the newest revision of one Helm release, read from its Secret
// (Helm's default storage driver) without importing Helm.
type Release struct {
	Name     string `json:"name"`
	Revision int    `json:"revision"`
	Status   string `json:"status"`
	// Chart and AppVersion come from the release body; empty if unreadable.
	Chart      string `json:"chart,omitempty"`
	AppVersion string `json:"appVersion,omitempty"`
}

// ReleasesFromSecrets keeps the newest revision per release name, using the
// labels Helm puts on its Secrets (owner=helm, name, status, version).
func ReleasesFromSecrets(secrets []corev1.Secret) []Release {
	newest := map[string]*corev1.Secret{}
	revs := map[string]int{}
	for i := range secrets {
		s := &secrets[i]
		if s.Labels["owner"] != "helm" {
			continue
		}
		name := s.Labels["name"]
		rev, err := strconv.Atoi(s.Labels["version"])
		if name == "" || err != nil {
			continue
		}
		if cur, ok := revs[name]; !ok || rev > cur {
			revs[name], newest[name] = rev, s
		}
	}
	out := make([]Release, 0, len(newest))
	for name, s := range newest {
		r := Release{Name: name, Revision: revs[name], Status: s.Labels["status"]}
		r.Chart, r.AppVersion = releaseChart(s.Data["release"])
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// releaseChart decodes Helm's release encoding (base64 of gzipped JSON, inside
// the Secret's data) far enough to read the chart's version.
func releaseChart(data []byte) (chart, appVersion string) {
	if len(data) == 0 {
		return "", ""
	}
	raw, err := base64.StdEncoding.DecodeString(string(data))
	if err != nil {
		return "", ""
	}
	if len(raw) > 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return "", ""
		}
		raw, err = io.ReadAll(io.LimitReader(zr, 64<<20))
		if err != nil {
			return "", ""
		}
	}
	var rel struct {
		Chart struct {
			Metadata struct {
				Version    string `json:"version"`
				AppVersion string `json:"appVersion"`
			} `json:"metadata"`
		} `json:"chart"`
	}
	if json.Unmarshal(raw, &rel) != nil {
		return "", ""
	}
	return rel.Chart.Metadata.Version, rel.Chart.Metadata.AppVersion
}

// Releases lists Helm release Secrets in the Istio namespace.
func (c *Cluster) Releases(ctx context.Context) ([]Release, error) {
	return once(c, "releases", func() ([]Release, error) {
		secrets, err := pageAll(ctx, metav1.ListOptions{LabelSelector: "owner=helm"}, func(o metav1.ListOptions) ([]corev1.Secret, string, error) {
			// Release bodies can be large; a small page keeps responses bounded.
			o.Limit = 50
			l, err := c.Kube.CoreV1().Secrets(c.IstioNamespace).List(ctx, o)
			if err != nil {
				return nil, "", err
			}
			return l.Items, l.Continue, nil
		})
		if err != nil {
			return nil, fmt.Errorf("list helm release secrets in %s: %w", c.IstioNamespace, err)
		}
		return ReleasesFromSecrets(secrets), nil
	})
}
