#!/usr/bin/env bash
# Builds the lab's binaries into a cache directory outside the repository and
# reuses them when they are already there. First build: about 10 minutes on 2
# cores (Kubernetes control plane from source); later runs: a second.
#
#   hack/lab/build.sh            # build what is missing
#   LAB_HOME=/somewhere hack/lab/build.sh
set -euo pipefail

K8S_VERSION=v1.33.13
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.22.0
here=$(cd "$(dirname "$0")" && pwd)
LAB_HOME=${LAB_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-ambient/lab}
bin="$LAB_HOME/bin"
mkdir -p "$bin"
stamp="$bin/.stamp"
want="k8s=$K8S_VERSION kwok=$KWOK_VERSION helm=$HELM_VERSION tools=$(sha256sum "$here/tools/go.mod" | cut -c1-12)"

have_all() {
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm; do
    [ -x "$bin/$b" ] || return 1
  done
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]
}

# etcd is not built here: the lab takes $bin/etcd if present, else etcd from
# PATH (Debian's etcd-server, installed by hack/deps.sh).
check_etcd() {
  if [ ! -x "$bin/etcd" ] && ! command -v etcd >/dev/null 2>&1; then
    echo "warning: no etcd in $bin or PATH; the lab needs it: apt-get install etcd-server (or run hack/deps.sh)" >&2
  fi
}

# The helm CLIs the install tests use as independent readers of our releases
# (and to write a release the way Helm 3 does), at approved versions, each in
# its own directory under the tools cache: tools/helm-<version>/helm.
HELM_CLIS="helm.sh/helm/v3/cmd/helm@v3.21.4 helm.sh/helm/v4/cmd/helm@v4.3.2"
TOOLS=${KAMB_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-ambient/tools}
for pkg in $HELM_CLIS; do
  dir="$TOOLS/helm-${pkg##*@}"
  if [ ! -x "$dir/helm" ]; then
    echo "  go install $pkg into $dir" >&2
    mkdir -p "$dir"
    (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod GOBIN="$dir" go install -trimpath "$pkg")
  fi
done

if have_all; then
  echo "lab binaries up to date in $bin"
  check_etcd
  exit 0
fi

start=$(date +%s)
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
echo "building Kubernetes $K8S_VERSION control plane and kubectl into $bin (first time: about 10 minutes)" >&2
(
  cd "$here/tools"
  export CGO_ENABLED=0 GOFLAGS=-mod=mod
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    echo "  go build $c" >&2
    go build -trimpath -ldflags "$ldflags" -o "$bin/$c" "k8s.io/kubernetes/cmd/$c"
  done
)
echo "  go install kwok@$KWOK_VERSION, helm@$HELM_VERSION" >&2
CGO_ENABLED=0 GOBIN="$bin" go install -trimpath "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
CGO_ENABLED=0 GOBIN="$bin" go install -trimpath "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
echo "$want" > "$stamp"
echo "lab binaries built in $(( $(date +%s) - start ))s into $bin" >&2
check_etcd
