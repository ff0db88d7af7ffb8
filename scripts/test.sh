#!/usr/bin/env bash
# Every check CI runs, in order: format, lints, the real control plane (built once and cached),
# all tests (unit, apiserver, emulator, CRD drift), and the crdgen check. This is the README's
# test command; `.ci/run` calls it.
#
# Environment:
#   AMS_TEST_KUBECONFIG  use this existing cluster instead of starting the local control plane
#   AMS_KEEP_CONTROL_PLANE=1  leave a control plane this script started running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."

step() {
  local budget=$1 name=$2; shift 2
  local start=$SECONDS
  printf '\n==> %s (budget %ss)\n' "$name" "$budget"
  if ! timeout --foreground "$budget" "$@"; then
    printf '==> FAILED: %s after %ss\n' "$name" "$((SECONDS - start))"
    exit 1
  fi
  printf '==> %s: ok in %ss\n' "$name" "$((SECONDS - start))"
}

ensure_shellcheck() {
  command -v shellcheck >/dev/null && return 0
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; fi
}

# tests/chart.rs runs the Argo CD health check in Lua 5.4 and in 5.1 (Argo CD's dialect).
ensure_lua() {
  command -v lua5.4 >/dev/null && command -v lua5.1 >/dev/null && return 0
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lua5.4 lua5.1 >/dev/null
  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lua5.4 lua5.1 >/dev/null; fi
}

step 600 "toolchain (rust-toolchain.toml)" rustup toolchain install
ensure_shellcheck
ensure_lua
step 120 "shellcheck scripts" shellcheck scripts/*.sh .ci/run
step 120 "cargo fmt --check" cargo fmt --all -- --check
step 1800 "cargo clippy -D warnings" cargo clippy --all-targets --all-features --locked -- -D warnings
# The shipped build has no features (Dockerfile): code under `cfg(feature = ...)` must leave it
# clean, and it must have none of the emulator's test endpoints (--azure-extra-ca,
# --azure-host-override). Before the all-features tests, whose build then relinks their binary.
step 900 "cargo clippy -D warnings (no features, as the image)" cargo clippy --locked -- -D warnings
step 900 "no test endpoints without features (as the image)" \
  cargo test --locked --test chart the_test_endpoint_flags_and_variables_exist_only_in_test_endpoints_builds

started_here=
if [ -z "${AMS_TEST_KUBECONFIG:-}" ]; then
  # Reuse a control plane that is already up (and leave it up); stop only one started here.
  scripts/control-plane.sh env >/dev/null 2>&1 || started_here=1
  step 2400 "control plane (kube-apiserver 1.20.2; first run builds it)" scripts/control-plane.sh up
  eval "$(scripts/control-plane.sh env)"
  export AMS_TEST_KUBECONFIG AMS_KUBECTL
fi
stop_control_plane() {
  if [ -n "$started_here" ] && [ -z "${AMS_KEEP_CONTROL_PLANE:-}" ]; then scripts/control-plane.sh down; fi
}
trap stop_control_plane EXIT

step 1800 "cargo test (all tests, all features)" cargo test --all-features --locked --no-fail-fast
step 300 "crdgen --check" cargo run --quiet --locked --all-features --bin crdgen -- --check
printf '\nall checks passed\n'
