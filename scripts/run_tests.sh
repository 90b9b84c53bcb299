#!/usr/bin/env bash
# The whole test suite, from a fresh clone: virtualenv, tools, the extension, then
# cargo fmt/clippy/test, ruff, mypy and pytest (once on SQLite, once on PostgreSQL).
# Safe to rerun; later runs reuse the virtualenv and the Cargo build folder.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# Outside the clone, so that every clone on this machine shares one Rust build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/queuectl/target}"
venv="${QUEUECTL_VENV:-$root/.venv}"

step() { printf '\n==> %s\n' "$*"; }

step "virtualenv at $venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
    "maturin>=1.7,<2" "pytest>=8" "ruff>=0.6" "mypy>=1.10" "click>=8.1" "platformdirs>=3" \
    "check-jsonschema>=0.29" "hypothesis>=6" "psycopg[binary]>=3.1" \
    "starlette>=0.40,<2" "uvicorn>=0.30,<1" "jinja2>=3.1,<4" \
    "playwright==1.65.2" "prometheus_client>=0.20" "schemathesis>=4.1,<5" \
    "mkdocs>=1.6,<2" "mkdocs-material>=9.5,<10" "mkdocstrings-python>=1.10"
export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"

# The browser tests drive Debian's Chromium (Playwright cannot download its own here).
if ! command -v chromium >/dev/null; then
    step "apt-get install chromium (for the dashboard's browser tests)"
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
export QUEUECTL_CHROMIUM="${QUEUECTL_CHROMIUM:-$(command -v chromium)}"

# The completion tests run the scripts in real zsh and fish as well as bash (each is
# skipped, saying so, where it cannot be installed).
if command -v apt-get >/dev/null && { ! command -v zsh >/dev/null || ! command -v fish >/dev/null; }; then
    step "apt-get install zsh fish (for the shell completion tests)"
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq zsh fish >/dev/null
fi

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test"
cargo test --workspace --locked

step "build and install the extension (maturin develop)"
maturin develop --locked -q

step "ruff"
ruff check python tests scripts
ruff format --check python tests scripts
step "mypy (for Linux, and for Windows and macOS: their branches are type-checked here)"
mypy
mypy --platform win32
mypy --platform darwin
step "stubtest: the .pyi stub against the built extension"
python -m mypy.stubtest queuectl._core

step "GitHub workflows against the workflow schema (bundled with check-jsonschema)"
check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

step "docs site (mkdocs build --strict: a broken link, a missing page or a warning fails)"
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "${TMPDIR:-/tmp}/queuectl-site-$$"
rm -rf "${TMPDIR:-/tmp}/queuectl-site-$$"

step "pytest on SQLite"
pytest -q "$@"
# The same end-to-end suite on PostgreSQL (QUEUECTL_TEST_PG, the local server by default),
# each test in a fresh schema; it skips with a message when no server answers.
step "pytest on PostgreSQL"
QUEUECTL_TEST_STORE=postgres pytest -q -rs "$@"
