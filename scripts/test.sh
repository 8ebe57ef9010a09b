#!/usr/bin/env bash
# test.sh: README's second command. Installs what it needs (Debian packages),
# builds a release build (build/) and a sanitizer build (build-asan/), runs
# the unit tests under ASan+UBSan, the integration tests against the release
# binary and again against the ASan+UBSan binary, the load tool's selftest
# (the benchmarks' figures rest on it), each libFuzzer target for
# FUZZ_SMOKE_SECS (default 5) seconds, and ends with one line
# "N passed, N failed".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=deps.sh
. scripts/deps.sh

ensure_packages "${WSMILL_BUILD_PACKAGES[@]}" python3 python3-websockets python3-pytest clang-format redis-server \
    prometheus chromium chromium-driver python3-selenium \
    clang libclang-rt-14-dev systemd haproxy openssl

PY=/usr/bin/python3
passed=0
failed=0
record() { # record NAME STATUS
    if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "== $1: ok"; else failed=$((failed + 1)); echo "== $1: FAILED"; fi
}

[ -d build ] || meson setup build >/dev/null
ninja -C build
[ -d build-asan ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbuildtype=debug -Dload_tool=false >/dev/null
ninja -C build-asan

set +e
scripts/check-format.sh
record "format (clang-format)" $?

scripts/gen-config-doc.sh --check
record "docs/config.md matches the config table" $?

$PY scripts/check-layout.py build
record "layout (README table, rooms, file and function sizes)" $?

ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --suite unit --print-errorlogs
record "unit tests (ASan+UBSan)" $?

# The suite runs against the release binary and, at the same time, against
# the sanitizer build: the tests mostly wait on sockets and timers, so the
# two passes share the two cores without slowing each other much, and the
# suite stays under ten minutes. Each pass takes its ports from a range of
# its own (WSMILL_TEST_PORTS, conftest.free_port). WSMILL_TEST_SERIAL=1 runs
# them one after the other.
#
# The sanitizer pass: any report fails the test during which it appeared
# (conftest.py reads each server's stderr), since a worker that aborts is
# respawned and the test might pass anyway. LSan checks the master, which
# exits through main(); workers leave with _exit() and are not leak-checked
# (their memory dies with them). Memory-bound assertions are skipped there
# (conftest.SANITIZED says why).
mkdir -p build/test-logs
# Those ranges are kept out of the kernel's automatic port choice while the
# suite runs: a benchmark may have widened ip_local_port_range to 1024-65535
# (tune-kernel for a million connections), and then a client's outgoing
# connection could take a port a test server is about to bind.
reserved=/proc/sys/net/ipv4/ip_local_reserved_ports
old_reserved=$(cat "$reserved" 2>/dev/null || true)
if [ -w "$reserved" ]; then
    echo "10000-31999" >"$reserved"
else
    echo "note: cannot write $reserved (not root): test ports may collide with outgoing connections" >&2
fi
run_release() {
    WSMILL_TEST_PORTS=10000-20999 WSMILL_BIN="$ROOT/build/wsmill" \
        $PY -m pytest -q -p no:cacheprovider tests/integration >build/test-logs/integration.log 2>&1
}
run_asan() {
    WSMILL_TEST_PORTS=21000-31999 WSMILL_BIN="$ROOT/build-asan/wsmill" ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1 \
        $PY -m pytest -q -p no:cacheprovider tests/integration >build/test-logs/integration-asan.log 2>&1
}
if [ "${WSMILL_TEST_SERIAL:-0}" = 1 ]; then
    run_release
    st_release=$?
    run_asan
    st_asan=$?
else
    run_release &
    pid_release=$!
    run_asan &
    pid_asan=$!
    wait $pid_release
    st_release=$?
    wait $pid_asan
    st_asan=$?
fi
[ -w "$reserved" ] && echo "$old_reserved" >"$reserved"
cat build/test-logs/integration.log
record "integration tests" $st_release
cat build/test-logs/integration-asan.log
record "integration tests (ASan+UBSan build)" $st_asan

# wsmill-load and wsmill-floor against a fake server: every figure in
# docs/bench/ is counted by them.
$PY tests/load/selftest.py --bindir "$ROOT/build/tests/load"
record "load tool selftest" $?

FUZZ_RUN_DIR="$ROOT/build-fuzz/smoke" scripts/fuzz.sh "${FUZZ_SMOKE_SECS:-5}"
record "fuzz smoke (${FUZZ_SMOKE_SECS:-5} s per target)" $?
set -e

echo "groups: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
