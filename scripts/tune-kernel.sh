#!/usr/bin/env bash
# tune-kernel.sh: the sysctls a host needs to hold N WebSocket connections,
# each with the reason. Prints them (as `sysctl -w` commands); with --apply,
# writes the ones short of target and prints each change as
# "changed KEY: OLD -> NEW". A setting is never lowered: each value of a
# multi-valued one (tcp_mem) is compared and kept on its own.
#   scripts/tune-kernel.sh [--connections N] [--local-clients] [--apply]
# --local-clients: the load generator runs on this host too (every connection
# is then two sockets, the client side needs source ports, and each core
# should free the buffers it received itself).
# The table and the comparison live in the binary (`wsmill tune`, shared with
# `wsmill check` and `wsmill check --plan`): this script builds it if needed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${WSMILL_BIN:-$ROOT/build/wsmill}"
N=1000000
ARGS=()
LOCAL=0
APPLY=0
while [ $# -gt 0 ]; do
    case "$1" in
    --connections) N="$2"; shift 2 ;;
    --apply) APPLY=1; ARGS+=(--apply); shift ;;
    --local-clients) LOCAL=1; ARGS+=(--local-clients); shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 1 ;;
    esac
done
if [ ! -x "$BIN" ]; then
    (cd "$ROOT" && . scripts/deps.sh && ensure_packages "${WSMILL_BUILD_PACKAGES[@]}" && build_release) >&2
fi
SOCKETS=$N
[ "$LOCAL" -eq 1 ] && SOCKETS=$((2 * N))
rc=0
"$BIN" tune --connections "$N" "${ARGS[@]}" || rc=$?
MEM_KB=$(awk '/MemAvailable/{print $2}' /proc/meminfo)
NEED_KB=$((SOCKETS * 5))
echo "# memory: ~5 KB of kernel memory per socket -> ~$((NEED_KB / 1024)) MiB for $SOCKETS sockets; MemAvailable $((MEM_KB / 1024)) MiB"
if [ "$NEED_KB" -gt "$MEM_KB" ]; then
    echo "# SHORTFALL: not enough memory for $SOCKETS sockets"
    [ "$APPLY" -eq 1 ] || rc=1
fi
HARD=$(ulimit -Hn)
echo "# per-process descriptors: each worker holds up to RLIMIT_NOFILE connections; wsmill raises the soft limit to the hard limit."
echo "#   hard limit now $HARD: with it, $(((N + HARD - 33) / (HARD - 32))) workers are needed for $N connections"
echo "# for another machine: build/wsmill check --plan $N --memory SIZE --cores N"
exit "$rc"
