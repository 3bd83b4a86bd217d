// Command kube-apiserver is Kubernetes' own API server entry point, built from the Go module proxy for the
// controller's tests (scripts/install-k8s.sh). k8s.io/kubernetes is not meant to be required as a module: its
// go.mod points the k8s.io/* staging modules at its own source tree, so go.mod here pins each of them to the
// published release of the same version instead.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
