#!/usr/bin/env bash
# Refresh the vendored front-end files in python/queuectl/ui/static/vendor/
# from the npm registry, using curl + tar only (no npm).
#
# Usage: scripts/vendor_assets.sh
# To upgrade, change a pin below, run the script, and review the diff.
set -euo pipefail

HTMX_VERSION="2.0.11"   # htmx.org, latest 2.x
UPLOT_VERSION="1.6.32"  # uplot, latest 1.6.x

REGISTRY="https://registry.npmjs.org"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/python/queuectl/ui/static/vendor"

for tool in curl tar python3; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/stage"
mkdir -p "$STAGE"
: > "$STAGE/VERSIONS.txt"

# Print one field of the version metadata: tarball or integrity.
meta_field() {
    python3 - "$1" "$2" <<'PY'
import json, sys
meta = json.load(open(sys.argv[1]))
print(meta.get("dist", {}).get(sys.argv[2], ""))
PY
}

# base64 sha512 of a file, as npm writes it after "sha512-".
sha512_b64() {
    if command -v openssl >/dev/null; then
        openssl dgst -sha512 -binary "$1" | openssl base64 -A
    else
        python3 -c 'import base64,hashlib,sys; print(base64.b64encode(hashlib.sha512(open(sys.argv[1],"rb").read()).digest()).decode())' "$1"
    fi
}

# fetch NAME VERSION: download, verify and unpack into $WORK/NAME/package.
fetch() {
    local name="$1" version="$2"
    local dir="$WORK/$name"
    mkdir -p "$dir"

    echo "==> $name@$version"
    curl -fsSL --retry 3 -o "$dir/meta.json" "$REGISTRY/$name/$version"

    local tarball integrity
    tarball="$(meta_field "$dir/meta.json" tarball)"
    integrity="$(meta_field "$dir/meta.json" integrity)"
    [[ -n "$tarball" ]] || tarball="$REGISTRY/$name/-/$name-$version.tgz"
    if [[ "$integrity" != sha512-* ]]; then
        echo "error: no sha512 integrity in metadata for $name@$version" >&2
        exit 1
    fi

    curl -fsSL --retry 3 -o "$dir/pkg.tgz" "$tarball"

    local actual="sha512-$(sha512_b64 "$dir/pkg.tgz")"
    if [[ "$actual" != "$integrity" ]]; then
        echo "error: integrity mismatch for $name@$version" >&2
        echo "  expected $integrity" >&2
        echo "  got      $actual" >&2
        exit 1
    fi
    echo "    integrity ok"

    tar -xzf "$dir/pkg.tgz" -C "$dir"
    printf '%s %s %s\n' "$name" "$version" "$integrity" >> "$STAGE/VERSIONS.txt"
}

# take NAME SRC DEST: copy one file out of an unpacked package.
take() {
    local src="$WORK/$1/package/$2"
    [[ -f "$src" ]] || { echo "error: $1 has no $2" >&2; exit 1; }
    cp "$src" "$STAGE/$3"
}

fetch htmx.org "$HTMX_VERSION"
take htmx.org dist/htmx.min.js htmx.min.js
take htmx.org LICENSE LICENSE.htmx.txt

fetch uplot "$UPLOT_VERSION"
take uplot dist/uPlot.iife.min.js uPlot.iife.min.js
take uplot dist/uPlot.min.css uPlot.min.css
take uplot LICENSE LICENSE.uplot.txt

# Only touch the tree once everything has been fetched and checked.
mkdir -p "$DEST"
for f in "$STAGE"/*; do
    install -m 0644 "$f" "$DEST/$(basename "$f")"
done

echo "==> wrote $DEST"
ls -l "$DEST"
