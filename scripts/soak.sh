#!/usr/bin/env bash
# soak.sh [MINUTES]: runs the real server (build/wsmill, 2 workers) under
# connection churn, echo traffic, channel subscribers and publishes, and
# hostile clients, all at once for MINUTES (default 30); records every
# minute the RSS of every process, the server's counters, the load tools'
# progress and the hostile clients' outcomes; prints first / peak / last
# RSS per process and a verdict; writes docs/bench/soak.json (SOAK_OUT
# overrides). Exit 0 when the verdict is ok. The work is in scripts/soak.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
minutes=${1:-30}
case "$minutes" in
    '' | *[!0-9]* | 0) echo "usage: $0 [MINUTES]" >&2; exit 2 ;;
esac
if [ ! -x build/wsmill ] || [ ! -x build/tests/load/wsmill-load ]; then
    [ -d build ] || meson setup build >/dev/null
    ninja -C build
fi
exec /usr/bin/python3 scripts/soak.py "$minutes"
