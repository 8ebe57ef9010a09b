#!/usr/bin/env bash
# bench-reload.sh: reloads (workers 4 -> 2 -> 4 ..., RELOADS of them, one a
# second) and binary upgrades (UPGRADES: USR2, then WINCH) while wsmill-load
# churns CHURN concurrent connect-upgrade-echo-close loops against the
# server: handshakes attempted and failed, and signal-to-serving times.
# Writes docs/bench/reload.json. Takes ~25 seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/deps.sh
ensure_packages "${WSMILL_BUILD_PACKAGES[@]}" python3
build_release
exec /usr/bin/python3 scripts/bench_reload.py "$@"
