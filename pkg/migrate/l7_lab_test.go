package migrate_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubelab"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/sim/waypointsim"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/migrate"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/waypoint"
)

var (
	gvrAP = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "authorizationpolicies"}
	gvrVS = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	gvrDR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}
	gvrGW = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}
)

// startWaypoints runs the test-only istiod stand-in for waypoints until the test ends.
func startWaypoints(t *testing.T, lab *kubelab.Lab, opts waypointsim.Options) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := waypointsim.New(lab.Clients.Kube, lab.Clients.Dynamic, gvrGW, opts)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) { return c.HasSynced(), nil }); err != nil {
		t.Fatalf("waypoint stand-in did not sync: %v", err)
	}
}

// l7Namespace builds a sidecar namespace with a Service-fronted sidecar
// workload, selector-based and namespace-wide L7 AuthorizationPolicies
// (methods, paths, headers), a VirtualService and a DestinationRule with
// subsets.
func l7Namespace(t *testing.T, lab *kubelab.Lab) string {
	t.Helper()
	ns := lab.Namespace(t, map[string]string{ambient.LabelInjection: "enabled"})
	deployment(t, lab, ns, "api", 2, true, true)
	writeAndApply(t, lab, ns, `apiVersion: v1
kind: Service
metadata: {name: api}
spec: {selector: {app: api}, ports: [{name: http, port: 8080, targetPort: 8080}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api-read, labels: {team: shop}, annotations: {owner: alice}}
spec:
  selector: {matchLabels: {app: api}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/front/sa/web"]}}]
    to: [{operation: {methods: [GET, HEAD], paths: ["/api/*"]}}]
  - to: [{operation: {methods: [POST], paths: ["/api/orders"]}}]
    when: [{key: "request.headers[x-role]", values: [admin]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-debug}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/debug/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: l4-peers}
spec:
  rules:
  - from: [{source: {namespaces: [front]}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api-routes}
spec:
  hosts: [api]
  http: [{route: [{destination: {host: api, subset: v1}, weight: 90}, {destination: {host: api, subset: v2}, weight: 10}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api-subsets}
spec:
  host: api
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
`)
	waitPods(t, lab, ns, 2)
	return ns
}

// objState is what a user compares: labels, annotations and spec.
type objState struct {
	Labels      map[string]string
	Annotations map[string]string
	Spec        any
}

// cluster reads every object the migration may touch in ns.
func cluster(t *testing.T, lab *kubelab.Lab, ns string) map[string]objState {
	t.Helper()
	out := map[string]objState{}
	for kind, gvr := range map[string]schema.GroupVersionResource{"AuthorizationPolicy": gvrAP, "VirtualService": gvrVS, "DestinationRule": gvrDR, "Gateway": gvrGW} {
		l, err := lab.Clients.Dynamic.Resource(gvr).Namespace(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range l.Items {
			out[kind+"/"+u.GetName()] = objState{Labels: u.GetLabels(), Annotations: u.GetAnnotations(), Spec: u.Object["spec"]}
		}
	}
	n := getNS(t, lab, ns)
	lbl := map[string]string{}
	for k, v := range n.Labels {
		if k != corev1.LabelMetadataName {
			lbl[k] = v
		}
	}
	out["Namespace/"+ns] = objState{Labels: lbl, Annotations: n.Annotations}
	return out
}

func diffState(t *testing.T, what string, got, want map[string]objState) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: %s missing", what, k)
			continue
		}
		if !reflect.DeepEqual(g.Labels, w.Labels) && (len(g.Labels) != 0 || len(w.Labels) != 0) {
			t.Errorf("%s: %s labels %v, want %v", what, k, g.Labels, w.Labels)
		}
		if !reflect.DeepEqual(g.Annotations, w.Annotations) && (len(g.Annotations) != 0 || len(w.Annotations) != 0) {
			t.Errorf("%s: %s annotations %v, want %v", what, k, g.Annotations, w.Annotations)
		}
		if !reflect.DeepEqual(g.Spec, w.Spec) {
			t.Errorf("%s: %s spec\n got %v\nwant %v", what, k, g.Spec, w.Spec)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s left behind", what, k)
		}
	}
}

