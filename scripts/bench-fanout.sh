#!/usr/bin/env bash
# bench-fanout.sh: channel fan-out throughput and delay.
#   scripts/bench-fanout.sh [--only GROUP,...] [--rates R,...] [--repeat N] [--no-write] [--perf] [--list]
# One HTTP publisher (the publish API) at increasing rates, 64-byte messages
# stamped with the publisher's clock and a sequence number, to 10,000 and
# 100,000 subscribers of one channel and to 1,000 channels x 100 subscribers:
# deliveries per second, delay p50/p99 (publish to receipt), gaps, and the
# server's own counters (deliveries, slow_drops, ring_missed per worker).
# Setups: the server on CPU 0 (one worker, or six for 100,000 sockets under
# the 20,000-descriptor limit) with wsmill-load on CPU 1, and all workers
# unpinned; plus wsmill-floor --mode fanout on CPU 0 as the kernel's floor.
# Server config: client_publish = on, max_backpressure = 16M,
# slow_consumer = drop. Writes docs/bench/fanout.json (merging the groups
# run into what is there). DURATION=seconds per run (default 10). --perf
# records one worker with perf at each group's top rate. --rates replaces a
# group's publish rates, --repeat runs each rate N times (the targets take
# the median), --no-write only prints. BENCH_NICE=1 runs the
# measured processes at nice -20 (a machine shared with other work).
# When wsmill-load has a core of its own its subscribers use --recv spin
# (BENCH_RECV=epoll: they sleep in epoll, as before 2026-11-29), and tune-kernel.sh
# --local-clients sets net.core.skb_defer_max=0; docs/channels.md has both
# effects measured.
# Takes ~15 minutes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/deps.sh
ensure_packages "${WSMILL_BUILD_PACKAGES[@]}" python3 util-linux
case " $* " in *" --perf "*) ensure_packages linux-perf ;; esac
build_release
# Say what this run changes on the host (a setting is never lowered).
scripts/tune-kernel.sh --connections 200000 --local-clients --apply | grep -E '^(changed|# could not)' || true
exec /usr/bin/python3 scripts/bench_fanout.py "$@"
