#!/usr/bin/env bash
# Offline validation of deploy/kubernetes: no cluster needed.
#
#  1. kubernetes-validate --strict (schemas shipped in the PyPI package, pinned
#     in requirements.txt) on every manifest of kustomization.yaml and on
#     secret.example.yaml, for each version in KUBERNETES_VERSIONS. A kind it
#     has no schema for is only a warning to the tool; here it is a failure.
#  2. With kubectl on PATH: `kubectl kustomize` renders the kustomization and
#     the rendered output is validated the same way (skipped, saying so,
#     without kubectl).
#  3. check.py: images pinned (no :latest; portcullis at Cargo.toml's
#     version), every container non-root with a read-only root filesystem and
#     no privileges, no Secret with values shipped, no hard-coded namespace,
#     Services, PDBs, the HPA and servicemonitor.yaml pointing at what exists,
#     and every configured variable one that src/config.rs reads.
#
# Usage: deploy/kubernetes/validate.sh   (from anywhere)
# Environment: KUBERNETES_VERSIONS (default "1.30.0 1.37.0": the oldest
# version still commonly run and the newest the pinned package knows).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

venv=$root/target/kubernetes-validate-venv
requirements=$here/requirements.txt
versions=${KUBERNETES_VERSIONS:-1.30.0 1.37.0}

# --- kubernetes-validate in its own venv, installed only when the pin changed
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
stamp=$venv/.requirements.sha256
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ] || [ ! -x "$venv/bin/kubernetes-validate" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$wanted" > "$stamp"
fi

# The files of kustomization.yaml's `resources:` list.
mapfile -t manifests < <("$venv/bin/python" -c '
import sys, yaml
for name in yaml.safe_load(open(sys.argv[1]))["resources"]:
    print(name)
' "$here/kustomization.yaml")
[ "${#manifests[@]}" -gt 0 ] || { echo "kustomization.yaml lists no resources" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Validates the files given against every version; fails on any ERROR, any
# WARN (a kind or apiVersion without a schema: a typo, or a removed API) and
# any non-zero status.
validate() { # label file...
    local label=$1 status=0 version
    shift
    for version in $versions; do
        "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$@" > "$work/out" 2>&1 || status=$?
        if [ "$status" -ne 0 ] || grep -qv '^INFO ' "$work/out"; then
            echo "FAILED: kubernetes-validate --strict -k $version on the $label:" >&2
            cat "$work/out" >&2
            exit 1
        fi
        echo "valid under kubernetes-validate --strict -k $version: the $label"
    done
}

( cd "$here" && validate "manifests (${manifests[*]} secret.example.yaml)" "${manifests[@]}" secret.example.yaml )

rendered=
if command -v kubectl > /dev/null 2>&1; then
    rendered=$work/rendered.yaml
    kubectl kustomize "$here" > "$rendered"
    echo "kubectl kustomize: rendered $(grep -c '^kind: ' "$rendered") resources"
    validate "rendered kustomization" "$rendered"
else
    echo "kubectl not found: skipping the kustomize render and its validation"
fi

"$venv/bin/python" "$here/check.py" "$here" "$root/Cargo.toml" "$root/src/config.rs" $rendered
echo "deploy/kubernetes is valid"
