package cmd

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/ambient"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/diag/meshchecks"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube/platform"
)

// PrecheckOptions holds the flags of `kubectl ambient precheck`.
type PrecheckOptions struct {
	CheckRunFlags
	IstioVersion string
	Platform     string
	Enroll       []string

	clients *kube.Clients
	factory kube.Factory
	streams genericiooptions.IOStreams
}

// NewCmdPrecheck builds `kubectl ambient precheck`.
func NewCmdPrecheck(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &PrecheckOptions{
		CheckRunFlags: defaultCheckRunFlags(), IstioVersion: ambient.DefaultIstioVersion, Platform: "auto", factory: f, streams: streams,
	}
	cmd := &cobra.Command{
		Use:   "precheck",
		Short: "Check that the cluster can run Istio's ambient mesh before installing it",
		Long: `Check, before installing, that the cluster can run Istio's ambient mesh.

Kubernetes version against the chosen Istio release, permission to create every kind
the charts install, the platform (and the global.platform value install will use),
the CNI and the settings under which ambient is known to break (Cilium cni.exclusive,
BPF masquerading and socket load balancing, Calico eBPF connect-time load balancing,
AWS VPC CNI security groups for pods), an existing Istio (versions, revisions,
injection, sidecars without HBONE), the Gateway API CRDs, Pod Security of the Istio
namespace, and NetworkPolicies that would block HBONE (TCP 15008) or kubelet probes
from 169.254.7.127 in the namespaces to be enrolled.

The exit code is 1 when any check fails with an error (or a warning, with
--warnings-as-errors).`,
		Example: `  # Can this cluster run ambient?
  kubectl ambient precheck

  # Against a specific Istio release, for the namespaces you will enroll
  kubectl ambient precheck --istio-version 1.27 --enroll shop,payments

  # For CI
  kubectl ambient precheck -o json --warnings-as-errors`,
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
	o.bind(cmd, "namespace istiod, istio-cni and ztunnel will be installed into")
	cmd.Flags().StringVar(&o.IstioVersion, "istio-version", o.IstioVersion, "Istio release to be installed (1.28 or 1.28.1)")
	cmd.Flags().StringVar(&o.Platform, "platform", o.Platform, "platform: auto or one of "+strings.Join(platform.Known, ", "))
	cmd.Flags().StringSliceVar(&o.Enroll, "enroll", nil, "namespaces to be enrolled, for the NetworkPolicy check (-n adds one); default: the namespaces labelled for ambient or sidecar injection")
	return cmd
}

// Validate checks the flags.
func (o *PrecheckOptions) Validate() error {
	if err := o.validate(); err != nil {
		return err
	}
	if o.Platform != "auto" && !platform.IsKnown(o.Platform) {
		return UsageError{fmt.Errorf("unknown --platform %q; use auto or one of %s", o.Platform, strings.Join(platform.Known, ", "))}
	}
	minor, err := ambient.MinorOf(o.IstioVersion)
	if _, ok := ambient.SupportTable[minor]; err != nil || !ok {
		return UsageError{fmt.Errorf("unknown --istio-version %q; use one of %s", o.IstioVersion, ambient.KnownMinors())}
	}
	return nil
}

// Complete builds the clients from the factory.
func (o *PrecheckOptions) Complete() error {
	c, err := checkClients(o.factory)
	o.clients = c
	return err
}

// Run runs the prechecks and prints them.
func (o *PrecheckOptions) Run(ctx context.Context) error {
	clients := o.clients
	enroll := append([]string(nil), o.Enroll...)
	if ns, explicit, err := o.factory.Namespace(); err == nil && explicit && !slices.Contains(enroll, ns) {
		enroll = append(enroll, ns)
	}
	cluster := meshchecks.NewCluster(clients.Kube, clients.Dynamic, o.IstioNamespace, "")
	cs := meshchecks.Precheck(cluster, meshchecks.PrecheckOptions{
		IstioVersion: o.IstioVersion, Platform: o.Platform, EnrollNamespaces: enroll,
	})
	return o.run(ctx, o.streams, cs)
}
