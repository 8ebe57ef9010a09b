#!/usr/bin/env bash
# bench-history.sh: what history and resume cost (docs/history.md):
# fan-out to 10,000 subscribers with history off / on / on with wsmill.v1,
# idle memory per subscriber, a storm of 10,000 clients resuming 100
# messages behind, and the 1,000-subscriber resume test at full scale.
#   scripts/bench-history.sh [--only fanout,memory,storm,resume-1000] [--no-write]
# Writes docs/bench/history.json. DURATION, RATE, REPEAT, BENCH_NICE=1: see
# scripts/bench_history.py. Takes ~5 minutes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/deps.sh
ensure_packages "${WSMILL_BUILD_PACKAGES[@]}" python3 python3-websockets python3-pytest util-linux
build_release
scripts/tune-kernel.sh --connections 200000 --local-clients --apply >/dev/null
exec /usr/bin/python3 scripts/bench_history.py "$@"
