package cmd

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"

	"github.com/spf13/pflag"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	fakediscovery "k8s.io/client-go/discovery/fake"

	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/fixtures"
	"github.com/kubectl-ambient/kubectl-ambient/internal/testing/kubefake"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/install"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/migrate"
)

// These tests run each command's Complete/Validate/Run against the fake
// factory: no lab, no API server. The lab tests (test/e2e, pkg/*/lab_test.go)
// prove the API server's side.

func runFake(t *testing.T, f *kubefake.Factory, args ...string) (string, string, error) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	root := newRootCmd(genericclioptions.NewConfigFlags(true), f, streams)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

func ns(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, ResourceVersion: "1"}}
}

func pod(namespace, name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
}

func TestFakeEnrollDryRunPlans(t *testing.T) {
	f := kubefake.New([]runtime.Object{ns("shop", map[string]string{"istio-injection": "enabled"}), pod("shop", "web")}, nil)
	out, _, err := runFake(t, f, "enroll", "namespace", "shop", "--dry-run", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rep migrate.EnrollReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !rep.DryRun || rep.Plan == nil || len(rep.Plan.Namespaces) != 1 || rep.Plan.Namespaces[0].Name != "shop" || rep.Results != nil {
		t.Fatalf("report = %+v", rep)
	}
	for _, a := range f.Kube.Actions() {
		if a.GetVerb() == "patch" {
			t.Errorf("--dry-run patched %s", a.GetResource().Resource)
		}
	}
}

func TestFakeEnrollApplies(t *testing.T) {
	f := kubefake.New([]runtime.Object{ns("shop", nil), pod("shop", "web")}, nil).AllowAll()
	out, errOut, err := runFake(t, f, "enroll", "namespace", "shop", "--verify=false")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	if !strings.Contains(out, "NAMESPACE") || !strings.Contains(out, "shop") {
		t.Errorf("no plan/result table:\n%s", out)
	}
	got, err := f.Kube.CoreV1().Namespaces().Get(t.Context(), "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels[ambient.LabelDataplaneMode] != ambient.DataplaneAmbient || got.Annotations[migrate.AnnotationJournal] == "" {
		t.Errorf("namespace after enroll: labels %v annotations %v", got.Labels, got.Annotations)
	}
}

func TestFakeEnrollNoneMatchedNamesTheFlag(t *testing.T) {
	f := kubefake.New([]runtime.Object{ns("shop", nil)}, nil)
	_, _, err := runFake(t, f, "enroll", "namespace", "-l", "team=none")
	if !errors.Is(err, migrate.ErrNoneMatched) || !strings.Contains(err.Error(), "check --selector") {
		t.Fatalf("err = %v", err)
	}
}

// TestFakeUnenrollDryRunTable: the table lists each namespace's steps,
// numbered, in the order unenroll takes them.
func TestFakeUnenrollDryRunTable(t *testing.T) {
	f := kubefake.New([]runtime.Object{ns("mesh", map[string]string{ambient.LabelDataplaneMode: ambient.DataplaneAmbient})}, nil).AllowAll()
	out, errOut, err := runFake(t, f, "unenroll", "namespace", "mesh", "--dry-run")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	for _, want := range []string{"mesh: steps, in the order unenroll takes them:", "1. label Namespace mesh (" + ambient.LabelDataplaneMode + "-; no journal found", "1 step(s), listed below"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run table lacks %q:\n%s", want, out)
		}
	}
}

