package migrate

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// loadSnapshot reads a multi-document YAML fixture into a Snapshot.
func loadSnapshot(t testing.TB, name string) *Snapshot {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	s := &Snapshot{Resources: map[string][]unstructured.Unstructured{}, Installed: map[string]bool{}, GVR: map[string]schema.GroupVersionResource{}}
	for _, w := range watchedResources {
		s.Installed[w.Kind] = true
		s.GVR[w.Kind] = schema.GroupVersionResource{Group: w.Group, Version: "v1", Resource: w.Resource}
	}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var probe struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &probe); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch probe.Kind {
		case "":
		case "Namespace":
			var ns corev1.Namespace
			if err := yaml.Unmarshal([]byte(doc), &ns); err != nil {
				t.Fatal(err)
			}
			s.Namespaces = append(s.Namespaces, ns)
		case "Service":
			var svc corev1.Service
			if err := yaml.Unmarshal([]byte(doc), &svc); err != nil {
				t.Fatal(err)
			}
			s.Services = append(s.Services, svc)
		case "Pod":
			var p corev1.Pod
			if err := yaml.Unmarshal([]byte(doc), &p); err != nil {
				t.Fatal(err)
			}
			s.Pods = append(s.Pods, p)
		default:
			var u unstructured.Unstructured
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
				t.Fatal(err)
			}
			s.Resources[probe.Kind] = append(s.Resources[probe.Kind], u)
		}
	}
	return s
}

func nsPlanOf(t *testing.T, p *Plan, name string) NamespacePlan {
	t.Helper()
	for _, n := range p.Namespaces {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("namespace %s not in plan", name)
	return NamespacePlan{}
}

func refNames(rs []ResourceRef) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Kind+"/"+r.Name)
	}
	slices.Sort(out)
	return out
}

func hasWarning(ws []string, sub string) bool {
	return slices.ContainsFunc(ws, func(w string) bool { return strings.Contains(w, sub) })
}

