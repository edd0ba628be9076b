#!/usr/bin/env bash
# `make demo`: the main job end to end. With no cluster configured (no
# KUBECONFIG, no ~/.kube/config) it starts the local lab, installs the ambient
# profile from the test charts, enrolls a namespace and shows its pods captured
# with no restarts, proves mTLS on real captures, and shows ztunnel health.
# Against a configured cluster it runs only the read-only steps unless
# DEMO_APPLY=1 is set.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
ka="$root/bin/kubectl-ambient"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-ambient
if [ -t 1 ]; then bold=$'\033[1m'; off=$'\033[0m'; else bold=; off=; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }
# run CMD...: show the command, run it, keep going on a non-zero exit (some
# steps are meant to fail: the negative control) but report the code.
run() {
  printf '$ kubectl ambient %s\n' "${*:2}"
  set +e; "$@"; local rc=$?; set -e
  [ $rc = 0 ] || printf '(exit code %d)\n' "$rc"
  return 0
}

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ "${lab:-}" = true ]; then
    step "stopping the lab"
    "$root/bin/lab" down || true
  fi
}
trap cleanup EXIT

lab=false
if [ -z "${KUBECONFIG:-}" ] && [ ! -f "$HOME/.kube/config" ]; then lab=true; fi
apply=${DEMO_APPLY:-$lab}

if [ "$lab" = true ]; then
  step "no cluster configured: starting the local lab (real kube-apiserver, kwok nodes)"
  export LAB_RUN=${LAB_RUN:-$cache/lab/demo-run}
  go build -o bin/lab ./hack/lab
  "$root/bin/lab" down >/dev/null 2>&1 || true
  eval "$("$root/bin/lab" up --nodes 3)"
  kubectl="$cache/lab/bin/kubectl"
else
  kubectl=kubectl
fi

step "version"
run "$ka" version

step "precheck: can this cluster run ambient?"
run "$ka" precheck

if [ "$apply" = true ]; then
  step "install the ambient profile (lab: the test charts in internal/testing/fixtures/testdata/charts)"
  charts=()
  [ "$lab" = true ] && charts=(--charts internal/testing/fixtures/testdata/charts)
  run "$ka" install "${charts[@]}"
  run "$ka" install status
  if [ "$lab" = true ]; then
    # kwok's fake ztunnel pods have no ztunnel inside: the TEST-ONLY stand-in
    # serves ztunnel's metrics, readiness and config_dump on their pod IPs.
    go build -o bin/ztunnel-sim ./internal/testing/sim/cmd/ztunnel-sim
    "$root/bin/ztunnel-sim" --lab-run "$LAB_RUN" &
    pids+=($!)
    sleep 1
  fi
else
  step "install, dry run (set DEMO_APPLY=1 to install)"
  "$ka" install --dry-run -o yaml | grep -E '^(# Source|kind:)' | head -20 || true
fi

if [ "$lab" = true ]; then
  step "a namespace with sidecar injection and three pods; the TEST-ONLY CNI stand-in writes istio-cni's annotation"
  go build -o bin/cni-sim ./internal/testing/sim/cmd/cni-sim
  "$root/bin/cni-sim" --quiet &
  pids+=($!)
  ns=demo-shop
  "$kubectl" create namespace "$ns" >/dev/null
  "$kubectl" label namespace "$ns" istio-injection=enabled >/dev/null
  "$kubectl" -n "$ns" create deployment web --image=example.invalid/web:1 --replicas=3 >/dev/null
  "$kubectl" -n "$ns" rollout status deployment/web --timeout=60s >/dev/null
  "$kubectl" -n "$ns" get pods -o custom-columns=POD:.metadata.name,UID:.metadata.uid | sort > /tmp/demo-before.$$

  step "enroll: the plan first, then the change, verified against what istio-cni did"
  run "$ka" enroll namespace "$ns" --dry-run
  run "$ka" enroll namespace "$ns" --timeout 60s
  "$kubectl" -n "$ns" get pods -o custom-columns=POD:.metadata.name,UID:.metadata.uid | sort > /tmp/demo-after.$$
  if cmp -s /tmp/demo-before.$$ /tmp/demo-after.$$; then
    echo "pods restarted: none (the same $(($(wc -l < /tmp/demo-after.$$) - 1)) pod UIDs before and after)"
  else
    echo "pod UIDs changed:"; diff /tmp/demo-before.$$ /tmp/demo-after.$$ || true
  fi
  rm -f /tmp/demo-before.$$ /tmp/demo-after.$$
  run "$ka" enroll status

  step "waypoint: the Gateway API's own CRDs, a waypoint (the TEST-ONLY stand-in plays istiod), who uses it"
  gwcrds="$(go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)/config/crd/standard"
  "$kubectl" apply --server-side --force-conflicts -f "$gwcrds/gateway.networking.k8s.io_gatewayclasses.yaml" -f "$gwcrds/gateway.networking.k8s.io_gateways.yaml" >/dev/null
  "$kubectl" wait --for=condition=Established --timeout=60s crd gateways.gateway.networking.k8s.io >/dev/null
  go build -o bin/waypoint-sim ./internal/testing/sim/cmd/waypoint-sim
  "$root/bin/waypoint-sim" &
  pids+=($!)
  run "$ka" waypoint apply -n "$ns" --timeout 60s
  "$kubectl" label namespace "$ns" istio.io/use-waypoint=waypoint >/dev/null
  run "$ka" waypoint list -A
fi

step "check: is ambient healthy?"
run "$ka" check

step "verify-mtls on real captures (internal/testing/fixtures/testdata/pcap): HBONE between mesh pods passes"
run "$ka" verify-mtls --pcap internal/testing/fixtures/testdata/pcap/good-any-sll2.pcap --pods internal/testing/fixtures/testdata/pcap/pods.yaml --logs internal/testing/fixtures/testdata/pcap/ztunnel-access.log
step "verify-mtls negative control: plaintext between mesh pods fails (exit code 1)"
run "$ka" verify-mtls --pcap internal/testing/fixtures/testdata/pcap/bad-any-sll2.pcap --pods internal/testing/fixtures/testdata/pcap/pods.yaml

step "ztunnel health per node (the TUI's snapshot; 'kubectl ambient tui' in a terminal)"
run "$ka" status --once

if [ "$lab" = true ]; then
  step "waypoint delete, once nothing uses it (it refuses while something does)"
  "$kubectl" label namespace "$ns" istio.io/use-waypoint- >/dev/null
  run "$ka" waypoint delete -n "$ns"
  step "unenroll: labels restored exactly from the journal"
  run "$ka" unenroll namespace "$ns" --dry-run
  run "$ka" unenroll namespace "$ns"
  "$kubectl" get namespace "$ns" --show-labels
fi
