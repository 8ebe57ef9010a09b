#!/usr/bin/env bash
# bench-deflate.sh: what permessage-deflate costs and saves (docs/deflate.md).
#   idle memory: 100,000 connections held without deflate, with deflate
#     negotiated and nothing compressed, every connection having echoed one
#     plain message, and every connection having sent one compressed message
#     while keeping its context (its window), sampled idle after the echo;
#   fan-out: 10,000 subscribers of one channel on one worker (CPU 0, the load
#     tool on CPU 1), 512-byte messages, deflate off and on;
#   echo: 100 connections x 8 in flight, 512-byte JSON text, off and on.
# Writes docs/bench/deflate.json. Run it alone on the machine (flock
# /tmp/wsmill-bench.lock scripts/bench-deflate.sh); PARTS=idle,fanout,echo
# picks parts, DURATION seconds per run (default 10), HOLD for the idle part.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/deps.sh
ensure_packages "${WSMILL_BUILD_PACKAGES[@]}" python3 iproute2 util-linux
build_release
exec /usr/bin/python3 scripts/bench_deflate.py "$@"
