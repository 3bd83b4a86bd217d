#!/usr/bin/env bash
# Builds the real Kubernetes parts the controller's tests run against, from the Go module proxy, through the
# pinned modules in tests/k8s/ (go.mod + go.sum: the versions and their checksums): etcd and kube-apiserver
# (the control plane), Flux's source-controller, kustomize-controller and helm-controller (GitOps), and Cluster
# API's core, kubeadm bootstrap and kubeadm control-plane managers and its AWS provider (CAPA), each with its
# CRDs (and, for Cluster API, its admission webhooks' manifest) copied from the same module versions; and the
# tests' own kubelet-portforward (the port-forward endpoint of the nodes the Cluster API tests boot).
# Each binary lands in ${KAAS_CACHE:-$HOME/.cache/kaas}/k8s/<name>/ with a stamp of the sources it was built
# from; a binary whose stamp matches is skipped, so a second run takes a second. A fresh machine needed 77 s for
# etcd and 462 s for kube-apiserver on 2 cores (module downloads included), and 287 s, 130 s and 383 s for
# source-, kustomize- and helm-controller (fresh caches, other builds sharing the cores); Cluster API core 184 s,
# then its kubeadm bootstrap 5 s and control plane 11 s (core's build cache shared), CAPA 959 s (empty build
# cache for them, their modules fetched first by `go mod tidy` in 12 s and 17 s, three other engineers' builds
# and tests sharing the 2 cores; the spike measured CAPA alone at 232 s); a build that stops half-way leaves no
# binary. kubelet-portforward (our own main.go, apimachinery only) built in 28 s with an empty Go build cache (2
# cores shared with a CI run), 1 s with a warm one.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[k8s]\033[0m %s\n' "$*"; }
CACHE="${KAAS_CACHE:-$HOME/.cache/kaas}/k8s"
mkdir -p "$CACHE"
# One build at a time: a second run (another checkout, a parallel install) waits and then finds the stamps current.
exec 9>"$CACHE/.lock"
flock 9
command -v go >/dev/null || { echo "go is not installed (the machine's Go builds etcd and kube-apiserver)" >&2; exit 1; }

# build NAME LDFLAGS [PACKAGE MODULE [SUBDIR [SRC]]]: builds tests/k8s/SRC (default NAME; its main.go, or the
# dependency's main PACKAGE that its go.mod names as a tool) into $CACHE/NAME/NAME unless its stamp is current; with
# MODULE, that module's SUBDIR/config/crd/bases/*.yaml are copied to $CACHE/NAME/crds/ and its
# SUBDIR/config/webhook/manifests.yaml, if it has one, to $CACHE/NAME/webhooks.yaml.
build() {
  local name=$1 ldflags=$2 package=${3:-.} module=${4:-} subdir=${5:-.} src=tests/k8s/${6:-$1} dest=$CACHE/$1 stamp
  stamp=$({ cat "$src/go.mod" "$src/go.sum"; [[ ! -f $src/main.go ]] || cat "$src/main.go"; go version; echo "$ldflags"; } | sha256sum | cut -d' ' -f1)
  if [[ -x $dest/$name && -f $dest/stamp && $(<"$dest/stamp") == "$stamp" ]]; then
    log "$name: $dest/$name"
    return
  fi
  log "$name: building from the Go module proxy (see the timing below)"
  mkdir -p "$dest"
  rm -f "$dest/stamp"
  local start=$SECONDS
  (cd "$src" && CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "-s -w $ldflags" -o "$dest/$name.partial" "$package")
  if [[ -n $module ]]; then
    local dir
    dir=$(cd "$src" && go list -mod=readonly -m -f '{{.Dir}}' "$module")/$subdir
    rm -rf "$dest/crds" "$dest/webhooks.yaml"
    mkdir -p "$dest/crds"
    cp "$dir"/config/crd/bases/*.yaml "$dest/crds/"
    [[ ! -f $dir/config/webhook/manifests.yaml ]] || cp "$dir/config/webhook/manifests.yaml" "$dest/webhooks.yaml"
  fi
  mv "$dest/$name.partial" "$dest/$name"
  echo "$stamp" >"$dest/stamp"
  log "$name: built in $((SECONDS - start)) s"
}

build etcd ""
# The version the server reports (/version, and the base of its compatibility version) comes from these
# variables, which Kubernetes' own build sets from Git; without them it calls itself v0.0.0-master.
k8s_version=$(sed -nE 's/^(require)?[[:space:]]*k8s.io\/kubernetes (v[0-9.]+)$/\2/p' tests/k8s/kube-apiserver/go.mod)
[[ -n $k8s_version ]] || { echo "tests/k8s/kube-apiserver/go.mod: no requirement of k8s.io/kubernetes" >&2; exit 1; }
minor=${k8s_version#v1.}
minor=${minor%%.*}
pkg=k8s.io/component-base/version
build kube-apiserver "-X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"

# Flux: each module's go.mod names the controller as a tool, with the replace lines its own go.mod has (which a
# dependency's go.mod cannot pass on).
for flux in source-controller kustomize-controller helm-controller; do
  build "$flux" "" "github.com/fluxcd/$flux" "github.com/fluxcd/$flux"
done

# Cluster API v1.13.4, the release CAPA v2.13.0's go.mod requires, so both run the contract they were built
# against: core (main.go at the module root in v1.13; v1.14 moved it to core/) and the kubeadm bootstrap and
# control-plane providers, three tools of one module (tests/k8s/cluster-api); then the AWS provider (CAPA).
capi=sigs.k8s.io/cluster-api
build cluster-api "" "$capi" "$capi" . cluster-api
build kubeadm-bootstrap "" "$capi/bootstrap/kubeadm" "$capi" bootstrap/kubeadm cluster-api
build kubeadm-control-plane "" "$capi/controlplane/kubeadm" "$capi" controlplane/kubeadm cluster-api
build cluster-api-provider-aws "" sigs.k8s.io/cluster-api-provider-aws/v2 sigs.k8s.io/cluster-api-provider-aws/v2

# The one part of a kubelet the workload clusters of the Cluster API tests need: its port-forward endpoint, which
# kube-apiserver proxies `pods/portforward` to and Cluster API's control-plane provider dials etcd and the API
# server through (tests/k8s/kubelet-portforward/main.go; k8s.io/apimachinery's SPDY server only).
build kubelet-portforward ""
