#!/usr/bin/env bash
# Builds the Python OpenLDAP connector into target/wasm32-wasip2/release/openldap_py.wasm with
# componentize-py (0.25.1, from PyPI), from the workspace's WIT contract.
#
# COMPONENTIZE_PY names the componentize-py to run (default: the one on PATH). tests/run installs
# it in a venv under target/py and passes it here.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="$(realpath -m "${CARGO_TARGET_DIR:-$root/target}")"
componentize_py="${COMPONENTIZE_PY:-componentize-py}"
if [[ $componentize_py == */* ]]; then componentize_py="$(realpath "$componentize_py")"; fi
out="$target/wasm32-wasip2/release/openldap_py.wasm"
bindings="$target/py/openldap-py-bindings"

cd "$root"
# The bindings, for reading and type-checking app.py; generated, never committed
# (componentize generates its own from the same WIT).
rm -rf "$bindings"
"$componentize_py" -d wit -w plugin bindings "$bindings"
mkdir -p "$(dirname "$out")"
cd "$here"
"$componentize_py" -d "$root/wit" -w plugin componentize app -p "$here" -o "$out.tmp"
mv "$out.tmp" "$out"
echo "built $out ($(stat -c %s "$out") bytes)"
