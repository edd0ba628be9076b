// Package ambient is the vocabulary of Istio's ambient mesh, stated once:
// the labels and annotations ambient is driven by, the ports ztunnel and
// HBONE use, the component releases in install order, the Istio support and
// version-skew tables, one version type, image-tag reading, the readiness of
// Deployments and DaemonSets, and the certificate expiry rule.
//
// It is a leaf: it imports no client-go, no Helm and no other package of
// this module, so every layer (install, migrate, diag, tui, the test
// simulators) can share it. TestOneDefinition fails when a second
// definition of the redirection annotation or the dataplane-mode label
// appears in non-test code elsewhere.
package ambient
