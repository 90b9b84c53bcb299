#!/usr/bin/env bash
# Builds the one-file `queuectl` binary into dist/: the release wheel is installed into a
# build virtualenv of its own and PyInstaller bundles that. Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/queuectl/target}"
unset VIRTUAL_ENV
build_venv="${QUEUECTL_BUILD_VENV:-$root/.venv-build}"

[ -x "$build_venv/bin/python" ] || python3 -m venv "$build_venv"
"$build_venv/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.7,<2" "pyinstaller>=6"
rm -rf dist/wheels
"$build_venv/bin/maturin" build --release --locked -q -o dist/wheels >&2
"$build_venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall dist/wheels/*.whl
"$build_venv/bin/pyinstaller" --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
    packaging/queuectl.spec >&2
echo "$root/dist/queuectl"
