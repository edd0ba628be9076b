// Package mtls judges decoded traffic: it maps flow addresses to workloads
// (from pods, a mapping file or ztunnel's config_dump), groups flows per
// workload pair and gives each a verdict by ambient's rules, and joins flows
// with ztunnel's own evidence (access-log identities, config_dump workloads
// and certificates). Verify runs the whole verify-mtls pipeline.
//
// The package is pure: it imports no client-go (depguard holds this). The
// cluster side lives beside it: pkg/diag/mtls/capture captures live with
// privileged pods and lists pods for the address map, behind the small
// interfaces in Deps; pkg/diag/mtls/scenario deploys its own workloads and
// judges cases with this package.
package mtls
