#!/usr/bin/env bash
# test.sh: README's second command. Installs what it needs (Debian packages),
# builds a release build (build/) and a sanitizer build (build-asan/), runs
# the unit tests under ASan+UBSan and the integration tests against the real
# binary, and ends with one line "N passed, N failed".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=deps.sh
. scripts/deps.sh

ensure_packages "${WSMILL_BUILD_PACKAGES[@]}" python3 python3-websockets python3-pytest clang-format redis-server

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

ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --suite unit --print-errorlogs
record "unit tests (ASan+UBSan)" $?

WSMILL_BIN="$ROOT/build/wsmill" $PY -m pytest -q -p no:cacheprovider tests/integration
record "integration tests" $?
set -e

echo "groups: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
