#!/usr/bin/env bash
# bench-echo.sh: echo throughput and latency of one wsmill worker pinned to
# CPU 0 with wsmill-load on CPU 1, for 64-byte and 4 KiB messages at 100 and
# 10,000 connections, beside the same load against wsmill-floor (raw TCP
# echo, and a bare WebSocket echo) on the same CPU. Prints one JSON line per
# case and writes docs/bench/echo.json. DURATION=seconds per run (default 10).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/deps.sh
ensure_packages "${WSMILL_BUILD_PACKAGES[@]}" python3 util-linux
build_release
exec /usr/bin/python3 scripts/bench_echo.py "$@"
