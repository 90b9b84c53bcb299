#!/usr/bin/env bash
# The shipped forms, tested as a user gets them:
#   1. the release abi3 wheel, installed into a fresh virtualenv outside the checkout, run
#      with no Rust toolchain on PATH;
#   2. the sdist (built, not installed: building it needs Rust);
#   3. the one-file binary, copied alone into an empty folder and run with a minimal
#      environment (env -i), including `worker start --detach` and `worker stop`.
# Each runs the same scenario; the binary's size and start-up times are printed. The wheel
# and the binary then also run a job on PostgreSQL (QUEUECTL_TEST_PG, the local server by
# default; TLS is on there), which proves the compiled-in driver and TLS work as shipped.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/queuectl/target}"
work=$(mktemp -d /tmp/qctl-dist.XXXXXX)
trap 'rm -rf "$work"' EXIT
py=python3
passed=0 skipped=0

fail() { echo "FAILED: $*" >&2; exit 1; }

# scenario NAME CMD...: runs queuectl (CMD...) in a minimal environment with its own home.
scenario() {
    local name=$1; shift
    local home="$work/home-$name" fake_home="$work/user-$name"
    mkdir -p "$fake_home"
    q() { env -i PATH=/usr/bin:/bin HOME="$fake_home" QUEUECTL_HOME="$home" "$@"; }
    local qc=("$@")
    echo "--- scenario: $name"
    q "${qc[@]}" --version
    # A usage error must be one line and exit 2 (this once caught a module the binary lacked).
    local rc=0 err
    err=$(q "${qc[@]}" worker start --no-such-flag 2>&1 >/dev/null) || rc=$?
    [ "$rc" = 2 ] && [[ "$err" == "Error: No such option '--no-such-flag'"* ]] || fail "$name: usage error: $rc $err"
    # Every command's module is in it (the CLI imports them lazily, by name).
    for c in enqueue worker status list show logs dlq config purge cancel retry delete wait \
        explain queue schedule service migrate check backup ui metrics; do
        q "${qc[@]}" "$c" --help >/dev/null || fail "$name: $c --help"
    done
    # The time-zone database (the system's, read by the compiled-in jiff) and a pipeline.
    q "${qc[@]}" schedule add nightly --cron '30 2 * * *' --tz Europe/Berlin --command true >/dev/null
    q "${qc[@]}" schedule next nightly --count 1 | grep -q 'T02:30:00+0[12]:00$' || fail "$name: schedule next"
    q "${qc[@]}" schedule remove nightly >/dev/null
    q "${qc[@]}" service install --print | grep -q '^ExecStart=' || fail "$name: service install --print"
    q "${qc[@]}" enqueue --id first --command true >/dev/null
    q "${qc[@]}" enqueue --id second --after first --command true >/dev/null
    q "${qc[@]}" worker start --burst --quiet 2>/dev/null
    [ "$(q "${qc[@]}" show second --json | $py -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = completed ] \
        || fail "$name: the job after another did not run"
    q "${qc[@]}" purge --completed >/dev/null
    q "${qc[@]}" config set backoff-max 0 >/dev/null
    local ok
    ok=$(q "${qc[@]}" enqueue '{"command":"echo hello"}')
    q "${qc[@]}" enqueue '{"id":"bad","command":"exit 7","max_retries":1}' >/dev/null
    q "${qc[@]}" worker start --burst --quiet 2>/dev/null
    [ "$(q "${qc[@]}" show "$ok" --json | $py -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = completed ] \
        || fail "$name: the echo job did not complete"
    q "${qc[@]}" dlq list --json | $py -c 'import json,sys; d=json.load(sys.stdin); assert [j["id"] for j in d]==["bad"] and d[0]["attempts"]==2, d' \
        || fail "$name: the failing job is not in the DLQ after 2 attempts"
    q "${qc[@]}" status --json | $py -c 'import json,sys; s=json.load(sys.stdin); assert s["jobs"]=={"waiting":0,"pending":0,"processing":0,"completed":1,"failed":0,"dead":1,"cancelled":0}, s' \
        || fail "$name: status --json"
    # Detached workers must come from this same program, then stop through the database.
    q "${qc[@]}" enqueue --command 'sleep 1' --id slow >/dev/null
    q "${qc[@]}" worker start --detach --count 2
    q "${qc[@]}" worker list --json | $py -c 'import json,sys; assert len(json.load(sys.stdin))==2' \
        || fail "$name: detached workers are not listed"
    for _ in $(seq 100); do
        [ "$(q "${qc[@]}" show slow --json | $py -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = completed ] && break
        sleep 0.1
    done
    q "${qc[@]}" worker stop
    [ "$(q "${qc[@]}" worker list --json)" = "[]" ] || fail "$name: workers still listed after stop"
    q "${qc[@]}" logs "$ok" | grep -qx hello || fail "$name: logs"
    # The dashboard, with its templates and vendored scripts, and the metrics.
    q "${qc[@]}" metrics | grep -q '^queuectl_jobs_finished_total{queue="default",outcome="completed"} [1-9]' \
        || fail "$name: metrics"
    local port=$((20000 + RANDOM % 20000)) ui_log="$work/ui-$name.log"
    q "${qc[@]}" ui --bind "127.0.0.1:$port" 2>"$ui_log" &
    local ui_pid=$!
    for _ in $(seq 100); do grep -q "dashboard on" "$ui_log" && break; sleep 0.1; done
    local base="http://127.0.0.1:$port"
    # Each answer read whole before it is searched: with pipefail, `curl | grep -q` fails
    # whenever grep stops reading before curl has written everything (CI met it once).
    local page
    page=$(curl -sf "$base/jobs/$ok") && grep -q 'echo hello' <<<"$page" || fail "$name: ui job page: $(cat "$ui_log")"
    page=$(curl -sf "$base/static/vendor/htmx.min.js") && grep -q htmx <<<"$page" || fail "$name: ui static files"
    page=$(curl -sf "$base/metrics") && grep -q '^queuectl_jobs{' <<<"$page" || fail "$name: ui /metrics"
    # $! is the subshell running q; the dashboard is its child, so it is stopped by its
    # address (killing the subshell alone left it running after the script).
    pkill -f -- "ui --bind 127.0.0.1:$port" || true
    kill "$ui_pid" 2>/dev/null || true; wait "$ui_pid" 2>/dev/null || true
    echo "--- scenario $name: ok"
    passed=$((passed + 1))
}

# postgres_scenario NAME CMD...: enqueue, a burst run and the result on a fresh schema.
postgres_scenario() {
    local name=$1; shift
    local venv="$root/.venv/bin/python"
    local server="${QUEUECTL_TEST_PG:-postgresql://postgres@127.0.0.1:5432/test}"
    local schema="qd_$$_$name"
    if ! "$venv" -c "import psycopg,sys; psycopg.connect(sys.argv[1], connect_timeout=5).close()" "$server" 2>/dev/null; then
        echo "--- postgres scenario $name: SKIPPED (no PostgreSQL server answers at $server, or no psycopg in .venv)"
        skipped=$((skipped + 1))
        return
    fi
    "$venv" -c "import psycopg,sys; c=psycopg.connect(sys.argv[1], autocommit=True); c.execute(f'DROP SCHEMA IF EXISTS {sys.argv[2]} CASCADE; CREATE SCHEMA {sys.argv[2]}')" "$server" "$schema"
    local url="$server?options=-csearch_path%3D$schema"
    q() { env -i PATH=/usr/bin:/bin HOME="$work" QUEUECTL_HOME="$work/pg-$name" QUEUECTL_DB="$url" "$@"; }
    local id
    id=$(q "$@" enqueue '{"command":"echo over postgres"}')
    q "$@" worker start --burst --quiet 2>/dev/null
    q "$@" logs "$id" | grep -qx "over postgres" || fail "$name: job on PostgreSQL"
    q "$@" --version | grep -q "store: postgresql://" || fail "$name: --version on PostgreSQL"
    "$venv" -c "import psycopg,sys; c=psycopg.connect(sys.argv[1], autocommit=True); c.execute(f'DROP SCHEMA {sys.argv[2]} CASCADE')" "$server" "$schema"
    echo "--- postgres scenario $name: ok"
    passed=$((passed + 1))
}

median_ms() {  # median wall time in ms of a command, 11 runs
    $py - "$@" <<'PY'
import statistics, subprocess, sys, time
times = []
for _ in range(11):
    t = time.perf_counter()
    subprocess.run(sys.argv[1:], check=True, capture_output=True)
    times.append(time.perf_counter() - t)
print(f"{statistics.median(times) * 1000:.0f}")
PY
}

echo "==> release wheel and sdist"
tools="$work/tools"
python3 -m venv "$tools"
"$tools/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.7,<2"
"$tools/bin/maturin" build --release --locked -q -o "$work/wheels"
"$tools/bin/maturin" sdist -o "$work/sdist" >/dev/null
wheel=$(ls "$work"/wheels/*.whl)
sdist=$(ls "$work"/sdist/*.tar.gz)
case "$wheel" in *-cp39-abi3-*) ;; *) fail "not an abi3 wheel for Python >= 3.9: $wheel" ;; esac
listing=$(tar -tzf "$sdist")
grep -q 'rust/core/src/store/sqlite/mod.rs' <<<"$listing" || fail "the sdist lacks the Rust sources"
passed=$((passed + 1))
echo "wheel: $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB); sdist: $(basename "$sdist")"

echo "==> wheel in a fresh virtualenv, outside the checkout, without Rust on PATH"
(cd "$work" && python3 -m venv wheel-venv && env -i PATH=/usr/bin:/bin HOME="$work" \
    wheel-venv/bin/python -m pip install -q --disable-pip-version-check "$wheel")
scenario wheel "$work/wheel-venv/bin/queuectl"
postgres_scenario wheel "$work/wheel-venv/bin/queuectl"

echo "==> one-file binary"
binary=$(./scripts/build_binary.sh)
mkdir "$work/bin-only"
cp "$binary" "$work/bin-only/queuectl"
scenario binary "$work/bin-only/queuectl"
postgres_scenario binary "$work/bin-only/queuectl"
size_mb=$($py -c "import os,sys; print(f'{os.path.getsize(sys.argv[1])/2**20:.1f}')" "$work/bin-only/queuectl")
version_ms=$(median_ms env -i PATH=/usr/bin:/bin HOME="$work" "$work/bin-only/queuectl" --version)
enqueue_ms=$(median_ms env -i PATH=/usr/bin:/bin HOME="$work" QUEUECTL_HOME="$work/home-timing" \
    "$work/bin-only/queuectl" enqueue '{"command":"true"}')
wheel_enqueue_ms=$(median_ms env -i PATH=/usr/bin:/bin HOME="$work" QUEUECTL_HOME="$work/home-timing" \
    "$work/wheel-venv/bin/queuectl" enqueue '{"command":"true"}')
# Before the dashboard the binary was 7.5 MB; it may grow by 3 MB at most.
$py -c "import sys; sys.exit(float(sys.argv[1]) > 10.5)" "$size_mb" || fail "the binary is ${size_mb} MB (more than 10.5)"
echo "binary: ${size_mb} MB; median --version ${version_ms} ms; median enqueue ${enqueue_ms} ms" \
     "(wheel install: enqueue ${wheel_enqueue_ms} ms)"
echo "dist tests: $passed passed, $skipped skipped, 0 failed"
