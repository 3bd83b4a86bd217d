// Command etcd is etcd's own server entry point, built from the Go module proxy for the controller's tests
// (scripts/install-k8s.sh): the project ships no code of etcd's, only this pin of its version.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
