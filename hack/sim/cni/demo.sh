#!/usr/bin/env bash
# Demo (lab only): enroll a namespace with sidecar injection into ambient and
# show its pods captured with no restarts (same pod UIDs), then undo it.
# The CNI stand-in used here is TEST-ONLY: it writes the annotation istio-cni
# writes and does no networking.
#
#   hack/sim/cni/demo.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
hack/lab/build.sh >/dev/null
eval "$(go run ./hack/lab up)"
go build -o /tmp/kubectl-ambient-demo ./cmd/kubectl-ambient
ka=/tmp/kubectl-ambient-demo
k="${LAB_HOME:-$HOME/.cache/kubectl-ambient/lab}/bin/kubectl"

ns=demo-shop
"$k" create namespace "$ns" --dry-run=client -o yaml | "$k" apply -f - >/dev/null
"$k" label namespace "$ns" istio-injection=enabled --overwrite >/dev/null
"$k" -n "$ns" create deployment web --image=registry.invalid/demo/web:1 --replicas=3 --dry-run=client -o yaml | "$k" apply -f - >/dev/null
"$k" -n "$ns" rollout status deployment/web --timeout=60s >/dev/null

go run ./hack/sim/cni --quiet &
cni=$!
trap 'kill "$cni" 2>/dev/null || true' EXIT

echo "== pods before (note the UIDs)"
"$k" -n "$ns" get pods -o custom-columns=NAME:.metadata.name,UID:.metadata.uid,REDIRECTION:.metadata.annotations.ambient\\.istio\\.io/redirection
echo "== plan"
$ka enroll namespace "$ns" --dry-run
echo "== enroll"
$ka enroll namespace "$ns" --timeout 60s
echo "== pods after: same UIDs, captured"
"$k" -n "$ns" get pods -o custom-columns=NAME:.metadata.name,UID:.metadata.uid,REDIRECTION:.metadata.annotations.ambient\\.istio\\.io/redirection
$ka enroll status "$ns"
echo "== unenroll (labels restored from the journal)"
$ka unenroll namespace "$ns"
"$k" get namespace "$ns" --show-labels
