#!/bin/bash
# fuzz.sh: build the libFuzzer targets (tests/fuzz) and run each for a while.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS defaults to 60 per target; TARGET is ws_frame, utf8, handshake,
# config, jwt, json, b64url, http_request, proxy_proto, pmd_offer or pmd_inflate (with or without the fuzz_ prefix); default all. The build lives
# in build-fuzz (clang, ASan+UBSan, -Dfuzz=true). Each target runs on a
# copy of tests/fuzz/corpus/TARGET so the checked-in seeds stay small; the
# run's corpus, log and any crash file stay under build-fuzz/fuzz-run/TARGET
# (FUZZ_RUN_DIR replaces build-fuzz/fuzz-run: scripts/test.sh's smoke run
# uses its own, so it cannot wipe a long run's corpus) and crash files are
# also copied to tests/fuzz/crashes/TARGET (git-ignored).
# Reproduce one with: build-fuzz/tests/unit/fuzz_TARGET CRASH_FILE
# Exits non-zero when any target crashed, after printing the crash input.
set -u

here=$(cd "$(dirname "$0")/.." && pwd)
build="$here/build-fuzz"
secs=${1:-60}
if [ $# -gt 0 ]; then shift; fi
case "$secs" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
all=(ws_frame utf8 handshake config jwt json b64url http_request proxy_proto pmd_offer pmd_inflate resume)
targets=()
for t in "${@:-${all[@]}}"; do
    t=${t#fuzz_}
    if [ ! -f "$here/tests/fuzz/fuzz_$t.c" ]; then
        echo "fuzz.sh: unknown target '$t' (have: ${all[*]})" >&2
        exit 2
    fi
    targets+=("$t")
done

if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" "$here" -Dfuzz=true -Db_sanitize=address,undefined \
        -Db_lundef=false -Dbuildtype=debugoptimized -Dload_tool=false || exit 1
fi
# Only the fuzz targets: they need common/ alone, so a half-written worker
# or master does not stop a fuzzing run.
ninja -C "$build" "${targets[@]/#/tests/unit/fuzz_}" || exit 1

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}

crashed=0
summary=()
for t in "${targets[@]}"; do
    run="${FUZZ_RUN_DIR:-$build/fuzz-run}/$t"
    rm -rf "$run/corpus"
    mkdir -p "$run/corpus"
    if [ -d "$here/tests/fuzz/corpus/$t" ]; then
        cp "$here/tests/fuzz/corpus/$t"/* "$run/corpus/" 2>/dev/null
    fi
    rm -f "$run"/crash-* "$run"/leak-* "$run"/timeout-* "$run"/oom-*
    echo "== fuzz_$t for ${secs}s (log: $run/log)"
    "$build/tests/unit/fuzz_$t" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$run/" "$run/corpus" >"$run/log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run/log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$run/log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$run/log" | tail -1 | cut -d' ' -f2)
    files=$(find "$run/corpus" -type f | wc -l)
    artifact=$(ls "$run"/crash-* "$run"/leak-* "$run"/timeout-* "$run"/oom-* 2>/dev/null | head -1)
    if [ $rc -ne 0 ] || [ -n "$artifact" ]; then
        crashed=1
        result="CRASH (exit $rc) ${artifact:-no artifact}"
        grep -m1 -E 'ERROR: |runtime error|deadly signal' "$run/log"
        grep -E '^    #[0-9]+ ' "$run/log" | head -8
        if [ -n "$artifact" ]; then
            # Also keep it where .gitignore expects crash inputs, so a later
            # `rm -rf build-fuzz` does not lose the reproducer.
            mkdir -p "$here/tests/fuzz/crashes/$t"
            cp "$artifact" "$here/tests/fuzz/crashes/$t/"
            echo "input ($(stat -c %s "$artifact") bytes, hex; copy in tests/fuzz/crashes/$t/):"
            od -An -tx1 -v "$artifact" | head -20
        fi
    else
        result=ok
    fi
    summary+=("$(printf '%-10s execs %-10s cov %-6s ft %-6s corpus %-5s %s' "$t" \
        "${execs:-?}" "${cov:-?}" "${ft:-?}" "$files" "$result")")
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit $crashed