func enrollL7(ctx context.Context, lab *kubelab.Lab, ns string, obs migrate.Observer) (*migrate.EnrollReport, error) {
	return migrate.Enroll(ctx, lab.Clients, migrate.EnrollConfig{
		Selection: migrate.Selection{Names: []string{ns}},
		Plan:      migrate.PlanOptions{Waypoint: true},
		Verify:    true, Timeout: 30 * time.Second, Observer: obs,
	})
}

// assertMigrated checks the end state: waypoint Programmed, use-waypoint
// and dataplane labels, injection gone, copies with the originals' rules
// and targetRefs, originals deleted, VS and DR untouched.
func assertMigrated(t *testing.T, lab *kubelab.Lab, ns string, before map[string]objState) {
	t.Helper()
	ctx := context.Background()
	n := getNS(t, lab, ns)
	if n.Labels[ambient.LabelUseWaypoint] != "waypoint" || n.Labels[ambient.LabelDataplaneMode] != ambient.DataplaneAmbient || n.Labels[ambient.LabelInjection] != "" {
		t.Errorf("namespace labels after enroll: %v", n.Labels)
	}
	gw, err := lab.Clients.Dynamic.Resource(gvrGW).Namespace(ns).Get(ctx, "waypoint", metav1.GetOptions{})
	if err != nil || !waypoint.IsProgrammed(gw) {
		t.Fatalf("waypoint not Programmed after enroll: %v", err)
	}
	after := cluster(t, lab, ns)
	for _, orig := range []string{"api-read", "deny-debug"} {
		if _, ok := after["AuthorizationPolicy/"+orig]; ok {
			t.Errorf("selector-based L7 original %s still there (ztunnel would enforce it as DENY)", orig)
		}
		cp, ok := after["AuthorizationPolicy/"+orig+migrate.CopySuffix]
		if !ok {
			t.Errorf("copy of %s missing", orig)
			continue
		}
		want := before["AuthorizationPolicy/"+orig].Spec.(map[string]any)
		got := cp.Spec.(map[string]any)
		for _, f := range []string{"rules", "action"} {
			if !reflect.DeepEqual(got[f], want[f]) {
				t.Errorf("copy of %s: %s %v, want %v", orig, f, got[f], want[f])
			}
		}
		if _, has := got["selector"]; has {
			t.Errorf("copy of %s keeps a selector", orig)
		}
		if cp.Annotations[migrate.AnnotationCopiedFrom] != orig || cp.Labels[migrate.LabelManagedBy] != migrate.ManagedByValue {
			t.Errorf("copy of %s does not say where it came from: %v %v", orig, cp.Labels, cp.Annotations)
		}
	}
	refs := after["AuthorizationPolicy/api-read-waypoint"].Spec.(map[string]any)["targetRefs"]
	if !reflect.DeepEqual(refs, []any{map[string]any{"group": "", "kind": "Service", "name": "api"}}) {
		t.Errorf("api-read copy targetRefs %v, want the Service api", refs)
	}
	refs = after["AuthorizationPolicy/deny-debug-waypoint"].Spec.(map[string]any)["targetRefs"]
	if !reflect.DeepEqual(refs, []any{map[string]any{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "waypoint"}}) {
		t.Errorf("deny-debug copy targetRefs %v, want the waypoint Gateway", refs)
	}
	for _, k := range []string{"AuthorizationPolicy/l4-peers", "VirtualService/api-routes", "DestinationRule/api-subsets"} {
		if !reflect.DeepEqual(after[k], before[k]) {
			t.Errorf("%s changed by enroll: %+v, was %+v", k, after[k], before[k])
		}
	}
}

