#!/usr/bin/env bash
# wsmill.sh: build and drive a wsmill server.
#   wsmill.sh run|start|stop|reload|upgrade|status|check [-c FILE]
#   wsmill.sh status [-c FILE | -s SOCKET] [--json] [--interval SECONDS]
# FILE defaults to conf/wsmill.conf in the repository. Settings (pid_file,
# log_file, drain_timeout) are asked from the binary (`wsmill get KEY`), so
# this script never re-implements the config defaults.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build
BIN=$BUILD/wsmill
CONF=$ROOT/conf/wsmill.conf
START_TIMEOUT=15  # seconds for the status socket to answer after start
RELOAD_TIMEOUT=10 # seconds for the master to handle SIGHUP
SERVE_TIMEOUT=30  # seconds for a new generation (or new master) to serve
STOP_MARGIN=5     # seconds on top of drain_timeout
# shellcheck source=SCRIPTDIR/deps.sh
. "$ROOT/scripts/deps.sh" # ensure_packages, WSMILL_BUILD_PACKAGES

usage() {
    cat <<EOF
usage: $(basename "$0") COMMAND [-c FILE]
  run     build if needed, then run the server in the foreground
  start   build if needed, start in the background, wait until it answers;
          print its pid, the addresses it serves and where its log goes
  stop    graceful stop (SIGTERM), wait for the master to exit
  reload  SIGHUP, wait until the new configuration (and, when workers or
          listen changed, the new generation of workers) serves; print what
          changed and what the old generation still drains. The master
          re-reads the file it was started with: -c naming another file is
          refused, saying which file that is
  upgrade build, then replace the running binary without dropping a
          connection: SIGUSR2, wait until the new master serves, then
          SIGWINCH to the old one (WSMILL_NO_BUILD=1 skips the build)
  status  a summary of the running server (connections, workers, rates over
          --interval seconds, default 1, rejections, closes, broker, last
          reload); --json: the status socket's JSON; -s SOCKET: ask that
          socket, no config needed; works while FILE has an error
  check   build if needed, validate FILE and report whether max_connections fits
          (and, with broker = redis, whether Redis answers: exit 3 if not);
          check --plan N --memory SIZE --cores C [--nofile H] [--local-clients]:
          what another box needs for N connections (docs/tuning.md)
FILE defaults to conf/wsmill.conf in the repository ($ROOT).
Reload and upgrade in detail: docs/reload.md.
EOF
}

die() {
    echo "wsmill.sh: $*" >&2
    exit 1
}

# Installs missing Debian packages (as root, when apt-get exists), then
# configures and builds. Build output goes to stderr so stdout stays data.
ensure_built() {
    # Not root: the build itself then names what is missing.
    ensure_packages "${WSMILL_BUILD_PACKAGES[@]}" || true
    [[ -d $BUILD ]] || meson setup "$BUILD" "$ROOT" >&2
    ninja -C "$BUILD" >&2
    [[ -x $BIN ]] || die "the build produced no $BIN"
}

need_bin() {
    [[ -x $BIN ]] || ensure_built
}

# One setting as the binary resolves it (this also validates the file).
get() {
    "$BIN" get "$1" -c "$CONF"
}

# A duration as config_format writes it ("10s", "500ms") in whole seconds.
seconds() {
    case $1 in
    *ms) echo $(((${1%ms} + 999) / 1000)) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
    esac
}

status_json() {
    "$BIN" status --json -c "$CONF" 2>/dev/null
}

# These read the status JSON (one line) with sed: KEY must be unique in
# what they are given, so nested objects are cut out first.
json_int() { # json_int KEY < json
    sed -n "s/.*\"$1\":\(-\{0,1\}[0-9]*\).*/\1/p" | head -n 1
}

json_str() { # json_str KEY < json (escapes are left as they are)
    sed -n "s/.*\"$1\":\"\(\([^\"\\]\|\\\\.\)*\)\".*/\1/p" | head -n 1
}

json_obj() { # json_obj KEY < json: the inside of a flat object
    sed -n "s/.*\"$1\":{\([^{}]*\)}.*/\1/p" | head -n 1
}

