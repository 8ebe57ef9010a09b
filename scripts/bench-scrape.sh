#!/usr/bin/env bash
# bench-scrape.sh: does scraping /metrics every second slow the data path?
# Pipelined echo (100 connections x 8 in flight, 64 B) and a fan-out (10,000
# subscribers, 50 messages/s: 500,000 deliveries/s asked) against one worker
# on CPU 0, wsmill-load on CPU 1, each REPEAT times (default 3) without and
# with a scraper, alternating; prints the medians and the spread and writes
# docs/bench/scrape.json. DURATION=seconds per run (default 10).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/deps.sh
ensure_packages "${WSMILL_BUILD_PACKAGES[@]}" python3 util-linux
build_release
exec /usr/bin/python3 scripts/bench_scrape.py "$@"
