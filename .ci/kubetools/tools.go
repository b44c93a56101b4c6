//go:build tools

// Package kubetools pins the programs of the test cluster (kube-apiserver, kube-scheduler,
// kube-controller-manager, kubectl, kwok and etcd) so that `go build` makes them from the Go
// module proxy at the versions in go.mod. The build script beside it builds them into a cache.
package kubetools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