// TestEnrollL7Order migrates a sidecar namespace with L7 policy through a
// waypoint and checks the order of every step against the cluster at the
// moment it is taken, then unenrolls and compares every object with the
// state before, field by field.
func TestEnrollL7Order(t *testing.T) {
	lab := kubelab.Get(t)
	installCRDs(t, lab)
	startCNI(t, lab)
	startWaypoints(t, lab, waypointsim.Options{Delay: 300 * time.Millisecond})
	ns := l7Namespace(t, lab)
	before := cluster(t, lab, ns)
	ctx := context.Background()

	// --dry-run prints every step and every object, and writes nothing.
	out, errOut, err := run(t, lab.Kubeconfig, "enroll", "namespace", ns, "--waypoint", "--dry-run")
	if err != nil {
		t.Fatalf("dry-run: %v\n%s", err, errOut)
	}
	for _, want := range []string{"steps, in Istio's migration order", "1. create waypoint Gateway waypoint", "create AuthorizationPolicy api-read-waypoint (copy of api-read, targetRefs Service/api)",
		"label namespace istio.io/use-waypoint=waypoint (only once the waypoint is Programmed)", "delete the selector-based originals api-read, deny-debug", "name: deny-debug-waypoint", "kind: Gateway"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, out)
		}
	}
	diffState(t, "after dry-run", cluster(t, lab, ns), before)

	var mu sync.Mutex
	var order []string
	var problems []string
	obs := func(e migrate.Event) {
		if e.Namespace != ns {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		tag := string(e.Step)
		if e.Step == migrate.StepJournaled || e.Step == migrate.StepCopyCreated || e.Step == migrate.StepOriginalDeleted {
			tag += ":" + e.Message
		}
		order = append(order, tag)
		// The cluster at the moment of the step.
		n, _ := lab.Clients.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		j, _, _ := migrate.ReadJournal(n.Annotations)
		if e.Step == migrate.StepJournaled && (j == nil || j.Phase != e.Message) {
			problems = append(problems, "phase "+e.Message+" emitted before it was journaled")
		}
		if _, has := n.Labels[ambient.LabelUseWaypoint]; has {
			gw, err := lab.Clients.Dynamic.Resource(gvrGW).Namespace(ns).Get(ctx, "waypoint", metav1.GetOptions{})
			if err != nil || !waypoint.IsProgrammed(gw) {
				problems = append(problems, "use-waypoint set while the waypoint is not Programmed at "+tag)
			}
		}
		if n.Labels[ambient.LabelDataplaneMode] == ambient.DataplaneAmbient && n.Labels[ambient.LabelUseWaypoint] == "" {
			problems = append(problems, "dataplane-mode set before use-waypoint at "+tag)
		}
	}
	rep, err := enrollL7(ctx, lab, ns, obs)
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	if len(rep.Plan.Namespaces[0].Moves) != 2 {
		t.Errorf("plan moves %+v", rep.Plan.Namespaces[0].Moves)
	}
	for _, p := range problems {
		t.Error(p)
	}
	want := []string{"journaled:waypoint", "waypoint-created", "journaled:copies", "copy-created:api-read-waypoint", "copy-created:deny-debug-waypoint",
		"journaled:use-waypoint", "waypoint-ready", "journaled:dataplane", "before-patch", "patched", "journaled:delete-originals",
		"original-deleted:api-read", "original-deleted:deny-debug"}
	var got []string
	for _, s := range order {
		if slices.Contains(want, s) {
			got = append(got, s)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("step order\n got %v\nwant %v", got, want)
	}
	assertMigrated(t, lab, ns, before)

	// A second run converges: nothing to do, nothing changes.
	mid := cluster(t, lab, ns)
	if _, err := enrollL7(ctx, lab, ns, nil); err != nil {
		t.Fatalf("second enroll: %v", err)
	}
	diffState(t, "second enroll", cluster(t, lab, ns), mid)

	// The unenroll dry run lists the L7 restore in order and writes nothing;
	// the real run then takes exactly those steps and restores every
	// object exactly.
	dry := unenrollJSON(t, lab, ns, "--dry-run")
	if dry.Outcome != migrate.OutcomeWouldUnenroll {
		t.Errorf("dry-run outcome %q", dry.Outcome)
	}
	wantSteps := []string{"restore AuthorizationPolicy api-read", "restore AuthorizationPolicy deny-debug", "label Namespace " + ns,
		"delete AuthorizationPolicy api-read-waypoint", "delete AuthorizationPolicy deny-debug-waypoint", "delete Gateway waypoint", "unjournal Namespace " + ns}
	if got := stepHeads(dry.Steps); !slices.Equal(got, wantSteps) {
		t.Errorf("dry-run steps\n got %v\nwant %v", got, wantSteps)
	}
	if l := dry.Steps[2].Detail; !strings.Contains(l, ambient.LabelUseWaypoint+"-") || !strings.Contains(l, ambient.LabelInjection+"=enabled") || !strings.Contains(l, ambient.LabelDataplaneMode+"-") {
		t.Errorf("dry-run label step does not say which labels change: %q", l)
	}
	diffState(t, "after unenroll dry-run", cluster(t, lab, ns), mid)
	table, _, err := run(t, lab.Kubeconfig, "unenroll", "namespace", ns, "--dry-run")
	if err != nil || !strings.Contains(table, "steps, in the order unenroll takes them") || !strings.Contains(table, "6. delete Gateway waypoint (the waypoint enroll created)") {
		t.Errorf("dry-run table: %v\n%s", err, table)
	}
	taken := unenrollJSON(t, lab, ns)
	if !reflect.DeepEqual(taken.Steps, dry.Steps) {
		t.Errorf("unenroll took other steps than its dry run listed\n took %+v\nlisted %+v", taken.Steps, dry.Steps)
	}
	diffState(t, "after unenroll", cluster(t, lab, ns), before)
}

// unenrollJSON runs the unenroll command on one namespace with -o json and
// returns its result.
func unenrollJSON(t *testing.T, lab *kubelab.Lab, ns string, args ...string) migrate.Result {
	t.Helper()
	out, errOut, err := run(t, lab.Kubeconfig, append([]string{"unenroll", "namespace", ns, "-o", "json"}, args...)...)
	if err != nil {
		t.Fatalf("unenroll %v: %v\n%s", args, err, errOut)
	}
	var rep struct{ Results []migrate.Result }
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Results) != 1 {
		t.Fatalf("unenroll %v -o json: %v\n%s", args, err, out)
	}
	return rep.Results[0]
}

