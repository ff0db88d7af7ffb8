#!/usr/bin/env bash
# Try ams-security-operator without Azure: a local Kubernetes control plane (kube-apiserver
# 1.20.2, built once from Debian's source and cached), the Azure emulator seeded with the world
# that examples/ describes, and the operator's main job (`ams-security-operator run`) against
# both. Installs the CRDs, validates and applies the examples, waits until every one is Ready,
# and shows `kubectl get msa` and what the operator wrote to Azure.
#
#   scripts/run-local.sh        start (or reuse) everything, apply the examples, wait for Ready
#   scripts/run-local.sh down   stop the operator, the emulator and the control plane
#
# Everything listens on 127.0.0.1 only. Nothing here reaches Azure: the operator's Azure host
# names are pointed at the emulator by explicit flags (--azure-host-override, --azure-extra-ca),
# which only builds with the test-endpoints feature have (the image does not).
set -euo pipefail
cd "$(dirname "$0")/.."

STATE_DIR=${AMS_LOCAL_DIR:-${TMPDIR:-/tmp}/ams-local}
NAMESPACE=${AMS_LOCAL_NAMESPACE:-ams-demo}
SEED=examples/emulator/world.yaml
TARGET_DIR=${CARGO_TARGET_DIR:-target}
SUBJECT=system:serviceaccount:ams-system:ams-security-operator

log() { printf '\n==> %s\n' "$*"; }

running() {
  [ -f "$STATE_DIR/$1.pid" ] && kill -0 "$(cat "$STATE_DIR/$1.pid")" 2>/dev/null
}

stop() {
  if running "$1"; then kill "$(cat "$STATE_DIR/$1.pid")"; fi
  rm -f "$STATE_DIR/$1.pid"
}

if [ "${1:-up}" = down ]; then
  stop operator
  stop emulator
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
cargo build --quiet --locked --features emulator,test-endpoints --bin ams-security-operator --bin ams-azure-emulator

mkdir -p "$STATE_DIR"
if ! running emulator; then
  # A fresh emulator is a fresh world: an operator still running against the old one goes too.
  stop operator
  log "starting the Azure emulator with $SEED"
  setsid "$TARGET_DIR/debug/ams-azure-emulator" --seed "$SEED" --bind 127.0.0.1:0 \
    --ca-out "$STATE_DIR/emulator-ca.pem" >"$STATE_DIR/emulator.log" 2>&1 </dev/null &
  echo $! >"$STATE_DIR/emulator.pid"
  for _ in $(seq 1 60); do
    grep -q 'admin API' "$STATE_DIR/emulator.log" 2>/dev/null && break
    running emulator || { cat "$STATE_DIR/emulator.log" >&2; exit 1; }
    sleep 0.5
  done
fi
cat "$STATE_DIR/emulator.log"
port=$(sed -n 's|^ams-azure-emulator listening on https://127.0.0.1:\([0-9]*\)$|\1|p' "$STATE_DIR/emulator.log")
tenant=$(sed -n 's|^  tenant: ||p' "$STATE_DIR/emulator.log")
client_id=$(sed -n 's|^  service principal operator: client id \([^,]*\),.*|\1|p' "$STATE_DIR/emulator.log")
admin() {
  curl -sS --fail-with-body --cacert "$STATE_DIR/emulator-ca.pem" \
    --resolve "localhost:$port:127.0.0.1" "https://localhost:$port/_emulator/$1" "${@:2}"
}

log "installing the CRDs"
# kubectl before 1.25 does not know x-kubernetes-validations (CEL) and refuses the CRD in its
# client-side check; the apiserver stores it without the rules (they apply from 1.25 on).
k apply --validate=false -f crds/
k wait --for condition=established --timeout=60s crd/mediaservicesaccounts.ams-security.io

log "validating the examples (every rule, CEL included, without a cluster)"
"$TARGET_DIR/debug/ams-security-operator" validate examples/*.yaml

log "applying the examples to namespace $NAMESPACE"
k get namespace "$NAMESPACE" >/dev/null 2>&1 || k create namespace "$NAMESPACE"
# examples/access-grants.yaml names this Secret; here it holds the emulator's operator principal.
k -n "$NAMESPACE" create secret generic tailspin-azure-credentials \
  --from-literal=tenantId="$tenant" --from-literal=clientId="$client_id" \
  --from-literal=clientSecret=local-operator-secret --dry-run=client -o yaml | k apply -f -
k apply -n "$NAMESPACE" -f examples/

if ! running operator; then
  log "starting the operator (workload identity, with a service account token the emulator minted)"
  admin admin -H 'content-type: application/json' \
    -d "{\"op\":\"mintServiceAccountToken\",\"subject\":\"$SUBJECT\",\"lifetimeSecs\":604800}" |
    python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin)["token"])' >"$STATE_DIR/token"
  health=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "$health" >"$STATE_DIR/health.port"
  AZURE_TENANT_ID="$tenant" AZURE_CLIENT_ID="$client_id" AZURE_FEDERATED_TOKEN_FILE="$STATE_DIR/token" \
    setsid "$TARGET_DIR/debug/ams-security-operator" run \
    --kubeconfig "$AMS_TEST_KUBECONFIG" --namespace "$NAMESPACE" \
    --azure-credential workload-identity --azure-extra-ca "$STATE_DIR/emulator-ca.pem" \
    --azure-host-override "login.microsoftonline.com=127.0.0.1:$port" \
    --azure-host-override "management.azure.com=127.0.0.1:$port" \
    --azure-host-override "*.vault.azure.net=127.0.0.1:$port" \
    --health-addr "127.0.0.1:$health" >"$STATE_DIR/operator.log" 2>&1 </dev/null &
  echo $! >"$STATE_DIR/operator.pid"
fi
health=$(cat "$STATE_DIR/health.port")
for _ in $(seq 1 60); do
  curl -sf "http://127.0.0.1:$health/readyz" >/dev/null 2>&1 && break
  running operator || { cat "$STATE_DIR/operator.log" >&2; exit 1; }
  sleep 0.5
done

log "waiting until every example is Ready"
if ! k wait -n "$NAMESPACE" --for=condition=Ready msa --all --timeout=180s; then
  k get msa -n "$NAMESPACE" -o yaml >&2
  tail -n 50 "$STATE_DIR/operator.log" >&2
  exit 1
fi
k get msa -n "$NAMESPACE" -o wide
printf '\noperator readiness: %s\n' "$(curl -sS "http://127.0.0.1:$health/readyz")"

log "what the operator wrote to Azure (the emulator's request log, writes only)"
admin requests | python3 -c '
import json, sys
for r in json.load(sys.stdin)["value"]:
    if r["method"] not in ("GET", "HEAD") and not r["host"].startswith(("login.", "localhost")):
        print("  %-6s %s %-28s %s" % (r["method"], r["status"], r["operation"], r["uri"].split("?")[0]))
'

cat <<EOF

Running on 127.0.0.1:
  kube-apiserver   kubeconfig $AMS_TEST_KUBECONFIG (kubectl: $AMS_KUBECTL)
  Azure emulator   https://127.0.0.1:$port, CA $STATE_DIR/emulator-ca.pem, admin API https://localhost:$port/_emulator/state
  operator         log $STATE_DIR/operator.log, http://127.0.0.1:$health/healthz and /readyz
Try: $AMS_KUBECTL --kubeconfig $AMS_TEST_KUBECONFIG describe msa -n $NAMESPACE fabrikam-media
Stop everything with: scripts/run-local.sh down
EOF