json_top() { # json_top < json: the top level without the workers array
    sed 's/,"workers":\[.*//'
}

# The master's pid: from pid_file, else from the status socket.
master_pid() {
    local pid_file pid=""
    pid_file=$(get pid_file) || exit 1
    if [[ -n $pid_file && -r $pid_file ]]; then
        read -r pid <"$pid_file" || true
    elif [[ -z $pid_file ]]; then
        pid=$(status_json | json_int master_pid) || true
    fi
    [[ -n $pid ]] && alive "$pid" || return 1
    echo "$pid"
}

# Where the server's output goes: its log_file, else build/wsmill.out.
log_path() {
    local f
    f=$(get log_file) || exit 1
    echo "${f:-$BUILD/wsmill.out}"
}

show_log_tail() {
    local f
    f=$(log_path)
    if [[ -r $f ]]; then
        echo "--- last lines of $f:" >&2
        tail -n 20 "$f" >&2
    fi
}

cmd_run() {
    ensure_built
    exec "$BIN" -c "$CONF"
}

cmd_start() {
    ensure_built
    get pid_file >/dev/null || exit 1
    if status_json >/dev/null; then
        die "already running (pid $(status_json | json_int master_pid))"
    fi
    local out pid i
    out=$(log_path)
    # setsid: the server survives this shell and its terminal; nohup keeps
    # the controlling terminal's hangup away (the master resets SIGHUP).
    setsid nohup "$BIN" -c "$CONF" >>"$out" 2>&1 </dev/null &
    pid=$!
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
        if ST=$(status_json); then
            started_message "$out"
            return 0
        fi
        if ! alive "$pid"; then
            show_log_tail
            die "wsmill exited during start-up"
        fi
        sleep 0.1
    done
    show_log_tail
    die "status socket did not answer within ${START_TIMEOUT}s (pid $pid)"
}

# What `start` prints once the status socket answers ($ST): the pid, the
# addresses as bound, and where the log goes.
started_message() {
    local log publish
    log=$(json_str log_file <<<"$ST")
    publish=$(json_str publish_listen <<<"$ST")
    echo "wsmill started: pid $(json_int master_pid <<<"$ST")"
    echo "  WebSocket    ws://$(json_str listen <<<"$ST")/echo, ws://$(json_str listen <<<"$ST")/ch/NAME"
    if [[ -n $publish ]]; then
        echo "  publish API  http://$publish/pub/NAME"
    else
        echo "  publish API  off (publish_listen is empty)"
    fi
    echo "  log          ${log:-$1}"
    echo "  capacity     max_connections $(json_int max_connections <<<"$ST")$(
        [[ $(json_int max_connections_auto <<<"$ST") == 1 ]] && echo " (auto: what the open-file limit and memory allow)")"
    echo "  status       $0 status -c $CONF"
}

# A master that exited but was not reaped yet (a zombie) counts as gone.
alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $state != Z ]]
}

cmd_stop() {
    need_bin
    local pid wait i
    get pid_file >/dev/null || die "cannot find the pid file: fix $CONF first (or kill -TERM the master)"
    pid=$(master_pid) || die "not running (no live pid in $(get pid_file))"
    wait=$(($(seconds "$(get drain_timeout)") + STOP_MARGIN))
    kill -TERM "$pid"
    for ((i = 0; i < wait * 10; i++)); do
        if ! alive "$pid"; then
            echo "wsmill stopped: pid $pid"
            return 0
        fi
        sleep 0.1
    done
    show_log_tail
    die "pid $pid still running ${wait}s after SIGTERM"
}

