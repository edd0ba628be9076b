package ambient

import (
	"io/fs"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-ambient/kubectl-ambient/charts"
)

func TestParseVersion(t *testing.T) {
	for _, tt := range []struct {
		in                  string
		major, minor, patch uint64
		ok                  bool
	}{
		{"v1.33.13", 1, 33, 13, true},
		{"1.28", 1, 28, 0, true},
		{"1.28.0-distroless", 1, 28, 0, true},
		{"v1.31.4-gke.1000", 1, 31, 4, true},
		{"v1.33.1+k3s1", 1, 33, 1, true},
		{"latest", 0, 0, 0, false},
		{"master", 0, 0, 0, false},
		{"1", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	} {
		t.Run(tt.in, func(t *testing.T) {
			v, err := ParseVersion(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseVersion(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if tt.ok && (v.Major() != tt.major || v.Minor() != tt.minor || v.Patch() != tt.patch || v.String() != tt.in) {
				t.Fatalf("ParseVersion(%q) = %d.%d.%d (%s)", tt.in, v.Major(), v.Minor(), v.Patch(), v)
			}
		})
	}
	if m, err := MinorOf("v1.28.3"); err != nil || m != "1.28" {
		t.Errorf("MinorOf = %q, %v", m, err)
	}
}

func TestSortVersions(t *testing.T) {
	vs := []string{"1.30", "latest", "1.9", "1.28.1", "1.28.0"}
	SortVersions(vs)
	if want := []string{"1.9", "1.28.0", "1.28.1", "1.30", "latest"}; !slices.Equal(vs, want) {
		t.Errorf("SortVersions = %v, want %v", vs, want)
	}
	vs = []string{"1.27.0", "b", "1.28.0", "a", "1.28.0-beta.1"}
	SortVersionsNewestFirst(vs)
	if want := []string{"1.28.0", "1.28.0-beta.1", "1.27.0", "b", "a"}; !slices.Equal(vs, want) {
		t.Errorf("SortVersionsNewestFirst = %v, want %v", vs, want)
	}
	if got := KnownMinors(); got[:4] != "1.24" {
		t.Errorf("KnownMinors = %q, want oldest first", got)
	}
}

func TestSupportFor(t *testing.T) {
	s, minor, err := SupportFor("1.28.2")
	if err != nil || minor != "1.28" || s.MinKube != 30 || s.MaxKube != 34 {
		t.Fatalf("SupportFor(1.28.2) = %+v %q %v", s, minor, err)
	}
	if _, minor, err := SupportFor("1.12"); err == nil || minor != "1.12" {
		t.Fatalf("unknown minor: %q %v", minor, err)
	}
	if _, ok := SupportTable[DefaultIstioVersion]; !ok {
		t.Fatalf("DefaultIstioVersion %s is not in SupportTable", DefaultIstioVersion)
	}
}

func TestCheckSkew(t *testing.T) {
	for _, tt := range []struct {
		istiod, dp string
		want       Skew
	}{
		{"1.28.0", "1.28.0", SkewSupported},
		{"1.28.2", "1.28.1", SkewSupported},
		{"1.28.0", "1.27.3-distroless", SkewSupported},
		{"1.28.0", "1.28.1", SkewPatchAhead},
		{"1.28.0", "1.29.0", SkewMinorAhead},
		{"1.28.0", "1.26.0", SkewBehind},
		{"1.28.0", "2.28.0", SkewMajor},
		{"2.0.0", "1.29.0", SkewMajor},
	} {
		cp, _ := ParseVersion(tt.istiod)
		dp, _ := ParseVersion(tt.dp)
		if got := CheckSkew(cp, dp); got != tt.want {
			t.Errorf("CheckSkew(%s, %s) = %v, want %v", tt.istiod, tt.dp, got, tt.want)
		}
	}
}

// TestImageTag holds the cases of the three readers it replaced (meshchecks,
// the ztunnel collector).
func TestImageTag(t *testing.T) {
	for _, tt := range []struct{ image, tag, version string }{
		{"docker.io/istio/ztunnel:1.28.0", "1.28.0", "1.28.0"},
		{"docker.io/istio/ztunnel:1.28.0-distroless", "1.28.0-distroless", "1.28.0"},
		{"docker.io/istio/ztunnel:1.24.1-debug", "1.24.1-debug", "1.24.1"},
		{"localhost:5000/istio/pilot", "", ""},
		{"gcr.io/istio-release/pilot:1.27.1@sha256:abcd", "1.27.1", "1.27.1"},
		{"reg:5000/istio/ztunnel:1.2", "1.2", "1.2"},
		{"reg:5000/istio/ztunnel", "", ""},
		{"x/y:1@sha256:ab", "1", "1"},
		{"istio/pilot:latest", "latest", "latest"},
	} {
		if got := ImageTag(tt.image); got != tt.tag {
			t.Errorf("ImageTag(%q) = %q, want %q", tt.image, got, tt.tag)
		}
		if got := ImageVersion(tt.image); got != tt.version {
			t.Errorf("ImageVersion(%q) = %q, want %q", tt.image, got, tt.version)
		}
	}
}

func TestReadiness(t *testing.T) {
	two := int32(2)
	dep := func(mut func(*appsv1.Deployment)) *appsv1.Deployment {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: 3}, Spec: appsv1.DeploymentSpec{Replicas: &two},
			Status: appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2,
				Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}}}
		mut(d)
		return d
	}
	if r := DeploymentReadiness(dep(func(*appsv1.Deployment) {})); !r.RolledOut || !r.Serving() || r.Detail != "2/2 replicas available" {
		t.Errorf("rolled out deployment: %+v", r)
	}
	if r := DeploymentReadiness(dep(func(d *appsv1.Deployment) { d.Status.ObservedGeneration = 2 })); r.RolledOut || r.Observed || r.Detail != "rollout not yet observed by the controller" {
		t.Errorf("unobserved deployment: %+v", r)
	}
	// Mid-rollout: an old replica is left, yet every wanted replica serves.
	if r := DeploymentReadiness(dep(func(d *appsv1.Deployment) { d.Status.Replicas, d.Status.ReadyReplicas = 3, 3 })); r.RolledOut || !r.Serving() {
		t.Errorf("mid-rollout deployment: %+v", r)
	}
	if r := DeploymentReadiness(dep(func(d *appsv1.Deployment) { d.Status.ReadyReplicas = 1 })); r.Serving() {
		t.Errorf("1/2 ready is not serving: %+v", r)
	}
	ds := &appsv1.DaemonSet{Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberReady: 3, NumberAvailable: 3}}
	if r := DaemonSetReadiness(ds); !r.RolledOut || r.Detail != "3/3 nodes ready" {
		t.Errorf("ready daemonset: %+v", r)
	}
	ds.Status.NumberReady = 2
	if r := DaemonSetReadiness(ds); r.RolledOut || r.Serving() {
		t.Errorf("2/3 daemonset: %+v", r)
	}
}