func TestFakeUnenrollAll(t *testing.T) {
	f := kubefake.New([]runtime.Object{ns("mesh", map[string]string{ambient.LabelDataplaneMode: ambient.DataplaneAmbient}), ns("other", nil)}, nil).AllowAll()
	out, errOut, err := runFake(t, f, "unenroll", "namespace", "--all", "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	var rep struct{ Results []migrate.Result }
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Results) != 1 || rep.Results[0].Namespace != "mesh" {
		t.Fatalf("results = %+v (%v)\n%s", rep, err, out)
	}
	got, _ := f.Kube.CoreV1().Namespaces().Get(t.Context(), "mesh", metav1.GetOptions{})
	if _, ok := got.Labels[ambient.LabelDataplaneMode]; ok {
		t.Errorf("label still set: %v", got.Labels)
	}
	// Nothing matched: a note on stderr, success.
	_, errOut, err = runFake(t, kubefake.New(nil, nil), "unenroll", "namespace", "--all")
	if err != nil || !strings.Contains(errOut, "nothing to do") {
		t.Errorf("err = %v, stderr %q", err, errOut)
	}
	// A missing named namespace is ErrNotFound, from the pure plan step.
	if _, _, err := runFake(t, kubefake.New(nil, nil), "unenroll", "namespace", "gone"); !errors.Is(err, migrate.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}

func TestFakeVersionReadsIstiod(t *testing.T) {
	istiod := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "istiod",
		Labels: map[string]string{"app": "istiod", "app.kubernetes.io/version": "1.28.0"}}}
	f := kubefake.New([]runtime.Object{istiod}, nil)
	f.Kube.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{GitVersion: "v1.34.1"}
	out, _, err := runFake(t, f, "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rep VersionReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Server == nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Server.Kubernetes != "v1.34.1" || rep.Server.Istio != "1.28.0" || rep.Server.Host != kubefake.Host {
		t.Errorf("server = %+v", rep.Server)
	}
}

func TestFakeInstallAndUpgradeDryRun(t *testing.T) {
	for _, verb := range []string{"install", "upgrade"} {
		t.Run(verb, func(t *testing.T) {
			f := kubefake.New(nil, nil)
			out, _, err := runFake(t, f, verb, "--dry-run", "--charts", fixtures.Path("charts"), "--platform", "kind")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "# Component ztunnel") {
				t.Errorf("no rendered ztunnel:\n%.300s", out)
			}
			if len(f.Kube.Actions()) != 0 {
				t.Errorf("--dry-run called the cluster: %v", f.Kube.Actions())
			}
		})
	}
}

func TestFakeUninstallRefusesWhileEnrolled(t *testing.T) {
	f := kubefake.New([]runtime.Object{ns("shop", map[string]string{ambient.LabelDataplaneMode: ambient.DataplaneAmbient})}, nil)
	_, _, err := runFake(t, f, "uninstall")
	if !errors.Is(err, install.ErrAmbientInUse) || !strings.Contains(err.Error(), "shop") || !strings.Contains(err.Error(), "pass --force to uninstall anyway") {
		t.Fatalf("err = %v, want ErrAmbientInUse naming shop and --force", err)
	}
}

func TestFakeCheckAndPrecheckReport(t *testing.T) {
	for _, args := range [][]string{
		{"check", "--cert-sample", "0", "-o", "json"},
		{"precheck", "--platform", "kind", "-o", "json"},
	} {
		t.Run(args[0], func(t *testing.T) {
			f := kubefake.New([]runtime.Object{ns("default", nil)}, nil).AllowAll()
			f.Kube.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{GitVersion: "v1.34.1", Major: "1", Minor: "34"}
			out, _, err := runFake(t, f, args...)
			if err != nil && ExitCode(err) != ExitFailure {
				t.Fatalf("err = %v", err)
			}
			var rep map[string]any
			if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil || len(rep) == 0 {
				t.Fatalf("not a JSON report: %v\n%s", jerr, out)
			}
		})
	}
}

func TestFakeStatusOnceEmptyCluster(t *testing.T) {
	f := kubefake.New(nil, nil)
	out, _, err := runFake(t, f, "status", "--once", "--window", "0", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"cluster": "fake"`) {
		t.Errorf("snapshot does not name the fake context:\n%s", out)
	}
}

func TestFakeTUIConstructs(t *testing.T) {
	f := kubefake.New(nil, nil)
	streams, _, _, _ := genericiooptions.NewTestIOStreams()
	c := NewCmdTUI(f, streams)
	if c == nil || c.Flags().Lookup("interval") == nil || c.Flags().Lookup("admin-access") == nil {
		t.Fatal("tui command lacks its watch flags")
	}
	o := &TUIOptions{factory: f, streams: streams}
	o.Watch.bind(pflag.NewFlagSet("tui", pflag.ContinueOnError))
	if err := o.Watch.validate(); err != nil {
		t.Errorf("default watch flags: %v", err)
	}
}
