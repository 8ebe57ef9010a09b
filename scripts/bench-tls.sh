#!/usr/bin/env bash
# bench-tls.sh: wss:// figures (issue 15), certificates made at run time
# (openssl CLI, ECDSA P-256) for both sides.
#   idle:       N wss connections held (8 workers, wsmill-load hold), the
#               workers' RssAnon growth per connection, next to N plain ws
#   handshakes: TLS handshakes/s (connect, TLS, upgrade, close) of one wsmill
#               worker on CPU 0 against wsmill-floor --tls --mode upgrade on
#               CPU 0 (a minimal OpenSSL accept loop), wsmill-load on CPU 1
#   echo:       wss echo, 100 connections x 8 in flight, 64 bytes, the same
#               two servers
#   reload:     wss churn while the certificate is swapped and reloaded
#               RELOADS (8) times: failed handshakes must be 0
#   plain:      (with BASE_BIN=a build of main) plain ws handshakes/s and
#               echo, this build against that one, alternating
# RUNS rounds alternate the servers; medians and ratios in docs/bench/tls.json.
#   scripts/bench-tls.sh [--only idle,handshakes,echo]   (N=100000 RUNS=3 DURATION=10)
# Run it under the benchmark lock: flock /tmp/wsmill-bench.lock scripts/bench-tls.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/deps.sh
ensure_packages "${WSMILL_BUILD_PACKAGES[@]}" python3 util-linux iproute2 openssl
build_release
exec /usr/bin/python3 scripts/bench_tls.py "$@"
