#!/usr/bin/env bash
# bench-handshakes.sh: WebSocket handshakes per second of one wsmill worker
# pinned to CPU 0, against wsmill-floor answering every upgrade with a bare,
# correct 101 on the same CPU (the floor: no state, no checks), with
# wsmill-load on CPU 1. Two loads: a ramp (N connections opened as fast as
# they go, held) and churn (connect, upgrade, close, again). RUNS rounds,
# alternating; medians and ratios in docs/bench/handshakes.json.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/deps.sh
ensure_packages "${WSMILL_BUILD_PACKAGES[@]}" python3 util-linux iproute2
build_release
exec /usr/bin/python3 scripts/bench_handshakes.py "$@"
