#!/usr/bin/env bash
# bench-redis.sh: channels across nodes over Redis.
#   scripts/bench-redis.sh [--only GROUP,...] [--list]
# Three wsmill nodes (broker = redis, 2 workers each) sharing one
# redis-server, SUBS subscribers on each node (default 2,000), one HTTP
# publisher on node 1 at RATES messages/s (default 25,100) for DURATION s
# (default 5): deliveries/s and delay p50/p99 (publish to receipt), beside the
# same load on one node with broker = local; and what one PUBLISH costs
# redis-server with 1, 2, 6 and 64 subscriber connections (the per-worker
# connection choice, docs/redis.md). Writes docs/bench/redis.json. Every run
# is bounded in time and count; all processes are stopped by pid. Takes
# about 2 minutes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/deps.sh
ensure_packages "${WSMILL_BUILD_PACKAGES[@]}" python3 redis-server
build_release
# Say what this run changes on the host (a setting is never lowered).
scripts/tune-kernel.sh --connections 20000 --local-clients --apply | grep -E '^(changed|# could not)' || true
exec /usr/bin/python3 scripts/bench_redis.py "$@"
