#!/usr/bin/env bash
# The key-access monitoring benchmark: the operator's shared key monitor against a naive
# per-account poller, on the Azure emulator (50 ms per call, ARM throttling on) and the real
# kube-apiserver (started here if none is up, and stopped again). Prints a results table; the
# committed results are in docs/benchmarks.md.
#
#   scripts/bench.sh                       every row, 30 s windows, 6 samples (under 30 minutes on 2 cores)
#   scripts/bench.sh --rows 1,100 --window 20 --samples 4
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ams-security-operator/target}"

started_here=
if [ -z "${AMS_TEST_KUBECONFIG:-}" ]; then
  scripts/control-plane.sh env >/dev/null 2>&1 || started_here=1
  scripts/control-plane.sh up >/dev/null
  eval "$(scripts/control-plane.sh env)"
  export AMS_TEST_KUBECONFIG AMS_KUBECTL
fi
stop_control_plane() {
  if [ -n "$started_here" ]; then scripts/control-plane.sh down; fi
}
trap stop_control_plane EXIT

# test-endpoints: the operator binary the benchmark starts reaches the emulator through
# --azure-extra-ca and --azure-host-override (emulator brings it too; named for the reader).
cargo bench --locked --features emulator,test-endpoints --bench key_monitor -- "$@"