func TestBuildPlanNamespaces(t *testing.T) {
	s := loadSnapshot(t, "cluster.yaml")
	tests := []struct {
		name       string
		ns         string
		mode       Mode
		action     string
		pods       PodCounts
		changes    string
		l7         []string
		blockers   []string
		waypoint   bool
		warnings   []string
		noWarnings []string
	}{
		{name: "plain namespace", ns: "plain", mode: ModeNone, action: ActionEnroll,
			pods:     PodCounts{Total: 4, Capture: 2, HostNetwork: 1, OptedOut: 1},
			changes:  "istio.io/dataplane-mode=ambient",
			warnings: []string{"2 running pod(s) will be captured in place", "1 hostNetwork pod(s) are never captured"}},
		{name: "sidecar namespace, one sidecar without HBONE, STRICT", ns: "shop", mode: ModeSidecar, action: ActionEnroll,
			pods:     PodCounts{Total: 3, Capture: 1, Sidecar: 2, SidecarNoHBONE: 1},
			changes:  "istio.io/dataplane-mode=ambient istio-injection-",
			warnings: []string{"will be refused by this namespace's ambient pods (STRICT mTLS)", "2 pod(s) keep their sidecar until their next rollout"}},
		{name: "revision label removed, waypoint present", ns: "payments", mode: ModeSidecar, action: ActionEnroll,
			pods:     PodCounts{Total: 1, Sidecar: 1},
			changes:  "istio.io/dataplane-mode=ambient istio.io/rev-",
			waypoint: true, noWarnings: []string{"will be captured in place"}},
		{name: "enrolled with a sidecar pod left is mixed", ns: "halfway", mode: ModeMixed, action: ActionNone,
			pods: PodCounts{Total: 2, Capture: 1, Sidecar: 1, Captured: 2}, changes: "-"},
		{name: "already ambient", ns: "done", mode: ModeAmbient, action: ActionNone,
			pods: PodCounts{Total: 2, Capture: 2, Captured: 1}, changes: "-", noWarnings: []string{"captured in place"}},
		{name: "L7 resources", ns: "l7", mode: ModeSidecar, action: ActionEnroll,
			pods:       PodCounts{Total: 2, Capture: 1, HostNetwork: 1},
			changes:    "istio.io/dataplane-mode=ambient istio-injection-",
			blockers:   []string{"AuthorizationPolicy/at-waypoint"},
			l7:         []string{"AuthorizationPolicy/api-get-only", "AuthorizationPolicy/at-waypoint", "DestinationRule/api-subsets", "VirtualService/api-routes"},
			warnings:   []string{"AuthorizationPolicy api-get-only selects workloads and has HTTP rules", "4 L7 resource(s) need a waypoint"},
			noWarnings: []string{"AuthorizationPolicy at-waypoint", "AuthorizationPolicy l4-only"}},
	}
	// Force: l7's at-waypoint policy targets a Service in a namespace without
	// a waypoint, a blocker (it would fail open), asserted below.
	plan, err := BuildPlan(s, Selection{Names: []string{"plain", "shop", "payments", "halfway", "done", "l7"}}, PlanOptions{Force: true})
	if err != nil {
		t.Fatalf("BuildPlan: %v", err)
	}
	if len(plan.Namespaces) != 6 {
		t.Fatalf("plan has %d namespaces, want 6", len(plan.Namespaces))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := nsPlanOf(t, plan, tt.ns)
			if n.Mode != tt.mode || n.Action != tt.action {
				t.Errorf("mode/action = %s/%s, want %s/%s", n.Mode, n.Action, tt.mode, tt.action)
			}
			if n.Pods != tt.pods {
				t.Errorf("pods = %+v, want %+v", n.Pods, tt.pods)
			}
			if got := n.Changes.String(); got != tt.changes {
				t.Errorf("changes = %q, want %q", got, tt.changes)
			}
			if got := refNames(n.L7); !slices.Equal(got, tt.l7) {
				t.Errorf("L7 = %v, want %v", got, tt.l7)
			}
			if got := refNames(n.Blockers); !slices.Equal(got, tt.blockers) {
				t.Errorf("blockers = %v, want %v", got, tt.blockers)
			}
			if n.WaypointPresent != tt.waypoint {
				t.Errorf("waypoint present = %v, want %v", n.WaypointPresent, tt.waypoint)
			}
			for _, w := range tt.warnings {
				if !hasWarning(n.Warnings, w) {
					t.Errorf("missing warning %q in %q", w, n.Warnings)
				}
			}
			for _, w := range tt.noWarnings {
				if hasWarning(n.Warnings, w) {
					t.Errorf("unexpected warning %q in %q", w, n.Warnings)
				}
			}
		})
	}
	// Cross-namespace: plain's pods become ambient while shop has a non-HBONE sidecar.
	if !hasWarning(nsPlanOf(t, plan, "plain").Warnings, "sidecars without HBONE (ISTIO_META_ENABLE_HBONE not true) in shop will reach") {
		t.Errorf("plain: no warning about shop's non-HBONE sidecar: %q", nsPlanOf(t, plan, "plain").Warnings)
	}
	// Workloads are grouped by owner, Deployment names recovered from the ReplicaSet.
	shop := nsPlanOf(t, plan, "shop")
	want := []Workload{{Kind: "Deployment", Name: "cart", Pods: 1, Sidecars: 1, HBONE: 1}, {Kind: "Pod", Name: "debug", Pods: 1}, {Kind: "StatefulSet", Name: "orders", Pods: 1, Sidecars: 1}}
	if !slices.Equal(shop.Workloads, want) {
		t.Errorf("shop workloads = %+v, want %+v", shop.Workloads, want)
	}
}

func TestBuildPlanBlockers(t *testing.T) {
	s := loadSnapshot(t, "cluster.yaml")
	plan, err := BuildPlan(s, Selection{Names: []string{"legacy", "plain"}}, PlanOptions{})
	if !errors.Is(err, ErrBlocked) {
		t.Fatalf("err = %v, want ErrBlocked", err)
	}
	if !strings.Contains(err.Error(), "legacy (EnvoyFilter lua, PeerAuthentication plaintext, Sidecar default)") || !strings.Contains(err.Error(), "remove them") || strings.Contains(err.Error(), "--") {
		t.Errorf("error does not name the blockers and the fix: %v", err)
	}
	if n := nsPlanOf(t, plan, "legacy"); n.Action != ActionBlocked {
		t.Errorf("legacy action = %s, want blocked", n.Action)
	}
	if n := nsPlanOf(t, plan, "plain"); n.Action != ActionEnroll {
		t.Errorf("plain action = %s, want enroll", n.Action)
	}
	plan, err = BuildPlan(s, Selection{Names: []string{"legacy"}}, PlanOptions{Force: true})
	if err != nil {
		t.Fatalf("forced: %v", err)
	}
	n := nsPlanOf(t, plan, "legacy")
	if n.Action != ActionEnroll || len(n.Blockers) != 3 {
		t.Errorf("forced legacy: action %s, %d blockers; want enroll with the 3 blockers still listed", n.Action, len(n.Blockers))
	}
}

