#!/usr/bin/env bash
# A Ferrovec cluster on loopback: NATS JetStream, etcd and an S3 server (SeaweedFS), then
# one process per role (two data nodes, two query nodes), each `ferrovec run <role>`.
#
#   scripts/cluster.sh up       # installs what is missing, starts what is not running, waits until healthy
#   scripts/cluster.sh status   # one line per process: running or not, pid, endpoint
#   scripts/cluster.sh down     # stops every process it started (by the PIDs in run/)
#
# `up` is idempotent: after a process died (or was killed), `up` starts just that one.
# Everything lives in run/ (FERROVEC_CLUSTER_DIR): <name>.pid, <name>.log, data/<name>/,
# cluster.toml (the configuration every role reads). The Milvus API is on
# 127.0.0.1:19530 (FERROVEC_CLUSTER_PORT); the binary is FERROVEC_BIN, else a release build.
# FERROVEC_CLUSTER_PROXIES=2 adds a second proxy on the next port.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source scripts/deps.sh

RUN="${FERROVEC_CLUSTER_DIR:-$PWD/run}"
PORT="${FERROVEC_CLUSTER_PORT:-19530}"
PROXIES="${FERROVEC_CLUSTER_PROXIES:-1}"
NATS_PORT="${FERROVEC_CLUSTER_NATS_PORT:-4222}"
NATS_MONITOR="${FERROVEC_CLUSTER_NATS_MONITOR_PORT:-8222}"
ETCD_PORT="${FERROVEC_CLUSTER_ETCD_PORT:-2379}"
# SeaweedFS ports moved off its defaults so the test suite's own S3 server can run beside.
S3_PORT="${FERROVEC_CLUSTER_S3_PORT:-9000}"
HTTP_BASE="${FERROVEC_CLUSTER_HTTP_BASE:-9100}"

# name:role:http-port (+ proxy api port) in start order; coordinators first, proxies last.
processes() {
    local i=0 name
    for name in rootcoord-1 datacoord-1 indexcoord-1 querycoord-1 datanode-1 datanode-2 querynode-1 querynode-2 indexnode-1; do
        echo "$name:${name%-*}:$((HTTP_BASE + i))"
        i=$((i + 1))
    done
    for ((p = 1; p <= PROXIES; p++)); do
        echo "proxy-$p:proxy:$((HTTP_BASE + i)):$((PORT + p - 1))"
        i=$((i + 1))
    done
}

pid_of() { cat "$RUN/$1.pid" 2>/dev/null || true; }

running() {
    local pid
    pid=$(pid_of "$1")
    [ -n "$pid" ] && _pid_alive "$pid"
}

