// Package cmd holds the cobra commands of kubectl-ambient: one file per verb,
// each an XOptions struct (flags, IOStreams) with Validate, Complete (clients
// from the kube.Factory interface) and Run, which makes one library call and
// prints the report through OutputFlags. version and install/upgrade build
// their clients inside Run, only when they reach the cluster (--client and
// --dry-run never do). Commands make no API calls of their own.
package cmd

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
)

// NewRootCmd builds the whole command tree.
func NewRootCmd(streams genericiooptions.IOStreams) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	return newRootCmd(flags, kube.NewFactory(flags), streams)
}

// newRootCmd builds the tree on factory f; flags are registered for parsing
// (tests pass a fake f, and the flags then only parse).
func newRootCmd(flags *genericclioptions.ConfigFlags, f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {

	root := &cobra.Command{
		Use:   "kubectl-ambient",
		Short: "Install, enroll, verify and watch Istio's ambient mesh",
		Long: `kubectl ambient operates Istio's ambient mesh: install the ambient profile with Helm,
move namespaces from sidecars to ambient without restarts, prove that traffic crosses
the wire as HBONE mutual TLS, and watch ztunnel health node by node.`,
		Example: `  # Is this cluster ready for ambient?
  kubectl ambient precheck

  # Install the ambient profile, then move a namespace into the mesh
  kubectl ambient install
  kubectl ambient enroll namespace shop --dry-run

  # Prove traffic is mTLS from a capture file
  kubectl ambient verify-mtls --pcap capture.pcap`,
		Annotations: map[string]string{
			cobra.CommandDisplayNameAnnotation: "kubectl ambient",
		},
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	flags.AddFlags(root.PersistentFlags())
	var logs logFlags
	logs.bind(root.PersistentFlags())
	root.PersistentPreRun = func(*cobra.Command, []string) { logs.apply(streams.ErrOut) }
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return UsageError{Err: err}
	})
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)

	root.AddCommand(NewCmdVersion(f, streams))
	// Feature commands register below, one line each.
	root.AddCommand(NewCmdVerifyMTLS(f, streams))
	root.AddCommand(NewCmdTUI(f, streams), NewCmdStatus(f, streams))
	root.AddCommand(NewCmdEnroll(f, streams), NewCmdUnenroll(f, streams), NewCmdWaypoint(f, streams))
	root.AddCommand(NewCmdPrecheck(f, streams), NewCmdCheck(f, streams))
	root.AddCommand(NewCmdInstall(f, streams), NewCmdUpgrade(f, streams), NewCmdUninstall(f, streams))
	root.AddCommand(NewCmdZtunnel(f, streams))
	hintErrors(root)

	return root
}

// usageArgs wraps a positional-args check so a mistake returns a UsageError (exit code 2).
func usageArgs(fn cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := fn(c, args); err != nil {
			return UsageError{Err: err}
		}
		return nil
	}
}
