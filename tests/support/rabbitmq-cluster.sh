#!/usr/bin/env bash
# A throwaway three-node RabbitMQ cluster on this machine, for the tests that
# kill a broker node (tests/rabbitmq_cluster.rs). The nodes run from the
# installed rabbitmq-server, as the calling user, with everything they write
# under DIR: their own node names, AMQP and distribution ports, config, data,
# logs, pid files, no plugins, and an Erlang cookie of their own in
# DIR/.erlang.cookie (HOME=DIR for every Erlang process started here), so the
# machine's own RabbitMQ node is never touched, not even by mistake.
#
#   rabbitmq-cluster.sh start DIR [BASE_PORT]  three nodes, clustered; the last line of
#                                              stdout (and DIR/urls) is their AMQP URLs,
#                                              comma-separated
#   rabbitmq-cluster.sh stop-node DIR NODE     kills NODE's Erlang VM with SIGKILL (a crash)
#   rabbitmq-cluster.sh start-node DIR NODE    starts NODE again, waits until it rejoined the
#                                              nodes that are running
#   rabbitmq-cluster.sh leader DIR QUEUE       the node leading quorum queue QUEUE (vhost /)
#   rabbitmq-cluster.sh port-of DIR NODE       NODE's AMQP port
#   rabbitmq-cluster.sh ctl DIR NODE ARGS...   rabbitmqctl -n NODE ARGS, with the cluster's cookie
#   rabbitmq-cluster.sh queues DIR NODE ARGS...  rabbitmq-queues -n NODE ARGS, likewise
#   rabbitmq-cluster.sh stop DIR               stops every node (idempotent; DIR is kept)
#
# NODE is a, b or c, a node's short name (pc-a) or full name (pc-a@localhost),
# or its AMQP port. Progress goes to stderr; only results go to stdout.
#
# Environment:
#   RABBITMQ_CLUSTER_BASE_PORT  first AMQP port tried (default 5681, then
#                               5684...); distribution ports are 20000 above
#   RABBITMQ_CLUSTER_PREFIX     node name prefix (default pc, or pc2...pc9
#                               when another cluster on this host has pc)
#   RABBITMQ_CLUSTER_ERL_ARGS   extra Erlang VM flags (default
#                               "+S 1:1 +SDcpu 1:1 +A 4"; empty for none)
#   RABBITMQ_CLUSTER_TIMEOUT    seconds to wait for a node (default 120)
#   RABBITMQ_SBIN               directory of the real rabbitmq-server and
#                               rabbitmqctl scripts (default: found)
#
# By hand, other RabbitMQ tools reach the nodes with the cluster's cookie:
#   /usr/lib/rabbitmq/bin/rabbitmq-diagnostics --erlang-cookie "$(cat DIR/.erlang.cookie)" -n pc-a@localhost status
# (Debian's /usr/sbin/rabbitmqctl runs as the rabbitmq user, with the
# machine node's cookie, and cannot.)
set -euo pipefail
# Under pipefail, `producer | grep -q` fails when grep exits at its first
# match and the producer dies of SIGPIPE; the pipelines here use
# `grep ... >/dev/null`, which reads to the end.

KEYS=(a b c)
TIMEOUT=${RABBITMQ_CLUSTER_TIMEOUT:-120}
STARTED_MS=$(($(date +%s%N) / 1000000))

log() {
    local ms=$(($(date +%s%N) / 1000000 - STARTED_MS))
    printf '[rabbitmq-cluster %d.%01ds] %s\n' "$((ms / 1000))" "$((ms % 1000 / 100))" "$*" >&2
}

