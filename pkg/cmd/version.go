package cmd

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-ambient/kubectl-ambient/pkg/install"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/kube"
	"github.com/kubectl-ambient/kubectl-ambient/pkg/version"
)

// VersionOptions holds the flags of `kubectl ambient version`.
type VersionOptions struct {
	Output     OutputFlags
	ClientOnly bool
	Timeout    time.Duration

	factory kube.Factory
	streams genericiooptions.IOStreams
}

// VersionReport is what `version -o json|yaml` prints.
type VersionReport struct {
	Client version.Info `json:"client"`
	Server *ServerInfo  `json:"server,omitempty"`
	// ServerError says why the server part is missing; the command still succeeds.
	ServerError string `json:"serverError,omitempty"`
}

// ServerInfo describes the cluster the client talks to.
type ServerInfo struct {
	Kubernetes string `json:"kubernetes"`
	Host       string `json:"host"`
	Istio      string `json:"istio,omitempty"`
}

// NewCmdVersion builds `kubectl ambient version`.
func NewCmdVersion(f kube.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &VersionOptions{Output: NewOutputFlags(), Timeout: 5 * time.Second, factory: f, streams: streams}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client version, and the cluster's Kubernetes and Istio versions when reachable",
		Example: `  kubectl ambient version
  kubectl ambient version --client
  kubectl ambient version -o json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	o.Output.AddFlags(cmd)
	cmd.Flags().BoolVar(&o.ClientOnly, "client", false, "print only the client version; do not contact the cluster")
	cmd.Flags().DurationVar(&o.Timeout, "request-timeout-server", o.Timeout, "how long to wait for the cluster before printing the client version alone")
	return cmd
}

// Validate checks the flags.
func (o *VersionOptions) Validate() error { return o.Output.Validate() }

// Run prints the versions. An unreachable cluster is reported, not fatal.
func (o *VersionOptions) Run(ctx context.Context) error {
	rep := VersionReport{Client: version.Get()}
	if !o.ClientOnly {
		srv, err := o.server(ctx)
		if err != nil {
			rep.ServerError = withFlagHints(err).Error()
		} else {
			rep.Server = srv
		}
	}
	if !o.Output.Table() {
		return o.Output.Print(o.streams.Out, rep)
	}
	fmt.Fprintf(o.streams.Out, "Client Version: %s (commit %s, %s, %s)\n", rep.Client.Version, rep.Client.Commit, rep.Client.GoVersion, rep.Client.Platform)
	switch {
	case rep.Server != nil:
		fmt.Fprintf(o.streams.Out, "Server Version: %s (%s)\n", rep.Server.Kubernetes, rep.Server.Host)
		istio := rep.Server.Istio
		if istio == "" {
			istio = "not installed"
		}
		fmt.Fprintf(o.streams.Out, "Istio Version:  %s\n", istio)
	case rep.ServerError != "":
		fmt.Fprintf(o.streams.ErrOut, "warning: %s\n", rep.ServerError)
	}
	return nil
}

func (o *VersionOptions) server(ctx context.Context) (*ServerInfo, error) {
	clients, err := o.factory.Clients()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	info, err := kube.ServerVersion(ctx, clients)
	if err != nil {
		return nil, err
	}
	srv := &ServerInfo{Kubernetes: info.GitVersion, Host: clients.Config.Host}
	// istiod's version is the tag of its image; labels may be missing on
	// hand-made installs. Any error here just leaves Istio unknown.
	if v, err := install.IstiodVersion(ctx, clients.Kube); err == nil {
		srv.Istio = v
	}
	return srv, nil
}
