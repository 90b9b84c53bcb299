#!/usr/bin/env bash
# Fuzzes the core's parsers with cargo fuzz (libFuzzer): each target in rust/fuzz/ for
# SECONDS (15 by default), one after another, from the seeds in rust/fuzz/seeds/ plus the
# corpus earlier runs grew. Fails when any target finds a crash (a panic, a broken property,
# a timeout or a memory error); the input is kept in rust/fuzz/artifacts/TARGET/.
#
#   ./scripts/fuzz.sh            # 15 s per target, as CI runs it
#   ./scripts/fuzz.sh 300        # the long run of docs/dev/testing.md
#   FUZZ_TARGETS="cron" ./scripts/fuzz.sh 60
#
# cargo fuzz needs nightly flags (-Z sanitizer, coverage instrumentation); the stable
# toolchain accepts them with RUSTC_BOOTSTRAP=1, which this script sets for its own cargo
# only. The build and the corpus live outside the clone, so that reruns are warm.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds="${1:-15}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/queuectl"
target_dir="$cache/fuzz-target"
corpus_dir="$cache/fuzz-corpus"
fuzz_dir="$root/rust/fuzz"
targets="${FUZZ_TARGETS:-job_json job_batch duration cron}"
export RUSTC_BOOTSTRAP=1

step() { printf '\n==> %s\n' "$*"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    step "cargo install cargo-fuzz"
    cargo install cargo-fuzz --locked --version '^0.13'
fi

step "cargo fmt --check (the fuzz crate)"
cargo fmt --manifest-path "$fuzz_dir/Cargo.toml" -- --check

# AddressSanitizer, debug assertions and overflow checks (cargo fuzz's defaults), on an
# optimised build.
step "cargo fuzz build ($(cargo fuzz --version))"
cargo fuzz build --fuzz-dir "$fuzz_dir" --target-dir "$target_dir" -O -a

failed=()
summary=()
for t in $targets; do
    step "fuzz $t for ${seconds}s"
    mkdir -p "$corpus_dir/$t"
    log="$(mktemp)"
    # The first folder is the corpus libFuzzer adds to; the seeds are only read.
    # -timeout: an input that takes 10 s is a finding (a rule that hangs `schedule add`).
    if cargo fuzz run --fuzz-dir "$fuzz_dir" --target-dir "$target_dir" -O -a "$t" \
        "$corpus_dir/$t" "$fuzz_dir/seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result=FAILED
        failed+=("$t")
        grep -E -A30 'panicked|ERROR: libFuzzer|ERROR: AddressSanitizer|deadly signal|timeout' "$log" | head -60 || tail -40 "$log"
        grep -E 'Test unit written to' "$log" || true
    fi
    # A crash on the first input leaves no statistics: each read may find nothing.
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2 || true)
    corpus=$(find "$corpus_dir/$t" -type f | wc -l)
    summary+=("$(printf '%-10s %-7s %12s %9s %8s %7s' "$t" "$result" "${runs:-?}" "${rate:-?}" "${cov:-?}" "$corpus")")
    rm -f "$log"
done

step "summary (${seconds}s per target; corpus in $corpus_dir)"
printf '%-10s %-7s %12s %9s %8s %7s\n' target result executions exec/s coverage corpus
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzzing found a crash in: ${failed[*]} (inputs in rust/fuzz/artifacts/; replay one with"
    echo "  RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir rust/fuzz TARGET rust/fuzz/artifacts/TARGET/FILE)"
    exit 1
fi
