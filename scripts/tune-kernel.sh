#!/usr/bin/env bash
# tune-kernel.sh: the sysctls a host needs to hold N WebSocket connections,
# each with the reason. Prints them (as `sysctl -w` commands); with --apply,
# writes the ones below target (never lowers a setting, except the one
# --local-clients asks to be at most a value).
#   scripts/tune-kernel.sh [--connections N] [--local-clients] [--apply]
# --local-clients: the load generator runs on this host too (every connection
# is then two sockets, the client side needs source ports, and each core
# should free the buffers it received itself).
set -euo pipefail
N=1000000
APPLY=0
LOCAL=0
while [ $# -gt 0 ]; do
    case "$1" in
    --connections) N="$2"; shift 2 ;;
    --apply) APPLY=1; shift ;;
    --local-clients) LOCAL=1; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 1 ;;
    esac
done
SOCKETS=$N
[ "$LOCAL" -eq 1 ] && SOCKETS=$((2 * N))

current() { cat "/proc/sys/${1//.//}" 2>/dev/null || echo "absent"; }
shortfall=0
want() { # want KEY VALUE REASON   (numeric: raise only; CMP=-le want ...: lower only)
    local key="$1" value="$2" reason="$3" cur
    cur="$(current "$key")"
    if [ "$cur" = "absent" ]; then
        printf '# %-36s not on this kernel (%s)\n' "$key" "$reason"
        return
    fi
    local first="${cur%%[[:space:]]*}"
    if [[ "$value" =~ ^[0-9]+$ ]] && [[ "$first" =~ ^[0-9]+$ ]] && [ "$first" "${CMP:--ge}" "$value" ]; then
        printf '# ok  %-32s = %-12s %s\n' "$key" "$cur" "$reason"
        return
    fi
    shortfall=$((shortfall + 1))
    printf 'sysctl -w %s="%s"   # now %s: %s\n' "$key" "$value" "$cur" "$reason"
    if [ "$APPLY" -eq 1 ]; then
        sysctl -q -w "$key=$value" || echo "  (could not set $key)" >&2
    fi
}

echo "# kernel settings for $N connections ($SOCKETS sockets on this host)"
want fs.file-max $((SOCKETS + SOCKETS / 10 + 65536)) "system-wide open files: one per socket, plus 10% headroom"
want fs.nr_open $((N > 1048576 ? N + 1024 : 1048576)) "ceiling for a process's RLIMIT_NOFILE (raise the hard limit to it too)"
want net.core.somaxconn 65535 "accept queue per listening socket: absorbs connect bursts during a ramp"
want net.ipv4.tcp_max_syn_backlog 65535 "half-open (SYN_RECV) connections per listener during a ramp"
want net.core.netdev_max_backlog 65536 "packets queued on the loopback/NIC backlog during bursts"
want net.ipv4.tcp_max_orphans $((SOCKETS / 4 > 131072 ? SOCKETS / 4 : 131072)) "closing sockets no process owns (mass disconnects)"
if [ -e /proc/sys/net/netfilter/nf_conntrack_max ]; then
    want net.netfilter.nf_conntrack_max $((SOCKETS + SOCKETS / 4)) "connection tracking is loaded: every connection takes an entry, a full table drops SYNs"
fi
# tcp_mem is in pages: idle sockets hold no buffers, but a burst of
# messages to many clients does; allow ~4 KiB per socket in flight.
PAGES=$(( SOCKETS * 4096 / 4096 ))
want net.ipv4.tcp_mem "$((PAGES / 2)) $((PAGES * 3 / 4)) $PAGES" "pages TCP may use for buffers before it starts dropping"
if [ "$LOCAL" -eq 1 ]; then
    want net.ipv4.ip_local_port_range "1024 65535" "source ports per client address; the load tool spreads over 127.0.0.2.. to go past 64k"
    want net.ipv4.tcp_tw_reuse 1 "reuse TIME_WAIT ports for new outgoing connections (churn tests)"
    CMP=-le want net.core.skb_defer_max 0 "at most: a client frees what it received on its own core instead of handing it back to the server's (fan-out sends took 7.4-7.7 us instead of 7.7-9.2 here, docs/channels.md)"
fi
want vm.max_map_count 262144 "many workers with large maps"
want net.ipv4.tcp_migrate_req 1 "a retired SO_REUSEPORT listener hands its queued connections to the others (zero-downtime reload)"
MEM_KB=$(awk '/MemAvailable/{print $2}' /proc/meminfo)
NEED_KB=$(( SOCKETS * 5 ))
echo "# memory: ~5 KB of kernel memory per socket -> ~$((NEED_KB / 1024)) MiB for $SOCKETS sockets; MemAvailable $((MEM_KB / 1024)) MiB"
if [ "$NEED_KB" -gt "$MEM_KB" ]; then
    echo "# SHORTFALL: not enough memory for $SOCKETS sockets"
    shortfall=$((shortfall + 1))
fi
echo "# per-process descriptors: each worker holds up to RLIMIT_NOFILE connections; wsmill raises the soft limit to the hard limit."
echo "#   hard limit now $(ulimit -Hn): with it, $(( (N + $(ulimit -Hn) - 33) / ($(ulimit -Hn) - 32) )) workers are needed for $N connections"
if [ "$APPLY" -eq 1 ]; then
    echo "# applied"
    exit 0
fi
[ "$shortfall" -eq 0 ]