# Starts one process unless it runs: start_one NAME HEALTH_URL -- COMMAND...
start_one() {
    local name=$1 health=$2
    shift 3
    if running "$name"; then
        log "$name already running (pid $(pid_of "$name"))"
        return 0
    fi
    # Its health port must be free, or the health check would ask whatever holds it.
    local port=${health#http://127.0.0.1:}
    port=${port%%/*}
    if _port_in_use "$port"; then
        die "port 127.0.0.1:$port for $name is taken by another program (ss -ltnp 'sport = :$port')"
    fi
    "$@" >>"$RUN/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN/$name.pid"
    log "started $name (pid $!, log $RUN/$name.log)"
    STARTED+=("$name:$health")
}

wait_healthy() {
    local entry name health pid deadline=$((SECONDS + ${FERROVEC_CLUSTER_START_TIMEOUT:-120}))
    for entry in "${STARTED[@]}"; do
        name=${entry%%:*}
        health=${entry#*:}
        pid=$(pid_of "$name")
        until curl -sf --max-time 2 -o /dev/null "$health"; do
            if ! _pid_alive "$pid"; then
                tail -n 20 "$RUN/$name.log" >&2 || true
                die "$name (pid $pid) exited during start-up (log above)"
            fi
            [ "$SECONDS" -lt "$deadline" ] || die "$name not healthy at $health in time (log: $RUN/$name.log)"
            sleep 0.3
        done
    done
    STARTED=()
}

write_config() {
    cat >"$RUN/cluster.toml" <<EOF
# Written by scripts/cluster.sh: every role of the loopback cluster reads this file.
[broker]
kind = "nats"
nats_url = "nats://127.0.0.1:$NATS_PORT"

[meta]
kind = "etcd"
etcd_endpoints = "http://127.0.0.1:$ETCD_PORT"
root = "ferrovec"

[storage]
kind = "s3"
endpoint = "http://127.0.0.1:$S3_PORT"
bucket = "ferrovec"
access_key = "minioadmin"
secret_key = "minioadmin"
path_style = true

[proxy]
host = "127.0.0.1"

[http]
host = "127.0.0.1"
EOF
}

ferrovec_bin() {
    if [ -n "${FERROVEC_BIN:-}" ]; then
        [ -x "$FERROVEC_BIN" ] || die "FERROVEC_BIN=$FERROVEC_BIN is not executable"
        echo "$FERROVEC_BIN"
        return
    fi
    ensure_rust
    ensure_protoc
    export CARGO_TARGET_DIR="${FERROVEC_TARGET_DIR:-$HOME/.cache/ferrovec/target}"
    cargo build --release --locked -p ferrovec >&2
    echo "$CARGO_TARGET_DIR/release/ferrovec"
}

up() {
    mkdir -p "$RUN/data"
    STARTED=()
    local nats weed bin
    nats=$(_ensure_nats_server)
    weed=$(_ensure_weed)
    _ensure_apt etcd etcd-server etcd-client
    bin=$(ferrovec_bin)

    mkdir -p "$RUN/data/nats" "$RUN/data/etcd" "$RUN/data/s3"
    cat >"$RUN/nats.conf" <<EOF
listen: "127.0.0.1:$NATS_PORT"
http: "127.0.0.1:$NATS_MONITOR"
jetstream { store_dir: "$RUN/data/nats", max_memory_store: 256MB, max_file_store: 8GB }
EOF
    start_one nats "http://127.0.0.1:$NATS_MONITOR/healthz?js-enabled-only=true" -- "$nats" -c "$RUN/nats.conf"
    start_one etcd "http://127.0.0.1:$ETCD_PORT/health" -- \
        etcd --name fv --data-dir "$RUN/data/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
        --initial-cluster "fv=http://127.0.0.1:$((ETCD_PORT + 1))" --listen-metrics-urls "http://127.0.0.1:$((ETCD_PORT + 2))" \
        --logger zap --log-outputs stderr
    start_one s3 "http://127.0.0.1:$S3_PORT/healthz" -- \
        env AWS_ACCESS_KEY_ID=minioadmin AWS_SECRET_ACCESS_KEY=minioadmin \
        "$weed" mini -dir="$RUN/data/s3" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
        -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
        -s3.port="$S3_PORT" -master.port=$((S3_PORT + 433)) -volume.port=$((S3_PORT + 440)) \
        -filer.port=$((S3_PORT + 888)) -admin.port=$((S3_PORT + 1646))
    wait_healthy

    write_config
    local line name role http api
    while IFS= read -r line; do
        IFS=: read -r name role http api <<<"$line"
        local args=(run "$role" --config "$RUN/cluster.toml" --data-dir "$RUN/data/$name" --http-port "$http")
        [ -z "${api:-}" ] || args+=(--port "$api")
        mkdir -p "$RUN/data/$name"
        start_one "$name" "http://127.0.0.1:$http/healthz" -- "$bin" "${args[@]}"
        # Coordinators register before the nodes that look them up; nodes before proxies.
        case $name in rootcoord-1 | querycoord-1 | indexnode-1) wait_healthy ;; esac
        api=
    done < <(processes)
    wait_healthy
    status
}

status() {
    local line name role http api pid state
    for name in nats etcd s3; do
        pid=$(pid_of "$name")
        if running "$name"; then state=running; else state=stopped; fi
        case $name in
            nats) printf '%-13s %-8s %-8s nats://127.0.0.1:%s (monitoring http://127.0.0.1:%s)\n' "$name" "$state" "${pid:--}" "$NATS_PORT" "$NATS_MONITOR" ;;
            etcd) printf '%-13s %-8s %-8s http://127.0.0.1:%s\n' "$name" "$state" "${pid:--}" "$ETCD_PORT" ;;
            s3) printf '%-13s %-8s %-8s http://127.0.0.1:%s (bucket ferrovec, minioadmin/minioadmin)\n' "$name" "$state" "${pid:--}" "$S3_PORT" ;;
        esac
    done
    while IFS= read -r line; do
        IFS=: read -r name role http api <<<"$line"
        pid=$(pid_of "$name")
        if running "$name"; then state=running; else state=stopped; fi
        printf '%-13s %-8s %-8s http://127.0.0.1:%s/healthz%s\n' "$name" "$state" "${pid:--}" "$http" \
            "${api:+  Milvus API 127.0.0.1:$api}"
        api=
    done < <(processes)
}

down() {
    local names=() line name
    while IFS= read -r line; do names=("${line%%:*}" "${names[@]}"); done < <(processes)
    # Any extra proxies started earlier with a larger FERROVEC_CLUSTER_PROXIES.
    for f in "$RUN"/proxy-*.pid; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .pid)
        [[ " ${names[*]} " == *" $name "* ]] || names=("$name" "${names[@]}")
    done
    names+=(s3 etcd nats)
    for name in "${names[@]}"; do
        if [ -f "$RUN/$name.pid" ]; then
            _stop_server "$name" "$(pid_of "$name")" 20
            rm -f "$RUN/$name.pid"
        fi
    done
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) die "usage: scripts/cluster.sh up|down|status" ;;
esac
