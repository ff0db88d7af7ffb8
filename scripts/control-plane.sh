#!/usr/bin/env bash
# A real Kubernetes control plane for tests: etcd, kube-apiserver and kube-controller-manager
# 1.20.2, built once from Debian's `kubernetes` source package and cached outside the work tree.
#
#   scripts/control-plane.sh build    build (or reuse) the cached binaries
#   scripts/control-plane.sh up       build if needed, start everything on loopback, print the
#                                     kubeconfig path; reuses a control plane that is already up
#   scripts/control-plane.sh down     stop what `up` started and remove its state
#   scripts/control-plane.sh env      print `export AMS_TEST_KUBECONFIG=...` for the running one
#
# An existing cluster can be used instead: set AMS_TEST_KUBECONFIG to its kubeconfig and `up`
# only checks that it answers. (A separate variable, not KUBECONFIG, so that a test run never
# lands on whatever cluster a developer's shell happens to point at.)
#
# Everything listens on 127.0.0.1 only, on ports picked free at start.
set -euo pipefail

K8S_VERSION=1.20.2
CACHE_DIR=${AMS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ams-security-operator}
BIN_DIR="$CACHE_DIR/k8s-$K8S_VERSION/bin"
STATE_DIR=${AMS_CONTROL_PLANE_DIR:-${TMPDIR:-/tmp}/ams-control-plane}
GO_BIN=/usr/lib/go-1.19/bin