// stepHeads is each step without its detail.
func stepHeads(steps []migrate.UnenrollStep) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Action + " " + s.Kind + " " + s.Name
	}
	return out
}

// TestEnrollL7Interrupted cancels the enrollment at each journaled phase
// (and fails one with an API error), re-runs it, checks the end state, and
// unenrolls back to the state before.
func TestEnrollL7Interrupted(t *testing.T) {
	lab := kubelab.Get(t)
	installCRDs(t, lab)
	startCNI(t, lab)
	startWaypoints(t, lab, waypointsim.Options{})
	ctx := context.Background()
	for _, phase := range []string{migrate.PhaseWaypoint, migrate.PhaseCopies, migrate.PhaseUseWaypoint, migrate.PhaseDataplane, migrate.PhaseDeleteOriginals} {
		t.Run("cancel at "+phase, func(t *testing.T) {
			ns := l7Namespace(t, lab)
			before := cluster(t, lab, ns)
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			_, err := enrollL7(cctx, lab, ns, func(e migrate.Event) {
				if e.Step == migrate.StepJournaled && e.Message == phase {
					cancel()
				}
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled enroll: %v", err)
			}
			n := getNS(t, lab, ns)
			if w := n.Labels[ambient.LabelUseWaypoint]; w != "" {
				gw, err := lab.Clients.Dynamic.Resource(gvrGW).Namespace(ns).Get(ctx, w, metav1.GetOptions{})
				if err != nil || !waypoint.IsProgrammed(gw) {
					t.Errorf("interrupted at %s: use-waypoint set to a waypoint that is not Programmed", phase)
				}
			}
			if _, err := enrollL7(ctx, lab, ns, nil); err != nil {
				t.Fatalf("re-run after cancel at %s: %v", phase, err)
			}
			assertMigrated(t, lab, ns, before)
			if _, err := migrate.UnenrollNamespaces(ctx, lab.Clients, migrate.UnenrollConfig{Selection: migrate.UnenrollSelection{Names: []string{ns}}}); err != nil {
				t.Fatalf("unenroll: %v", err)
			}
			diffState(t, "after unenroll", cluster(t, lab, ns), before)
		})
	}
	t.Run("copy name taken then freed", func(t *testing.T) {
		ns := l7Namespace(t, lab)
		before := cluster(t, lab, ns)
		// A policy someone else owns under the copy's name: the create fails
		// with AlreadyExists and enroll must stop before use-waypoint.
		squat := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
			"metadata": map[string]any{"name": "deny-debug-waypoint", "namespace": ns}, "spec": map[string]any{}}}
		if _, err := lab.Clients.Dynamic.Resource(gvrAP).Namespace(ns).Create(ctx, squat, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The plan sees the name taken and blocks, naming the field.
		_, err := enrollL7(ctx, lab, ns, nil)
		if !errors.Is(err, migrate.ErrBlocked) {
			t.Fatalf("enroll with the copy's name taken: %v", err)
		}
		if n := getNS(t, lab, ns); n.Labels[ambient.LabelUseWaypoint] != "" || n.Labels[ambient.LabelDataplaneMode] != "" {
			t.Errorf("blocked enroll labelled the namespace: %v", n.Labels)
		}
		if err := lab.Clients.Dynamic.Resource(gvrAP).Namespace(ns).Delete(ctx, "deny-debug-waypoint", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := enrollL7(ctx, lab, ns, nil); err != nil {
			t.Fatalf("re-run: %v", err)
		}
		assertMigrated(t, lab, ns, before)
		if _, err := migrate.UnenrollNamespaces(ctx, lab.Clients, migrate.UnenrollConfig{Selection: migrate.UnenrollSelection{Names: []string{ns}}}); err != nil {
			t.Fatalf("unenroll: %v", err)
		}
		diffState(t, "after unenroll", cluster(t, lab, ns), before)
	})
}

// TestEnrollL7NeverProgrammed: with an istiod that never programs the
// waypoint, enroll fails at the waypoint and nothing uses it.
func TestEnrollL7NeverProgrammed(t *testing.T) {
	lab := kubelab.Get(t)
	installCRDs(t, lab)
	startCNI(t, lab)
	startWaypoints(t, lab, waypointsim.Options{NeverProgram: true})
	ns := l7Namespace(t, lab)
	ctx := context.Background()
	_, err := migrate.Enroll(ctx, lab.Clients, migrate.EnrollConfig{
		Selection: migrate.Selection{Names: []string{ns}}, Plan: migrate.PlanOptions{Waypoint: true}, Timeout: 2 * time.Second})
	if !errors.Is(err, waypoint.ErrNotProgrammed) {
		t.Fatalf("enroll against an unprogrammed waypoint: %v", err)
	}
	n := getNS(t, lab, ns)
	if _, has := n.Labels[ambient.LabelUseWaypoint]; has {
		t.Errorf("use-waypoint set to an unprogrammed waypoint")
	}
	if n.Labels[ambient.LabelDataplaneMode] != "" || n.Labels[ambient.LabelInjection] != "enabled" {
		t.Errorf("labels changed though the waypoint never came up: %v", n.Labels)
	}
	l, _ := lab.Clients.Dynamic.Resource(gvrAP).Namespace(ns).List(ctx, metav1.ListOptions{})
	if len(l.Items) != 3 {
		t.Errorf("policies: %d, want the 3 originals and no copy", len(l.Items))
	}
}

// TestEnrollL7LargeJournal: when the moved originals do not fit the
// journal's annotation budget (128 KiB), enroll keeps them in a ConfigMap
// the journal names; unenroll's dry run lists that ConfigMap's deletion,
// and the real run restores every original from it and removes it.
func TestEnrollL7LargeJournal(t *testing.T) {
	lab := kubelab.Get(t)
	installCRDs(t, lab)
	startCNI(t, lab)
	startWaypoints(t, lab, waypointsim.Options{})
	ns := l7Namespace(t, lab)
	ctx := context.Background()
	paths := make([]any, 3000)
	for i := range paths {
		paths[i] = fmt.Sprintf("/archive/%04d/%s", i, strings.Repeat("x", 40))
	}
	big := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
		"metadata": map[string]any{"name": "deny-archive"},
		"spec":     map[string]any{"action": "DENY", "rules": []any{map[string]any{"to": []any{map[string]any{"operation": map[string]any{"paths": paths}}}}}}}}
	if _, err := lab.Clients.Dynamic.Resource(gvrAP).Namespace(ns).Create(ctx, big, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := cluster(t, lab, ns)

	if _, err := enrollL7(ctx, lab, ns, nil); err != nil {
		t.Fatalf("enroll: %v", err)
	}
	n := getNS(t, lab, ns)
	if l := len(n.Annotations[migrate.AnnotationJournal]); l > 128<<10 {
		t.Errorf("journal annotation is %d bytes, over the 128 KiB budget", l)
	}
	j, _, err := migrate.ReadJournal(n.Annotations)
	if err != nil || j.OriginalsConfigMap != migrate.OriginalsConfigMap || len(j.Moves) != 3 {
		t.Fatalf("journal %+v (%v): want 3 moves with the originals in ConfigMap %s", j, err, migrate.OriginalsConfigMap)
	}
	for _, m := range j.Moves {
		if m.Object != nil {
			t.Errorf("original %s still kept in the annotation", m.Original)
		}
	}
	cm, err := lab.Clients.Kube.CoreV1().ConfigMaps(ns).Get(ctx, migrate.OriginalsConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("originals ConfigMap: %v", err)
	}
	if data := cm.Data["originals.json"]; len(data) <= 128<<10 || !strings.Contains(data, "/archive/2999/") || cm.Labels[migrate.LabelManagedBy] != migrate.ManagedByValue {
		t.Errorf("originals ConfigMap holds %d bytes, labels %v: want the whole deny-archive original, labelled as ours", len(data), cm.Labels)
	}
	if _, err := lab.Clients.Dynamic.Resource(gvrAP).Namespace(ns).Get(ctx, "deny-archive", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("original deny-archive not deleted after enroll: %v", err)
	}

	dry := unenrollJSON(t, lab, ns, "--dry-run")
	heads := stepHeads(dry.Steps)
	iCM := slices.Index(heads, "delete ConfigMap "+migrate.OriginalsConfigMap)
	if iCM < 0 || iCM != len(heads)-2 || !slices.Contains(heads, "restore AuthorizationPolicy deny-archive") {
		t.Errorf("dry-run steps %v: want deny-archive restored and the ConfigMap deleted just before the journal", heads)
	}
	taken := unenrollJSON(t, lab, ns)
	if !reflect.DeepEqual(taken.Steps, dry.Steps) {
		t.Errorf("unenroll took other steps than its dry run listed\n took %+v\nlisted %+v", taken.Steps, dry.Steps)
	}
	diffState(t, "after unenroll", cluster(t, lab, ns), before)
	if _, err := lab.Clients.Kube.CoreV1().ConfigMaps(ns).Get(ctx, migrate.OriginalsConfigMap, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("originals ConfigMap left behind: %v", err)
	}
}