die() {
    log "error: $*"
    exit 1
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

# The directory of the real RabbitMQ scripts. Debian's /usr/sbin/rabbitmqctl
# is a wrapper that switches to the rabbitmq user (and its cookie and home);
# the scripts it calls live next to it in /usr/lib/rabbitmq/bin.
find_sbin() {
    if [ -n "${RABBITMQ_SBIN:-}" ]; then
        echo "$RABBITMQ_SBIN"
        return
    fi
    if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
        echo /usr/lib/rabbitmq/bin
        return
    fi
    local ctl
    ctl=$(PATH=$PATH:/usr/sbin:/sbin command -v rabbitmqctl || true)
    [ -n "$ctl" ] || die "rabbitmqctl not found: install rabbitmq-server (apt-get install rabbitmq-server)"
    dirname "$(readlink -f "$ctl")"
}

SBIN=$(find_sbin)
[ -x "$SBIN/rabbitmq-server" ] && [ -x "$SBIN/rabbitmqctl" ] ||
    die "no rabbitmq-server/rabbitmqctl in $SBIN (set RABBITMQ_SBIN)"

# The host part of the node names: localhost when it resolves to loopback.
node_host() {
    if getent hosts localhost 2>/dev/null | grep -E '^(127\.|::1)' >/dev/null; then
        echo localhost
    else
        hostname -s
    fi
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null &&
        ! { command -v ss >/dev/null && ss -Hltn "sport = :$1" 2>/dev/null | grep . >/dev/null; }
}

name_free() {
    # epmd -names lists the names registered on this host (the system
    # node's among them); with no epmd running, every name is free.
    ! { command -v epmd >/dev/null && epmd -names 2>/dev/null | grep "^name $1 at port" >/dev/null; }
}

# Reads DIR/nodes into NAME[k], PORT[k], DIST[k].
declare -A NAME PORT DIST
load() {
    local dir=$1
    [ -f "$dir/nodes" ] || die "$dir/nodes is missing: run '$0 start $dir' first"
    local key name port dist
    while read -r key name port dist; do
        NAME[$key]=$name
        PORT[$key]=$port
        DIST[$key]=$dist
    done < "$dir/nodes"
}

# a, pc-a, pc-a@localhost or 5681 -> a
key_of() {
    local wanted=$1 key
    for key in "${KEYS[@]}"; do
        if [ "$wanted" = "$key" ] || [ "$wanted" = "${NAME[$key]}" ] ||
            [ "$wanted" = "${NAME[$key]%@*}" ] || [ "$wanted" = "${PORT[$key]}" ]; then
            echo "$key"
            return
        fi
    done
    die "no node '$wanted' in this cluster (a, b, c, ${NAME[a]}, ... or an AMQP port)"
}

# The environment of every Erlang process started here, server or CLI.
common_env() {
    local dir=$1
    export HOME=$dir
    export RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf
    unset ERL_FLAGS ERL_AFLAGS ERL_ZFLAGS RABBITMQ_NODENAME NODENAME
}

# Runs a CLI tool of the installed RabbitMQ against one node.
cli() {
    local dir=$1 tool=$2 key=$3
    shift 3
    (
        common_env "$dir"
        exec "$SBIN/$tool" -n "${NAME[$key]}" "$@"
    )
}

beam_pid() {
    local dir=$1 key=$2 pid
    pid=$(cat "$dir/$key/pid" 2>/dev/null || true)
    if [ -n "$pid" ] && is_ours "$dir" "$key" "$pid"; then
        echo "$pid"
    fi
}

launcher_pid() {
    local dir=$1 key=$2 pid
    pid=$(cat "$dir/$key/launcher.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && is_ours "$dir" "$key" "$pid"; then
        echo "$pid"
    fi
}

# A pid from a file names this node's process only while the process is
# alive and carries the node's environment (pids get reused).
is_ours() {
    local dir=$1 key=$2 pid=$3
    { tr '\0' '\n' < "/proc/$pid/environ"; } 2>/dev/null | grep -xF "RABBITMQ_PID_FILE=$dir/$key/pid" >/dev/null
}

# Alive and not a zombie waiting for its parent.
alive() {
    local state
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || true)
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

rss_of() {
    local kib
    kib=$(ps -o rss= -p "$1" 2>/dev/null | tr -d ' ')
    [ -n "$kib" ] && echo "$((kib / 1024)) MiB" || echo "?"
}

# Starts one node in the background and waits until it says it started.
launch() {
    local dir=$1 key=$2
    local ndir=$dir/$key
    local logfile=$ndir/log/${NAME[$key]%@*}.log
    mkdir -p "$ndir/mnesia" "$ndir/log" "$ndir/conf.d"
    [ -z "$(beam_pid "$dir" "$key")" ] || die "${NAME[$key]} is already running"
    port_free "${PORT[$key]}" || die "AMQP port ${PORT[$key]} of ${NAME[$key]} is taken"
    port_free "${DIST[$key]}" || die "distribution port ${DIST[$key]} of ${NAME[$key]} is taken"
    name_free "${NAME[$key]%@*}" || die "the node name ${NAME[$key]} is registered with epmd already"
    local offset
    offset=$(stat -c %s "$logfile" 2>/dev/null || echo 0)
    rm -f "$ndir/pid"
    (
        common_env "$dir"
        export RABBITMQ_NODENAME=${NAME[$key]}
        export RABBITMQ_DIST_PORT=${DIST[$key]}
        export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        export RABBITMQ_NODE_PORT=${PORT[$key]}
        export RABBITMQ_CONFIG_FILE=$ndir/rabbitmq.conf
        export RABBITMQ_CONFIG_FILES=$ndir/conf.d
        export RABBITMQ_ADVANCED_CONFIG_FILE=$ndir/advanced.config
        export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
        export RABBITMQ_MNESIA_BASE=$ndir/mnesia
        export RABBITMQ_PLUGINS_EXPAND_DIR=$ndir/plugins-expand
        export RABBITMQ_LOG_BASE=$ndir/log
        export RABBITMQ_LOGS=$logfile
        export RABBITMQ_PID_FILE=$ndir/pid
        export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} ${RABBITMQ_CLUSTER_ERL_ARGS-+S 1:1 +SDcpu 1:1 +A 4}"
        cd "$ndir"
        # Its output goes to a file: a caller reading our stdout (a test's
        # Command::output) must not wait for the nodes to exit.
        exec "$SBIN/rabbitmq-server"
    ) < /dev/null >> "$ndir/stdout.log" 2>&1 9>&- &
    echo $! > "$ndir/launcher.pid"
    echo "$offset" > "$ndir/log.offset"
}

# Waits until the node's log (past what it held before this start) says the
# server started, failing early if the node's process exits.
await_started() {
    local dir=$1 key=$2
    local ndir=$dir/$key
    local logfile=$ndir/log/${NAME[$key]%@*}.log
    local offset deadline launcher
    offset=$(cat "$ndir/log.offset")
    launcher=$(cat "$ndir/launcher.pid")
    deadline=$(($(date +%s) + TIMEOUT))
    until tail -c +"$((offset + 1))" "$logfile" 2>/dev/null | grep 'Server startup complete' >/dev/null; do
        if ! alive "$launcher"; then
            tail -n 30 "$ndir/stdout.log" "$logfile" >&2 2>/dev/null || true
            die "${NAME[$key]} exited while starting (logs in $ndir)"
        fi
        [ "$(date +%s)" -lt "$deadline" ] || die "${NAME[$key]} did not start within ${TIMEOUT}s (logs in $ndir)"
        sleep 0.2
    done
    local pid=""
    until [ -n "$pid" ]; do
        pid=$(beam_pid "$dir" "$key")
        [ -n "$pid" ] || sleep 0.1
    done
    until (exec 3<>"/dev/tcp/127.0.0.1/${PORT[$key]}") 2>/dev/null; do sleep 0.1; done
    log "${NAME[$key]} started: AMQP 127.0.0.1:${PORT[$key]}, dist ${DIST[$key]}, pid $pid, RSS $(rss_of "$pid")"
}

# The running nodes according to KEY's cluster_status.
running_nodes() {
    local dir=$1 key=$2
    cli "$dir" rabbitmqctl "$key" cluster_status --formatter json 2>/dev/null |
        grep -o '"running_nodes":\[[^]]*\]' | grep -o '"[^"]*@[^"]*"' | tr -d '"' | sort || true
}

await_cluster() {
    local dir=$1 key=$2 count=$3
    local deadline running
    deadline=$(($(date +%s) + TIMEOUT))
    while true; do
        running=$(running_nodes "$dir" "$key")
        [ "$(echo "$running" | grep -c @)" -ge "$count" ] && break
        [ "$(date +%s)" -lt "$deadline" ] || die "the cluster did not reach $count running nodes within ${TIMEOUT}s: $(echo "$running" | tr '\n' ' ')"
        sleep 1
    done
    log "cluster_status on ${NAME[$key]}: running $(echo "$running" | tr '\n' ' ')"
}

cmd_start() {
    local dir=${1:?usage: start DIR [BASE_PORT]}
    local base=${2:-${RABBITMQ_CLUSTER_BASE_PORT:-}}
    local host
    host=$(node_host)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    chmod 700 "$dir"
    [ ! -f "$dir/nodes" ] || [ -z "$(beam_pid "$dir" a)$(beam_pid "$dir" b)$(beam_pid "$dir" c)" ] ||
        die "a cluster is already running in $dir"

    # One start at a time on this host chooses ports and names, until its
    # nodes hold them.
    if command -v flock > /dev/null; then
        exec 9> "${TMPDIR:-/tmp}/rabbitmq-cluster.sh.lock"
        flock 9
    fi

    # Three consecutive AMQP ports, and the three 20000 above them, all free.
    local explicit=${base:+yes} p
    base=${base:-5681}
    while true; do
        local ok=yes
        for p in "$base" "$((base + 1))" "$((base + 2))"; do
            port_free "$p" && port_free "$((p + 20000))" || ok=
        done
        [ -n "$ok" ] && break
        [ -z "$explicit" ] || die "ports $base-$((base + 2)) or $((base + 20000))-$((base + 20002)) are taken"
        base=$((base + 3))
        [ "$base" -lt 5800 ] || die "no three free AMQP ports between 5681 and 5800"
    done

    # Node names no other node on this host uses (a cluster left running by
    # an interrupted test keeps pc-a..pc-c: the next one takes pc2-a...).
    local prefix=${RABBITMQ_CLUSTER_PREFIX:-} n
    if [ -z "$prefix" ]; then
        for n in "" 2 3 4 5 6 7 8 9; do
            if name_free "pc$n-a" && name_free "pc$n-b" && name_free "pc$n-c"; then
                prefix=pc$n
                break
            fi
        done
        [ -n "$prefix" ] || die "the node names pc-a ... pc9-c are all in use (epmd -names)"
    fi

    : > "$dir/nodes"
    local i=0 key
    for key in "${KEYS[@]}"; do
        echo "$key $prefix-$key@$host $((base + i)) $((base + i + 20000))" >> "$dir/nodes"
        i=$((i + 1))
    done
    load "$dir"

    # A cookie of the cluster's own (HOME=DIR for servers and CLI alike).
    if [ ! -f "$dir/.erlang.cookie" ]; then
        (umask 077 && head -c 30 /dev/urandom | od -An -tx1 | tr -dc 'a-f0-9' | tr 'a-f' 'A-F' > "$dir/.erlang.cookie")
        chmod 400 "$dir/.erlang.cookie"
    fi
    echo '[].' > "$dir/enabled_plugins"
    echo '# Empty: the machine-wide /etc/rabbitmq/rabbitmq-env.conf does not apply here.' > "$dir/rabbitmq-env.conf"
    for key in "${KEYS[@]}"; do
        mkdir -p "$dir/$key/conf.d"
        cat > "$dir/$key/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:${PORT[$key]}
loopback_users.guest = true
log.file.level = info
log.console = false
# Small Raft write-ahead log: the quorum queues of a test hold little.
raft.wal_max_size_bytes = 16777216
EOF
    done

    log "starting ${NAME[a]}, ${NAME[b]}, ${NAME[c]} from $SBIN in $dir"
    # From here on, a failure stops whatever was started.
    STARTING_DIR=$dir
    trap 'status=$?; if [ "$status" -ne 0 ]; then log "start failed: stopping what it started"; cmd_stop "$STARTING_DIR" || true; fi' EXIT
    for key in "${KEYS[@]}"; do
        launch "$dir" "$key"
    done
    for key in "${KEYS[@]}"; do
        await_started "$dir" "$key"
    done
    exec 9>&-
    log "three nodes up; clustering"
    for key in b c; do
        cli "$dir" rabbitmqctl "$key" -q stop_app >&2
        cli "$dir" rabbitmqctl "$key" -q join_cluster "${NAME[a]}" >&2
        cli "$dir" rabbitmqctl "$key" -q start_app >&2
        log "${NAME[$key]} joined ${NAME[a]}"
    done
    await_cluster "$dir" a 3
    local urls=() pid
    for key in "${KEYS[@]}"; do
        urls+=("amqp://guest:guest@127.0.0.1:${PORT[$key]}/%2f")
        pid=$(beam_pid "$dir" "$key")
        log "${NAME[$key]}: RSS $(rss_of "$pid")"
    done
    (IFS=,; echo "${urls[*]}") > "$dir/urls"
    trap - EXIT
    log "cluster ready"
    cat "$dir/urls"
}

cmd_stop_node() {
    local dir=${1:?usage: stop-node DIR NODE} key pid launcher
    load "$dir"
    key=$(key_of "${2:?usage: stop-node DIR NODE}")
    pid=$(beam_pid "$dir" "$key")
    launcher=$(launcher_pid "$dir" "$key")
    if [ -z "$pid" ] && [ -z "$launcher" ]; then
        log "${NAME[$key]} is not running"
        return
    fi

    # SIGKILL: the VM dies at once, as in a crash; its peers see the
    # distribution connection drop and elect new quorum queue leaders.
    [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
    [ -z "$launcher" ] || kill -KILL "$launcher" 2>/dev/null || true
    while { [ -n "$pid" ] && alive "$pid"; } || { [ -n "$launcher" ] && alive "$launcher"; }; do
        sleep 0.05
    done
    # Dead for certain: a VM that outlived its launcher would still listen.
    # (Its threads may close the socket a moment after the main one exits.)
    local deadline=$(($(date +%s) + 10))
    until port_free "${PORT[$key]}"; do
        [ "$(date +%s)" -lt "$deadline" ] || die "${NAME[$key]} still listens on ${PORT[$key]} 10s after SIGKILL"
        sleep 0.05
    done
    log "${NAME[$key]} killed (SIGKILL to pid ${pid:-none}, launcher ${launcher:-none})"
    echo "${NAME[$key]}"
}

cmd_start_node() {
    local dir=${1:?usage: start-node DIR NODE} key
    load "$dir"
    key=$(key_of "${2:?usage: start-node DIR NODE}")
    if [ -n "$(beam_pid "$dir" "$key")" ]; then
        log "${NAME[$key]} is running already"
    else
        local stale
        stale=$(launcher_pid "$dir" "$key")
        [ -z "$stale" ] || kill -KILL "$stale" 2>/dev/null || true
        launch "$dir" "$key"
        await_started "$dir" "$key"
    fi
    # Rejoined: it sees every node that is running now (another may be down).
    local alive=0 other
    for other in "${KEYS[@]}"; do
        [ -z "$(beam_pid "$dir" "$other")" ] || alive=$((alive + 1))
    done
    await_cluster "$dir" "$key" "$alive"
    echo "${NAME[$key]}"
}

# The leader of a quorum queue, asked of the first node that answers.
cmd_leader() {
    local dir=${1:?usage: leader DIR QUEUE} queue=${2:?usage: leader DIR QUEUE} key leader
    load "$dir"
    for key in "${KEYS[@]}"; do
        [ -n "$(beam_pid "$dir" "$key")" ] || continue
        leader=$(cli "$dir" rabbitmqctl "$key" -q list_queues --no-table-headers name leader 2>/dev/null |
            awk -F '\t' -v q="$queue" '$1 == q { print $2 }')
        if [[ "$leader" == *@* ]]; then
            echo "$leader"
            return
        fi
    done
    die "no running node knows a leader for queue '$queue'"
}

cmd_port_of() {
    local dir=${1:?usage: port-of DIR NODE} key
    load "$dir"
    key=$(key_of "${2:?usage: port-of DIR NODE}")
    echo "${PORT[$key]}"
}

cmd_cli() {
    local tool=$1 dir=${2:?usage: ctl DIR NODE ARGS...} key
    load "$dir"
    key=$(key_of "${3:?usage: ctl DIR NODE ARGS...}")
    shift 3
    cli "$dir" "$tool" "$key" "$@"
}

cmd_stop() {
    local dir=${1:?usage: stop DIR} key pid launcher
    if [ ! -d "$dir" ]; then
        log "$dir does not exist: nothing to stop"
        return
    fi
    dir=$(cd "$dir" && pwd)
    local pids=()
    for key in "${KEYS[@]}"; do
        pid=$(beam_pid "$dir" "$key")
        launcher=$(launcher_pid "$dir" "$key")
        # SIGTERM: the VM stops RabbitMQ in order. The launcher script stops
        # the VM it started, if the VM wrote no pid file yet.
        if [ -n "$pid" ]; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        elif [ -n "$launcher" ]; then
            kill -TERM "$launcher" 2>/dev/null || true
        fi
        [ -z "$launcher" ] || pids+=("$launcher")
    done
    local deadline=$(($(date +%s) + 30)) running
    while true; do
        running=()
        for pid in "${pids[@]}"; do
            if alive "$pid"; then running+=("$pid"); fi
        done
        [ "${#running[@]}" -gt 0 ] || break
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "still running after 30s, killing: ${running[*]}"
            kill -KILL "${running[@]}" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
    # Anything started by a launcher that died early (pids from the files,
    # checked to be this cluster's).
    for key in "${KEYS[@]}"; do
        for pid in $(beam_pid "$dir" "$key") $(launcher_pid "$dir" "$key"); do
            kill -KILL "$pid" 2>/dev/null || true
        done
    done
    log "stopped the nodes of $dir"
}

main() {
    local command=${1:-}
    [ -n "$command" ] || usage
    shift
    case "$command" in
        start) cmd_start "$@" ;;
        stop-node) cmd_stop_node "$@" ;;
        start-node) cmd_start_node "$@" ;;
        leader) cmd_leader "$@" ;;
        port-of) cmd_port_of "$@" ;;
        ctl) cmd_cli rabbitmqctl "$@" ;;
        queues) cmd_cli rabbitmq-queues "$@" ;;
        stop) cmd_stop "$@" ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
