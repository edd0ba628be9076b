package cmd

import (
	"context"
	"fmt"
	"time"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/checker"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/meshchecks"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// CheckOptions holds the flags of `kubectl ambient check`.
type CheckOptions struct {
	CheckRunFlags
	// CertSample is how many ztunnel pods certificates are read from.
	CertSample int

	clients *kube.Clients
	factory kube.Factory
	streams genericiooptions.IOStreams
}

// NewCmdCheck builds `kubectl ambient check`.
func NewCmdCheck(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &CheckOptions{CheckRunFlags: defaultCheckRunFlags(), CertSample: 3, factory: f, streams: streams}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check that the ambient mesh is healthy: control plane, istio-cni and ztunnel on every node, enrollment",
		Long: `Check that an installed ambient mesh is healthy, in the style of linkerd check.

Control plane: each Helm release's status and chart version, istiod ready, version
skew between istiod, istio-cni and ztunnel. Data plane: istio-cni and ztunnel ready on
every eligible node (the nodes that are not are named), ztunnel certificates.
Enrollment: namespaces labelled for both ambient and sidecar injection, pods whose
redirection is pending or missing, sidecars left in ambient namespaces, waypoints not
programmed, services not bound to their waypoint, selector-based L7
AuthorizationPolicies that ztunnel turns into deny-all.

The exit code is 1 when any check fails with an error (or a warning, with
--warnings-as-errors).`,
		Example: `  # Check the whole mesh
  kubectl ambient check

  # Only the enrollment of one namespace
  kubectl ambient check -n shop

  # For CI: JSON, and fail on warnings too
  kubectl ambient check -o json --warnings-as-errors`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	o.bind(cmd, "namespace of istiod, istio-cni and ztunnel")
	cmd.Flags().IntVar(&o.CertSample, "cert-sample", o.CertSample, "how many ztunnel pods to read certificates from (0 skips the check)")
	return cmd
}

// Validate checks the flags.
func (o *CheckOptions) Validate() error {
	if err := o.validate(); err != nil {
		return err
	}
	if o.CertSample < 0 {
		return UsageError{fmt.Errorf("--cert-sample must be 0 or more")}
	}
	return nil
}

// Complete builds the clients from the factory.
func (o *CheckOptions) Complete() error {
	c, err := checkClients(o.factory)
	o.clients = c
	return err
}

// Run runs the checks and prints them.
func (o *CheckOptions) Run(ctx context.Context) error {
	clients := o.clients
	ns, explicit, err := o.factory.Namespace()
	if err != nil {
		return fmt.Errorf("read the namespace from the kubeconfig: %w", err)
	}
	if !explicit {
		ns = ""
	}
	cluster := meshchecks.NewCluster(clients.Kube, clients.Dynamic, o.IstioNamespace, ns)
	hopts := meshchecks.HealthOptions{CertSample: o.CertSample}
	if o.CertSample > 0 {
		// The admin port is localhost-only in real ztunnel: try the pod proxy
		// (works where it is exposed), then a port-forward.
		hopts.ConfigDumps = adminAccess("auto", clients, 5*time.Second, 10*time.Second)
	}
	return o.run(ctx, o.streams, meshchecks.Health(cluster, hopts))
}

// CheckRunFlags are the flags check and precheck share.
type CheckRunFlags struct {
	Output           OutputFlags
	WarningsAsErrors bool
	Verbose          bool
	IstioNamespace   string
	Timeout          time.Duration
}

func defaultCheckRunFlags() CheckRunFlags {
	return CheckRunFlags{Output: NewOutputFlags(), IstioNamespace: ambient.IstioNamespace, Timeout: 2 * time.Minute}
}

// bind registers the shared flags; istioNSHelp describes --istio-namespace.
func (s *CheckRunFlags) bind(cmd *cobra.Command, istioNSHelp string) {
	s.Output.AddFlags(cmd)
	fs := cmd.Flags()
	fs.BoolVar(&s.WarningsAsErrors, "warnings-as-errors", false, "exit non-zero when a check warns")
	fs.BoolVar(&s.Verbose, "verbose", false, "also list checks that did not apply")
	fs.StringVar(&s.IstioNamespace, "istio-namespace", s.IstioNamespace, istioNSHelp)
	fs.DurationVar(&s.Timeout, "timeout", s.Timeout, "give up on the remaining checks after this long")
}

func (s *CheckRunFlags) validate() error {
	if err := s.Output.Validate(); err != nil {
		return err
	}
	if s.IstioNamespace == "" {
		return UsageError{fmt.Errorf("--istio-namespace must not be empty")}
	}
	return nil
}

// checkClients builds the clients the check sets list with. The typed
// client speaks protobuf (kube.NewClients), as meshchecks.ListConfig asks.
func checkClients(f kube.Factory) (*kube.Clients, error) { return f.Clients() }

// run runs a check set, rendering the table as results arrive or the JSON
// report at the end, and turns a failed verdict into exit code 1.
func (s *CheckRunFlags) run(ctx context.Context, streams genericiooptions.IOStreams, cs []checker.Check) error {
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	r := &checker.Runner{ErrorHint: flagHintFor}
	table := &checker.TableObserver{W: streams.Out, ShowSkipped: s.Verbose}
	if s.Output.Table() {
		r.Observers = append(r.Observers, table)
	}
	sum, err := r.Run(ctx, cs)
	if err != nil {
		return err
	}
	if err := table.Err(); err != nil {
		return fmt.Errorf("write check results: %w", err)
	}
	if !s.Output.Table() {
		if err := s.Output.Print(streams.Out, checker.NewReport(sum, s.WarningsAsErrors)); err != nil {
			return err
		}
	} else {
		checker.WriteSummary(streams.Out, sum, s.WarningsAsErrors)
	}
	if !sum.OK(s.WarningsAsErrors) {
		return SilentError{Code: ExitFailure}
	}
	return nil
}