// TestUnenrollRestoredUseWaypointGate: a journal whose previous
// istio.io/use-waypoint names the user's own waypoint restores it only once
// that waypoint is Programmed. The dry run lists the wait; with no
// controller programming it, unenroll stops with the reason and writes
// nothing; once it is Programmed, unenroll restores the label with the
// steps the dry run listed.
func TestUnenrollRestoredUseWaypointGate(t *testing.T) {
	lab := kubelab.Get(t)
	installCRDs(t, lab)
	ctx := context.Background()
	ns := lab.Namespace(t, map[string]string{ambient.LabelDataplaneMode: ambient.DataplaneAmbient})
	legacy, err := waypoint.Build(gvrGW.GroupVersion(), ns, "legacy", "namespace")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Clients.Dynamic.Resource(gvrGW).Namespace(ns).Create(ctx, legacy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	j := `{"v":1,"time":"2026-01-01T00:00:00Z","previousLabels":{"` + ambient.LabelDataplaneMode + `":null,"` + ambient.LabelInjection + `":null,"` +
		ambient.LabelRev + `":null,"` + ambient.LabelUseWaypoint + `":"legacy"},"added":{"` + ambient.LabelDataplaneMode + `":"ambient"}}`
	n := getNS(t, lab, ns)
	n.Annotations = map[string]string{migrate.AnnotationJournal: j}
	if _, err := lab.Clients.Kube.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := cluster(t, lab, ns)
	opts := migrate.UnenrollOptions{GatewayGVR: gvrGW, WaypointTimeout: 2 * time.Second}

	dryOpts := opts
	dryOpts.DryRun = true
	dry, err := migrate.Unenroll(ctx, lab.Clients.Kube, lab.Clients.Dynamic, []string{ns}, dryOpts)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if got, want := stepHeads(dry[0].Steps), []string{"wait Gateway legacy", "label Namespace " + ns}; !slices.Equal(got, want) {
		t.Fatalf("dry-run steps %v, want %v", got, want)
	}
	if d := dry[0].Steps[0].Detail; !strings.Contains(d, "Programmed=Unknown (Pending) now") {
		t.Errorf("dry-run wait step does not say the waypoint is not Programmed now: %q", d)
	}

	res, err := migrate.Unenroll(ctx, lab.Clients.Kube, lab.Clients.Dynamic, []string{ns}, opts)
	if err == nil || res[0].Outcome != migrate.OutcomeFailed || !strings.Contains(res[0].Error, migrate.ErrWaypointNotReady.Error()) ||
		!strings.Contains(res[0].Error, "legacy") {
		t.Fatalf("unenroll with the waypoint not Programmed: %+v, %v; want it stopped naming the waypoint", res, err)
	}
	if !errors.Is(err, migrate.ErrWaypointNotReady) || !errors.Is(err, waypoint.ErrNotProgrammed) {
		t.Errorf("unenroll's error %v does not carry the conditions the command maps to --timeout", err)
	}
	diffState(t, "after the refused unenroll", cluster(t, lab, ns), before)

	startWaypoints(t, lab, waypointsim.Options{Delay: 300 * time.Millisecond})
	opts.WaypointTimeout = 30 * time.Second
	res, err = migrate.Unenroll(ctx, lab.Clients.Kube, lab.Clients.Dynamic, []string{ns}, opts)
	if err != nil {
		t.Fatalf("unenroll once the waypoint comes up: %v", err)
	}
	if got, want := stepHeads(res[0].Steps), stepHeads(dry[0].Steps); !slices.Equal(got, want) {
		t.Errorf("steps taken %v, listed %v", got, want)
	}
	n = getNS(t, lab, ns)
	if n.Labels[ambient.LabelUseWaypoint] != "legacy" || n.Labels[ambient.LabelDataplaneMode] != "" || n.Annotations[migrate.AnnotationJournal] != "" {
		t.Errorf("namespace after unenroll: labels %v, annotations %v; want use-waypoint=legacy back, no ambient label, no journal", n.Labels, n.Annotations)
	}
	gw, err := lab.Clients.Dynamic.Resource(gvrGW).Namespace(ns).Get(ctx, "legacy", metav1.GetOptions{})
	if err != nil || !waypoint.IsProgrammed(gw) {
		t.Errorf("use-waypoint restored to a waypoint that is not Programmed: %v", err)
	}
}
