#!/usr/bin/env bash
# Slow release checks, out of the per-change CI: goreleaser cross-builds the six
# release archives in snapshot mode and writes the krew manifest, which
# validate-krew-manifest (krew's own validator) then checks.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-ambient/tools}
GORELEASER_VERSION=v2.15.0  # newer releases need Go 1.27 or a module the proxy lacks
KREW_VERSION=v0.4.4
mkdir -p "$TOOLS"
if ! "$TOOLS/goreleaser" --version 2>/dev/null | grep -q "${GORELEASER_VERSION#v}"; then
  echo "installing goreleaser $GORELEASER_VERSION into $TOOLS (a few minutes the first time)" >&2
  CGO_ENABLED=0 GOBIN="$TOOLS" go install "github.com/goreleaser/goreleaser/v2@$GORELEASER_VERSION"
fi
if [ ! -x "$TOOLS/validate-krew-manifest" ]; then
  # `go install pkg@version` asks the proxy for krew's version list, which it
  # refuses here; building from a throwaway module that requires the exact
  # version does not.
  tmp=$(mktemp -d)
  (cd "$tmp" && go mod init krewtool >/dev/null 2>&1 &&
    GOFLAGS=-mod=mod go get "sigs.k8s.io/krew@$KREW_VERSION" >/dev/null 2>&1 &&
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -o "$TOOLS/validate-krew-manifest" sigs.k8s.io/krew/cmd/validate-krew-manifest)
  rm -rf "$tmp"
fi

"$TOOLS/goreleaser" check
start=$(date +%s)
"$TOOLS/goreleaser" release --snapshot --clean
echo "goreleaser snapshot took $(( $(date +%s) - start ))s" >&2

manifest=dist/krew/ambient.yaml
[ -f "$manifest" ] || { echo "goreleaser wrote no krew manifest at $manifest" >&2; exit 1; }
# krew's validator: schema, platform selectors. Its install step downloads
# each archive from the release URL, which a snapshot has not published (and
# this machine cannot reach), so the same check runs here on the local
# archives: the sha256 in the manifest matches, the archive holds the binary,
# the completion script and a LICENSE, and the binary for this platform runs.
"$TOOLS/validate-krew-manifest" -manifest "$manifest" -skip-install
n=0
while read -r uri sum; do
  f="dist/$(basename "$uri")"
  [ -f "$f" ] || { echo "krew manifest names $uri but $f was not built" >&2; exit 1; }
  got=$(sha256sum "$f" | cut -d' ' -f1)
  [ "$got" = "$sum" ] || { echo "krew manifest sha256 for $f is $sum, archive is $got" >&2; exit 1; }
  case "$f" in
    *.zip) list=$(python3 -c 'import sys,zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' "$f") ;;
    *) list=$(tar -tzf "$f") ;;
  esac
  for want in LICENSE kubectl_complete-ambient; do
    grep -qx "$want" <<<"$list" || { echo "$f lacks $want" >&2; exit 1; }
  done
  grep -Eqx 'kubectl-ambient(\.exe)?' <<<"$list" || { echo "$f lacks the kubectl-ambient binary" >&2; exit 1; }
  n=$((n + 1))
done < <(awk '/uri:/ {u=$2} /sha256:/ {print u, $2}' "$manifest")
[ "$n" = 6 ] || { echo "krew manifest lists $n platforms, want 6" >&2; exit 1; }
tmp=$(mktemp -d)
tar -xzf "dist/kubectl-ambient_$(go env GOOS)_$(go env GOARCH).tar.gz" -C "$tmp"
"$tmp/kubectl-ambient" version --client
rm -rf "$tmp"
ls -l dist/*.tar.gz dist/*.zip
echo "release check passed: 6 archives, checksums, krew manifest $manifest valid and matching the archives"
