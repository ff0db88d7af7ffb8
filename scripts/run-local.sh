#!/usr/bin/env bash
# Try ams-security-operator without Azure: a local Kubernetes control plane (kube-apiserver
# 1.20.2, built once from Debian's source and cached) and the Azure emulator seeded with the
# world that examples/ describes. Installs the CRDs, validates and applies the examples, shows
# `kubectl get msa`, and reads one account from the emulator over HTTPS with a real token.
#
#   scripts/run-local.sh        start (or reuse) everything and show the state
#   scripts/run-local.sh down   stop the emulator and the control plane
#
# Everything listens on 127.0.0.1 only. Nothing here reaches Azure.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE_DIR=${AMS_LOCAL_DIR:-${TMPDIR:-/tmp}/ams-local}
NAMESPACE=${AMS_LOCAL_NAMESPACE:-ams-demo}
SEED=examples/emulator/world.yaml
TARGET_DIR=${CARGO_TARGET_DIR:-target}

log() { printf '\n==> %s\n' "$*"; }

emulator_running() {
  [ -f "$STATE_DIR/emulator.pid" ] && kill -0 "$(cat "$STATE_DIR/emulator.pid")" 2>/dev/null
}

if [ "${1:-up}" = down ]; then
  if emulator_running; then kill "$(cat "$STATE_DIR/emulator.pid")"; fi
  rm -rf "$STATE_DIR"
  scripts/control-plane.sh down
  exit 0
elif [ "${1:-up}" != up ]; then
  echo "usage: $0 [up|down]" >&2
  exit 2
fi

log "control plane (the first run builds kube-apiserver 1.20.2: about 10 minutes)"
scripts/control-plane.sh up >/dev/null
eval "$(scripts/control-plane.sh env)"
k() { "$AMS_KUBECTL" --kubeconfig "$AMS_TEST_KUBECONFIG" "$@"; }

log "building the operator and the emulator"
cargo build --quiet --locked --features emulator --bin ams-security-operator --bin ams-azure-emulator

mkdir -p "$STATE_DIR"
if ! emulator_running; then
  log "starting the Azure emulator with $SEED"
  setsid "$TARGET_DIR/debug/ams-azure-emulator" --seed "$SEED" --bind 127.0.0.1:0 \
    --ca-out "$STATE_DIR/emulator-ca.pem" >"$STATE_DIR/emulator.log" 2>&1 </dev/null &
  echo $! >"$STATE_DIR/emulator.pid"
  for _ in $(seq 1 60); do
    grep -q 'admin API' "$STATE_DIR/emulator.log" 2>/dev/null && break
    emulator_running || { cat "$STATE_DIR/emulator.log" >&2; exit 1; }
    sleep 0.5
  done
fi
cat "$STATE_DIR/emulator.log"
port=$(sed -n 's|^ams-azure-emulator listening on https://127.0.0.1:\([0-9]*\)$|\1|p' "$STATE_DIR/emulator.log")
tenant=$(sed -n 's|^  tenant: ||p' "$STATE_DIR/emulator.log")
client_id=$(sed -n 's|^  service principal operator: client id \([^,]*\),.*|\1|p' "$STATE_DIR/emulator.log")

log "installing the CRDs"
# kubectl before 1.25 does not know x-kubernetes-validations (CEL) and refuses the CRD in its
# client-side check; the apiserver stores it without the rules (they apply from 1.25 on).
k apply --validate=false -f crds/
k wait --for condition=established --timeout=60s crd/mediaservicesaccounts.ams-security.io

log "validating the examples (every rule, CEL included, without a cluster)"
"$TARGET_DIR/debug/ams-security-operator" validate examples/*.yaml

log "applying the examples to namespace $NAMESPACE"
k get namespace "$NAMESPACE" >/dev/null 2>&1 || k create namespace "$NAMESPACE"
k apply -n "$NAMESPACE" -f examples/
k get msa -n "$NAMESPACE" -o wide

log "the same accounts on the Azure side (emulator, real HTTPS and an Entra ID token)"
curl_azure() {
  curl -sS --cacert "$STATE_DIR/emulator-ca.pem" \
    --resolve "login.microsoftonline.com:$port:127.0.0.1" --resolve "management.azure.com:$port:127.0.0.1" "$@"
}
token=$(curl_azure "https://login.microsoftonline.com:$port/$tenant/oauth2/v2.0/token" \
  -d grant_type=client_credentials -d "client_id=$client_id" -d client_secret=local-operator-secret \
  -d scope=https://management.azure.com/.default |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
curl_azure -H "Authorization: Bearer $token" \
  "https://management.azure.com:$port/subscriptions/6f1c3b2a-94d1-4c1e-9a55-0d1b2c3d4e5f/resourceGroups/media-prod/providers/Microsoft.Media/mediaservices/contosomedia?api-version=2023-01-01" |
  python3 -m json.tool

cat <<EOF

Running on 127.0.0.1:
  kube-apiserver   kubeconfig $AMS_TEST_KUBECONFIG (kubectl: $AMS_KUBECTL)
  Azure emulator   https://127.0.0.1:$port, CA $STATE_DIR/emulator-ca.pem, admin API https://localhost:$port/_emulator/state
The reconciler is not built yet: the resources above are stored and validated, and the Azure
accounts keep their current state. Stop everything with: scripts/run-local.sh down
EOF
