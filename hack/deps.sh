#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh Debian machine with Go:
# Debian packages (etcd for the lab, tcpdump/tshark for verify-mtls, tmux for
# the terminal test, iproute2 for network namespaces) and Go tools into a cache
# directory outside the repository. Safe to re-run: it installs only what is
# missing.
set -euo pipefail

TOOLS=${TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-ambient/tools}
GOLANGCI_VERSION=v2.15.0

need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v tshark >/dev/null 2>&1 || need+=(tshark)
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# A real Prometheus (and promtool) for the fleet tests of status/tui --prometheus.
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v make >/dev/null 2>&1 || need+=(make)
command -v git >/dev/null 2>&1 || need+=(git)
# go install (golangci-lint, the lab's kwok and helm) fetches over HTTPS.
[ -s /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian packages: ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing Debian packages: ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi

mkdir -p "$TOOLS"
if [ ! -x "$TOOLS/golangci-lint" ] || ! "$TOOLS/golangci-lint" version 2>/dev/null | grep -q "${GOLANGCI_VERSION#v}"; then
  echo "installing golangci-lint $GOLANGCI_VERSION into $TOOLS" >&2
  CGO_ENABLED=0 GOBIN="$TOOLS" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_VERSION"
fi
