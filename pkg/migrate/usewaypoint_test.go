package migrate

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/fixtures"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"
)

// useWaypointReaders are the only functions in product code that may name
// istio.io/use-waypoint: they read it, put it in a message or a journal
// record, or (labelUseWaypoint) write it after checking the waypoint is
// Programmed. A new function naming the label fails this test, so a second
// write path cannot appear unreviewed.
var useWaypointReaders = map[string]bool{
	"waypoint.ReadInventory":            true, // list selector
	"waypoint.target":                   true, // reads labels
	"waypoint.Delete":                   true, // error message
	"migrate.labelUseWaypoint":          true, // THE write, gated on Programmed
	"migrate.enrollL7":                  true, // journal record of what was added
	"migrate.<package>":                 true, // managedLabels: journaled for restore
	"migrate.L7Steps":                   true, // describes the step for --dry-run
	"meshchecks.danglingWaypointLabels": true, // list selector
	"migrate.checkProgrammed":           true, // THE gate (error messages); labelUseWaypoint and unenroll's restore call it
	"migrate.restoredWaypoint":          true, // reads the journaled value unenroll restores; patchUnenrollLabels gates on it
	"migrate.PlanNamespaceUnenroll":     true, // describes the wait step for --dry-run
	"migrate.runUnenrollStep":           true, // error message of the wait step
}

func TestOnlyOneGatedPathWritesUseWaypoint(t *testing.T) {
	root := filepath.Join(fixtures.RepoRoot(), "pkg")
	found := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		var fn string
		check := func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if ok && sel.Sel.Name == "LabelUseWaypoint" {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "ambient" {
					key := f.Name.Name + "." + fn
					found[key] = true
					if !useWaypointReaders[key] {
						t.Errorf("%s: %s names istio.io/use-waypoint; only labelUseWaypoint may write it (after checking Programmed): route the write through it or add a reader here with a reason",
							fset.Position(sel.Pos()), key)
					}
				}
			}
			return true
		}
		for _, decl := range f.Decls {
			fn = "<package>"
			if fd, ok := decl.(*ast.FuncDecl); ok {
				fn = fd.Name.Name
			}
			ast.Inspect(decl, check)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !found["migrate.labelUseWaypoint"] {
		t.Error("labelUseWaypoint no longer names the label: update this test")
	}
}

// TestLabelUseWaypointGate: missing, not-a-waypoint and unprogrammed
// Gateways are refused without any namespace write; a Programmed one is labelled.
func TestLabelUseWaypointGate(t *testing.T) {
	gvr := schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}
	gw := func(name, class, programmed string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
			"metadata": map[string]any{"name": name, "namespace": "shop", "generation": int64(1)},
			"spec":     map[string]any{"gatewayClassName": class}}}
		if programmed != "" {
			u.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Programmed", "status": programmed, "reason": "x", "observedGeneration": int64(1)}}}
		}
		return u
	}
	tests := []struct {
		name string
		obj  *unstructured.Unstructured
		ok   bool
		why  string
	}{
		{"missing", nil, false, "not found"},
		{"another class", gw("waypoint", "istio", "True"), false, "not a waypoint"},
		{"no status yet", gw("waypoint", ambient.WaypointClass, ""), false, "Programmed=Unknown"},
		{"programmed false", gw("waypoint", ambient.WaypointClass, "False"), false, "Programmed=False"},
		{"programmed", gw("waypoint", ambient.WaypointClass, "True"), true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kc := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
			dc := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "GatewayList"})
			if tt.obj != nil {
				if _, err := dc.Resource(gvr).Namespace("shop").Create(context.Background(), tt.obj, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			err := labelUseWaypoint(context.Background(), kc, dc, gvr, "shop", "waypoint")
			patched := false
			for _, a := range kc.Actions() {
				if _, ok := a.(k8stesting.PatchAction); ok {
					patched = true
				}
			}
			if tt.ok {
				if err != nil || !patched {
					t.Fatalf("programmed waypoint: err %v, patched %v", err, patched)
				}
				return
			}
			if !errors.Is(err, ErrWaypointNotReady) || patched || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("err %v (want ErrWaypointNotReady), namespace patched %v", err, patched)
			}
		})
	}
}