func TestCertExpiry(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	for _, tt := range []struct {
		name      string
		from, exp *time.Time
		want      CertStatus
	}{
		{"24h lifetime, 20h left", at(-4 * time.Hour), at(20 * time.Hour), CertValid},
		{"24h lifetime, 10h left", at(-14 * time.Hour), at(10 * time.Hour), CertExpiring},
		{"unknown lifetime, 23h left", nil, at(23 * time.Hour), CertExpiring},
		{"90 day lifetime, 2 days left", at(-88 * 24 * time.Hour), at(48 * time.Hour), CertValid},
		{"90 day lifetime, 20h left", at(-89 * 24 * time.Hour), at(20 * time.Hour), CertExpiring},
		{"expired", at(-25 * time.Hour), at(-time.Hour), CertExpired},
		{"expires now", at(-24 * time.Hour), at(0), CertExpired},
		{"no expiry", nil, nil, CertValid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := CertExpiry(tt.from, tt.exp, now, CertWarnLimit); got != tt.want {
				t.Errorf("CertExpiry = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestReleasesMatchChart: the embedded umbrella chart is the product's
// source of truth for the releases; the names here must agree with it, in
// its dependency order.
func TestReleasesMatchChart(t *testing.T) {
	b, err := fs.ReadFile(charts.FS, charts.Ambient+"/Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Annotations  map[string]string `json:"annotations"`
		Dependencies []struct {
			Name string `json:"name"`
		} `json:"dependencies"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range c.Dependencies {
		rel := c.Annotations["kubectl-ambient/release."+d.Name]
		if rel == "" {
			rel = d.Name
		}
		got = append(got, rel)
	}
	if !slices.Equal(got, Releases()) {
		t.Errorf("chart releases in order %v, ambient.Releases() %v", got, Releases())
	}
	if ns := c.Annotations["kubectl-ambient/namespace"]; ns != IstioNamespace {
		t.Errorf("chart namespace %q, ambient.IstioNamespace %q", ns, IstioNamespace)
	}
}