log() { printf 'control-plane: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

enable_deb_src() {
  local src=/etc/apt/sources.list.d/debian.sources
  if [ -f "$src" ] && grep -q '^Types: deb$' "$src"; then
    log "enabling deb-src entries in $src"
    as_root sed -i 's/^Types: deb$/Types: deb deb-src/' "$src"
  fi
  as_root apt-get update -qq
}

have_binaries() {
  [ -x "$BIN_DIR/kube-apiserver" ] && [ -x "$BIN_DIR/kube-controller-manager" ] && [ -x "$BIN_DIR/kubectl" ]
}

cmd_build() {
  apt_install etcd-server openssl curl ca-certificates iproute2
  if have_binaries; then
    log "using cached binaries in $BIN_DIR"
    return 0
  fi
  apt_install golang-1.19-go rsync golang-github-modern-go-reflect2-dev dpkg-dev git
  enable_deb_src
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/ams-k8s-build.XXXXXX")
  log "fetching Debian's kubernetes source package into $work"
  (cd "$work" && apt-get source --download-only -qq kubernetes >/dev/null)
  local orig
  orig=$(find "$work" -maxdepth 1 -name 'kubernetes_*.orig.tar.*' | head -n 1)
  [ -n "$orig" ] || die "no orig tarball for kubernetes in $work"
  mkdir -p "$work/src"
  tar -xf "$orig" -C "$work/src" --strip-components=1
  local tree="$work/src"
  # The vendored reflect2 v1.0.1 crashes under Go >= 1.18 on the first custom-resource create;
  # Debian's 1.0.2 is a drop-in replacement.
  rm -rf "$tree/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$tree/vendor/github.com/modern-go/reflect2"
  rm -f "$tree/vendor/github.com/modern-go/reflect2/go.mod"
  (
    cd "$tree"
    git init -q . && git add -A >/dev/null 2>&1 && git -c user.email=b@localhost -c user.name=build commit -qm src >/dev/null
    mkdir -p .go/src/k8s.io
    ln -s ../../.. .go/src/k8s.io/kubernetes
    log "building kube-apiserver, kube-controller-manager and kubectl $K8S_VERSION (about 8 minutes on 2 cores)"
    GOPATH="$tree/.go" PATH="$GO_BIN:$PATH" CGO_ENABLED=0 \
      KUBE_GIT_VERSION="v$K8S_VERSION" \
      make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kubectl" >"$work/build.log" 2>&1 ||
      { tail -n 40 "$work/build.log" >&2; exit 1; }
  )
  mkdir -p "$BIN_DIR"
  for b in kube-apiserver kube-controller-manager kubectl; do
    install -m 0755 "$tree/_output/bin/$b" "$BIN_DIR/$b.tmp"
    mv "$BIN_DIR/$b.tmp" "$BIN_DIR/$b"
  done
  rm -rf "$work"
  log "cached binaries in $BIN_DIR"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

kubeconfig_path() { printf '%s/kubeconfig' "$STATE_DIR"; }

is_up() {
  local kc
  kc=$(kubeconfig_path)
  [ -f "$kc" ] && "$BIN_DIR/kubectl" --kubeconfig "$kc" --request-timeout=3s get --raw /readyz >/dev/null 2>&1
}

wait_for() {
  local what=$1 seconds=$2; shift 2
  local i
  for ((i = 0; i < seconds * 4; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  die "$what did not become ready within ${seconds}s; logs are in $STATE_DIR/*.log"
}

start_daemon() {
  local name=$1; shift
  # setsid: the daemons outlive the calling shell (a test runner may start them) and are
  # stopped as a group by `down`.
  setsid "$@" >"$STATE_DIR/$name.log" 2>&1 < /dev/null &
  echo $! >"$STATE_DIR/$name.pid"
}

# Fails unless every listening socket of the processes started here is on 127.0.0.1.
check_loopback_only() {
  local pids exposed
  pids=$(cat "$STATE_DIR"/*.pid | paste -sd'|')
  exposed=$(ss -Hltnp 2>/dev/null | grep -E "pid=($pids)," | awk '{print $4}' | grep -v '^127\.0\.0\.1:' || true)
  if [ -n "$exposed" ]; then
    cmd_down quiet
    die "refusing to run: listening beyond loopback on: $exposed"
  fi
}

cmd_up() {
  if [ -n "${AMS_TEST_KUBECONFIG:-}" ]; then
    kubectl_any --kubeconfig "$AMS_TEST_KUBECONFIG" --request-timeout=5s get --raw /readyz >/dev/null ||
      die "AMS_TEST_KUBECONFIG=$AMS_TEST_KUBECONFIG does not answer /readyz"
    printf '%s\n' "$AMS_TEST_KUBECONFIG"
    return 0
  fi
  cmd_build
  if is_up; then
    log "already up ($STATE_DIR)"
    printf '%s\n' "$(kubeconfig_path)"
    return 0
  fi
  cmd_down quiet
  mkdir -p "$STATE_DIR/etcd" "$STATE_DIR/certs"
  local etcd_port peer_port api_port token
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)
  token=$(openssl rand -hex 24)
  openssl genrsa -out "$STATE_DIR/sa.key" 2048 2>/dev/null
  openssl rsa -in "$STATE_DIR/sa.key" -pubout -out "$STATE_DIR/sa.pub" 2>/dev/null
  printf '%s,admin,admin,system:masters\n' "$token" >"$STATE_DIR/tokens.csv"
  chmod 600 "$STATE_DIR/tokens.csv" "$STATE_DIR/sa.key"

  start_daemon etcd etcd --name ams-test --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "ams-test=http://127.0.0.1:$peer_port"
  wait_for etcd 30 curl -fsS "http://127.0.0.1:$etcd_port/health"

  start_daemon kube-apiserver "$BIN_DIR/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
    --secure-port="$api_port" --insecure-port=0 --cert-dir="$STATE_DIR/certs" \
    --token-auth-file="$STATE_DIR/tokens.csv" --authorization-mode=RBAC \
    --service-account-key-file="$STATE_DIR/sa.pub" --service-account-signing-key-file="$STATE_DIR/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc --service-cluster-ip-range=10.96.0.0/16 \
    --enable-priority-and-fairness=false
  cat >"$(kubeconfig_path)" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ams-test
  cluster:
    server: https://127.0.0.1:$api_port
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: $token
contexts:
- name: ams-test
  context: {cluster: ams-test, user: admin}
current-context: ams-test
EOF
  chmod 600 "$(kubeconfig_path)"
  wait_for kube-apiserver 90 is_up

  start_daemon kube-controller-manager "$BIN_DIR/kube-controller-manager" \
    --kubeconfig="$(kubeconfig_path)" --bind-address=127.0.0.1 --secure-port=0 --port=0 \
    --service-account-private-key-file="$STATE_DIR/sa.key" --root-ca-file="$STATE_DIR/certs/apiserver.crt" \
    --use-service-account-credentials=false --leader-elect=false \
    --controllers='*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service,-route'
  # The default namespace's ServiceAccount appears once the controller-manager works.
  wait_for kube-controller-manager 60 "$BIN_DIR/kubectl" --kubeconfig "$(kubeconfig_path)" get serviceaccount default -n default
  check_loopback_only
  log "up: apiserver https://127.0.0.1:$api_port (state in $STATE_DIR)"
  printf '%s\n' "$(kubeconfig_path)"
}

kubectl_any() {
  if [ -x "$BIN_DIR/kubectl" ]; then "$BIN_DIR/kubectl" "$@"; else kubectl "$@"; fi
}

cmd_down() {
  local quiet=${1:-}
  [ -d "$STATE_DIR" ] || return 0
  for name in kube-controller-manager kube-apiserver etcd; do
    local pidfile="$STATE_DIR/$name.pid"
    if [ -f "$pidfile" ]; then
      local pid
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$STATE_DIR"
  [ -n "$quiet" ] || log "down"
}

cmd_env() {
  if [ -n "${AMS_TEST_KUBECONFIG:-}" ]; then
    printf 'export AMS_TEST_KUBECONFIG=%q\n' "$AMS_TEST_KUBECONFIG"
  elif is_up; then
    printf 'export AMS_TEST_KUBECONFIG=%q\nexport AMS_KUBECTL=%q\n' "$(kubeconfig_path)" "$BIN_DIR/kubectl"
  else
    die "no control plane is up; run: scripts/control-plane.sh up"
  fi
}

case "${1:-}" in
  build) cmd_build ;;
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  kubectl-path) printf '%s\n' "$BIN_DIR/kubectl" ;;
  *) die "usage: $0 build|up|down|env|kubectl-path" ;;
esac
