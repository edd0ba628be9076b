//go:build tools

// Package tools pins the Kubernetes components the lab builds. It is never
// compiled into kubectl-ambient; hack/lab/build.sh builds the binaries from
// this module so the main go.mod stays free of k8s.io/kubernetes.
package tools

import (
	_ "k8s.io/kubectl/pkg/cmd"
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
)