func TestBuildPlanSelection(t *testing.T) {
	s := loadSnapshot(t, "cluster.yaml")
	names := func(p *Plan) []string {
		var out []string
		for _, n := range p.Namespaces {
			out = append(out, n.Name)
		}
		return out
	}
	tests := []struct {
		name    string
		sel     Selection
		want    []string
		skipped []string
		err     error
		errText string
	}{
		{name: "refuses kube-system", sel: Selection{Names: []string{"kube-system"}}, err: ErrRefused, errText: `enroll namespace "kube-system"`},
		{name: "refuses istio-system", sel: Selection{Names: []string{"istio-system"}}, err: ErrRefused},
		{name: "refuses the ztunnel namespace", sel: Selection{Names: []string{"ztunnel-ns"}}, err: ErrRefused, errText: "ztunnel runs in"},
		{name: "missing namespace", sel: Selection{Names: []string{"plain", "nope"}}, err: ErrNotFound, errText: `"nope"`},
		{name: "selector skips system namespaces", sel: Selection{Selector: labels.SelectorFromSet(labels.Set{"team": "checkout"})},
			want: []string{"payments", "shop"}, skipped: []string{"kube-system"}},
		{name: "all injected", sel: Selection{AllInjected: true, Names: []string{"plain"}}, want: []string{"l7", "legacy", "payments", "plain", "shop"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Force keeps these cases about selection: legacy is injected but blocked.
			p, err := BuildPlan(s, tt.sel, PlanOptions{Force: true})
			if tt.err != nil {
				if !errors.Is(err, tt.err) || p != nil {
					t.Fatalf("err = %v (plan %v), want %v and no plan", err, p != nil, tt.err)
				}
				if !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("error %q does not contain %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := names(p); !slices.Equal(got, tt.want) {
				t.Errorf("namespaces = %v, want %v", got, tt.want)
			}
			if got := refNames(p.Skipped); len(tt.skipped) > 0 && (len(got) != 1 || !strings.HasSuffix(got[0], tt.skipped[0])) {
				t.Errorf("skipped = %v, want %v", got, tt.skipped)
			}
		})
	}
}

func TestBuildPlanWaypointAndCRDs(t *testing.T) {
	s := loadSnapshot(t, "cluster.yaml")
	p, err := BuildPlan(s, Selection{Names: []string{"l7", "payments"}}, PlanOptions{Waypoint: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := nsPlanOf(t, p, "l7"); n.WaypointCreate != "waypoint" || hasWarning(n.Warnings, "need a waypoint") {
		t.Errorf("l7: waypointCreate %q warnings %q", n.WaypointCreate, n.Warnings)
	}
	l7 := nsPlanOf(t, p, "l7")
	if len(l7.Blockers) != 0 || len(l7.Moves) != 1 || l7.Moves[0].Original != "api-get-only" || l7.Moves[0].Copy != "api-get-only-waypoint" || l7.Moves[0].Target != "Service/api" {
		t.Errorf("l7 with a waypoint: blockers %v moves %+v", l7.Blockers, l7.Moves)
	}
	if n := nsPlanOf(t, p, "payments"); n.WaypointCreate != "" {
		t.Errorf("payments already has a waypoint, plan creates %q", n.WaypointCreate)
	}
	s.Installed = map[string]bool{}
	s.Resources = nil
	p, err = BuildPlan(s, Selection{Names: []string{"l7"}}, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := nsPlanOf(t, p, "l7"); !hasWarning(n.Warnings, "Istio CRDs are not installed") {
		t.Errorf("no warning that L7 could not be checked: %q", n.Warnings)
	}
}

func TestJournalRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		before  map[string]string
		after   map[string]string // after enrollment (and maybe more edits)
		restore map[string]any
	}{
		{name: "injection label comes back, ambient goes",
			before:  map[string]string{ambient.LabelInjection: "enabled", "team": "a"},
			after:   map[string]string{ambient.LabelDataplaneMode: ambient.DataplaneAmbient, "team": "a"},
			restore: map[string]any{ambient.LabelInjection: "enabled", ambient.LabelDataplaneMode: nil}},
		{name: "revision and waypoint",
			before:  map[string]string{ambient.LabelRev: "canary"},
			after:   map[string]string{ambient.LabelDataplaneMode: ambient.DataplaneAmbient, ambient.LabelUseWaypoint: "waypoint"},
			restore: map[string]any{ambient.LabelRev: "canary", ambient.LabelDataplaneMode: nil, ambient.LabelUseWaypoint: nil}},
		{name: "previous value of the mode label is kept",
			before:  map[string]string{ambient.LabelDataplaneMode: "weird"},
			after:   map[string]string{ambient.LabelDataplaneMode: ambient.DataplaneAmbient},
			restore: map[string]any{ambient.LabelDataplaneMode: "weird"}},
		{name: "already restored: nothing to do", before: map[string]string{ambient.LabelInjection: "enabled"},
			after: map[string]string{ambient.LabelInjection: "enabled"}, restore: map[string]any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newJournal(testNow, tt.before, enrollChanges(tt.before), "")
			back, ok, err := ReadJournal(map[string]string{AnnotationJournal: j.encode()})
			if err != nil || !ok {
				t.Fatalf("read journal: %v %v", ok, err)
			}
			got := back.restoreLabels(tt.after)
			if len(got) != len(tt.restore) {
				t.Fatalf("restore = %v, want %v", got, tt.restore)
			}
			for k, v := range tt.restore {
				if gv, ok := got[k]; !ok || gv != v {
					t.Errorf("restore[%s] = %v, want %v", k, gv, v)
				}
			}
		})
	}
	if _, _, err := ReadJournal(map[string]string{AnnotationJournal: "{"}); err == nil || !strings.Contains(err.Error(), AnnotationJournal) {
		t.Errorf("corrupt journal: err = %v", err)
	}
	if _, _, err := ReadJournal(map[string]string{AnnotationJournal: `{"v":99}`}); err == nil || !strings.Contains(err.Error(), "upgrade") {
		t.Errorf("future journal: err = %v", err)
	}
}

func TestMergePatchCarriesPrecondition(t *testing.T) {
	b, err := mergePatch("42", map[string]string{ambient.LabelDataplaneMode: ambient.DataplaneAmbient}, []string{ambient.LabelInjection}, map[string]any{AnnotationJournal: "j"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"metadata":{"annotations":{"kubectl-ambient.io/enroll-journal":"j"},"labels":{"istio-injection":null,"istio.io/dataplane-mode":"ambient"},"resourceVersion":"42"}}`
	if string(b) != want {
		t.Errorf("patch = %s\nwant    %s", b, want)
	}
}

func TestBuildStatus(t *testing.T) {
	s := loadSnapshot(t, "cluster.yaml")
	st, err := BuildStatus(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]NamespaceStatus{}
	for _, x := range st {
		by[x.Namespace] = x
	}
	if _, ok := by["plain"]; ok {
		t.Errorf("plain (no mesh at all) listed in default status")
	}
	d := by["done"]
	if d.Intent != "ambient" || d.Captured != 1 || d.Pending != 1 || d.Converged {
		t.Errorf("done = %+v, want ambient with 1 captured, 1 pending, not converged", d)
	}
	h := by["halfway"]
	if h.Sidecars != 1 || h.Captured != 1 || h.Converged || !strings.Contains(h.Summary, "awaiting next rollout") {
		t.Errorf("halfway = %+v", h)
	}
	if by["shop"].Intent != "sidecar" || by["shop"].Sidecars != 2 {
		t.Errorf("shop = %+v", by["shop"])
	}
	if _, err := BuildStatus(s, []string{"nope"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing namespace: err = %v", err)
	}
}