# Polls the status socket until "$@" (a test on $ST) holds; ST is the
# last answer. Returns 1 after SERVE_TIMEOUT seconds.
wait_status() {
    local i
    for ((i = 0; i < SERVE_TIMEOUT * 10; i++)); do
        ST=$(status_json) || ST=""
        if [[ -n $ST ]] && "$@"; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

reload_handled() {
    local seq
    seq=$(json_obj last_reload <<<"$ST" | json_int seq)
    [[ -n $seq ]] && ((seq > SEQ_BEFORE))
}

reload_serving() {
    [[ $(json_obj last_reload <<<"$ST" | json_int serving) == 1 ]]
}

# A reload re-reads the file the master was started with; refuse when -c
# names another one instead of printing "changed: nothing".
same_config_file() {
    local theirs mine
    theirs=$(json_str config_file <<<"$ST")
    mine=$(realpath -e "$CONF")
    [[ -z $theirs || $theirs == "$mine" ]] && return 0
    echo "wsmill.sh: not reloading: the running master (pid $(json_int master_pid <<<"$ST")) reads $theirs," >&2
    echo "  not $mine; SIGHUP makes it re-read its own file. Edit that file and reload," >&2
    echo "  or stop it and start with -c $mine (or run a second server with its own listen, pid_file, status_socket)." >&2
    return 1
}

cmd_reload() {
    need_bin
    local pid r gen
    # A broken file would be refused by the master anyway; say why now.
    get pid_file >/dev/null || die "not reloading: fix $CONF first"
    pid=$(master_pid) || die "not running"
    ST=$(status_json) || die "the status socket does not answer"
    same_config_file || exit 1
    SEQ_BEFORE=$(json_obj last_reload <<<"$ST" | json_int seq)
    [[ -n $SEQ_BEFORE ]] || die "the status socket does not report reloads (an older wsmill?)"
    kill -HUP "$pid"
    if ! SERVE_TIMEOUT=$RELOAD_TIMEOUT wait_status reload_handled; then
        show_log_tail
        die "pid $pid did not handle SIGHUP within ${RELOAD_TIMEOUT}s"
    fi
    r=$(json_obj last_reload <<<"$ST")
    if [[ $(json_int ok <<<"$r") != 1 ]]; then
        die "reload failed, the old configuration keeps running: $(json_str error <<<"$r")"
    fi
    gen=$(json_int generation <<<"$r")
    if ((gen > 0)) && ! wait_status reload_serving; then
        show_log_tail
        die "worker generation $gen is not serving ${SERVE_TIMEOUT}s after SIGHUP (the old one still is)"
    fi
    r=$(json_obj last_reload <<<"$ST")
    echo "wsmill reloaded: configuration generation $(json_int config_generation <<<"$ST")," \
        "changed: $(json_str changed <<<"$r")"
    if ((gen > 0)); then
        echo "worker generation $gen serving $(json_int serving_ms <<<"$r") ms after SIGHUP;" \
            "older generations draining $(json_top <<<"$ST" | json_int draining_connections) connections" \
            "on $(json_top <<<"$ST" | json_int draining_workers) workers (at most drain_timeout)"
    fi
}

# The new master answers on the status socket with all its workers active.
new_master_serving() {
    local states
    [[ $(json_int master_pid <<<"$ST") == "$NEW_PID" ]] || return 1
    states=$(grep -o '"state":"[a-z]*"' <<<"$ST" | sort -u)
    [[ $states == '"state":"active"' ]]
}

# The old master answers again (the new one failed) or the new one is up.
upgrade_settled() {
    local up
    NEW_PID=""
    if [[ -r $PID_FILE ]]; then
        read -r NEW_PID <"$PID_FILE" || true
    fi
    if [[ $(json_int master_pid <<<"$ST") == "$OLD_PID" ]]; then
        up=$(json_obj upgrade <<<"$ST")
        (($(json_int failed <<<"$up") > FAILED_BEFORE || $(json_int refused <<<"$up") > REFUSED_BEFORE))
        return
    fi
    [[ -n $NEW_PID && $NEW_PID != "$OLD_PID" ]] && alive "$NEW_PID" && new_master_serving
}

cmd_upgrade() {
    if [[ ${WSMILL_NO_BUILD:-} == 1 ]]; then
        need_bin
    else
        ensure_built
    fi
    local up old_status
    PID_FILE=$(get pid_file) || die "not upgrading: fix $CONF first"
    [[ -n $PID_FILE ]] || die "upgrade needs a pid_file in $CONF"
    OLD_PID=$(master_pid) || die "not running"
    ST=$(status_json) || die "the status socket does not answer"
    up=$(json_obj upgrade <<<"$ST")
    FAILED_BEFORE=$(json_int failed <<<"$up")
    REFUSED_BEFORE=$(json_int refused <<<"$up")
    [[ -n $FAILED_BEFORE ]] || die "the status socket does not report upgrades (an older wsmill?)"
    kill -USR2 "$OLD_PID"
    if ! wait_status upgrade_settled; then
        show_log_tail
        die "no new master serving ${SERVE_TIMEOUT}s after SIGUSR2; pid $OLD_PID still serves"
    fi
    if [[ $(json_int master_pid <<<"$ST") == "$OLD_PID" ]]; then
        show_log_tail
        die "upgrade failed, pid $OLD_PID keeps serving: $(json_obj upgrade <<<"$ST" | json_str last_error)"
    fi
    kill -WINCH "$OLD_PID"
    sleep 0.2 # let it retire before we ask what it still holds
    old_status=$("$BIN" status --json --oldbin -c "$CONF" 2>/dev/null | json_top) || old_status=""
    echo "wsmill upgraded: new master pid $NEW_PID serving with" \
        "$(grep -o '"state":"active"' <<<"$ST" | wc -l) workers ($(json_obj upgrade <<<"$ST" | json_str binary))"
    echo "old master pid $OLD_PID: retiring its workers, draining" \
        "$(json_int draining_connections <<<"$old_status") connections (at most drain_timeout);" \
        "it exits when they are done"
}

cmd_status() {
    need_bin
    if [[ -n $STATUS_SOCK ]]; then
        exec "$BIN" status -s "$STATUS_SOCK" "${STATUS_ARGS[@]}"
    fi
    exec "$BIN" status -c "$CONF" "${STATUS_ARGS[@]}"
}

cmd_check() {
    ensure_built
    exec "$BIN" check -c "$CONF" "${CHECK_ARGS[@]}"
}

main() {
    local cmd="" conf=""
    STATUS_ARGS=()
    STATUS_SOCK=""
    CHECK_ARGS=()
    while (($#)); do
        case $1 in
        -s)
            (($# >= 2)) || die "-s needs a SOCKET"
            STATUS_SOCK=$2
            shift 2
            ;;
        --json)
            STATUS_ARGS+=("$1")
            shift
            ;;
        --plan | --memory | --cores | --nofile)
            (($# >= 2)) || die "$1 needs a value"
            CHECK_ARGS+=("$1" "$2")
            shift 2
            ;;
        --local-clients)
            CHECK_ARGS+=("$1")
            shift
            ;;
        --interval)
            (($# >= 2)) || die "--interval needs SECONDS"
            STATUS_ARGS+=("$1" "$2")
            shift 2
            ;;
        -c)
            (($# >= 2)) || die "-c needs a FILE"
            conf=$2
            shift 2
            ;;
        -h | --help | help)
            usage
            exit 0
            ;;
        run | start | stop | reload | upgrade | status | check)
            [[ -z $cmd ]] || die "one command at a time"
            cmd=$1
            shift
            ;;
        *)
            usage >&2
            die "unexpected argument '$1'"
            ;;
        esac
    done
    [[ -n $cmd ]] || { usage >&2; exit 1; }
    if [[ $cmd != status && (-n $STATUS_SOCK || ${#STATUS_ARGS[@]} -gt 0) ]]; then
        die "-s, --json and --interval are options of status"
    fi
    if [[ $cmd != check && ${#CHECK_ARGS[@]} -gt 0 ]]; then
        die "--plan, --memory, --cores, --nofile and --local-clients are options of check"
    fi
    if [[ -n $conf ]]; then
        [[ $conf == /* ]] || conf=$PWD/$conf
        CONF=$conf
    fi
    if [[ $cmd != status || -z $STATUS_SOCK ]]; then
        [[ -r $CONF ]] || die "cannot read $CONF"
    fi
    # Relative paths inside the file resolve against the repository root,
    # whatever directory this script was called from.
    cd "$ROOT"
    "cmd_$cmd"
}

main "$@"
