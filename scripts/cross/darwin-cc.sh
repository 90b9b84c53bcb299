#!/usr/bin/env bash
# A stand-in C compiler for `cargo check --target x86_64-apple-darwin` on Linux, where no
# macOS SDK exists. The build scripts of bundled SQLite and of ring compile C for the
# target; a check never links, so an empty object for every `-c ... -o FILE.o` is enough.
# Anything else (a build script probing the compiler) goes to the host gcc without the
# Apple-only flags. This checks queuectl's Rust for macOS; it compiles no C for macOS.
set -euo pipefail
out="" compile=0 args=()
while [ $# -gt 0 ]; do
    case "$1" in
        -c) compile=1 ;;
        -o) out="$2"; args+=("$1" "$2"); shift ;;
        -arch) shift ;;
        -mmacosx-version-min=*) ;;
        *) args+=("$1") ;;
    esac
    shift
done
if [ "$compile" = 1 ] && [ -n "$out" ]; then
    : > "$out"
    exit 0
fi
exec gcc "${args[@]}"
