#!/usr/bin/env bash
# bench-connections.sh: how many connections, how fast, at what memory.
#   scripts/bench-connections.sh [N ...]        (default: 10000 100000 250000 500000 1000000)
# For each N: starts wsmill with enough workers for the open-file limit, opens
# N connections with wsmill-load hold from 127.0.0.2.., holds them (HOLD
# seconds, default 60), checks a sample still echoes, closes them, and records
# time to establish, handshakes/s, failures, server user-space bytes per
# connection (sum of worker RSS while holding minus before) and kernel bytes
# per connection (Slab and sockstat). Writes docs/bench/connections.json and
# docs/bench/connections.png. Needs root for the sysctls (tune-kernel.sh) and
# the network namespace it runs in (NETNS=name, default wsmill-bench; see
# docs/tuning.md). Knobs: HOLD, RATE, PER_SRC, TIMEOUT, CONN_TIMEOUT,
# MAX_PENDING, EXTRA_CONF="key = value;key = value" (added to the server config).
# PLAN=1: the server runs on the shipped conf/wsmill.conf plus only the lines
# `wsmill check --plan N --memory MEM --cores C --nofile HARD --local-clients`
# prints for this box (workers, limits, keepalive); the result records both.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/deps.sh
ensure_packages "${WSMILL_BUILD_PACKAGES[@]}" python3 python3-matplotlib iproute2
build_release
# Host-wide settings only: the port range and the other per-namespace ones
# are applied inside the benchmark's own network namespace, so that widening
# the client port range cannot hand port 8080 to some unrelated client.
# Say what this run changes on the host (a setting is never lowered).
scripts/tune-kernel.sh --connections "$((2 * ${MAX_N:-1000000}))" --apply | grep -E '^(changed|# could not)' || true
exec /usr/bin/python3 scripts/bench_connections.py "$@"
