#!/usr/bin/env bash
# Runs every test of Ferrovec: unit tests next to the code, the backend conformance
# suites, and the cross-role integration tests (in-process, and real child processes
# killed with SIGKILL). Installs nothing the machine lacks beyond what each step needs.
#
# Build artefacts go to $FERROVEC_TARGET_DIR (default ~/.cache/ferrovec/target), outside
# the clone, so repeated runs (and fresh clones on the same machine) reuse compiled
# dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_rust
export CARGO_TARGET_DIR="${FERROVEC_TARGET_DIR:-$HOME/.cache/ferrovec/target}"
mkdir -p "$CARGO_TARGET_DIR"
log "build artefacts in $CARGO_TARGET_DIR"

log "building"
cargo build --workspace --all-targets --locked

log "running the Rust test suite"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast --failure-output final
else
    cargo test --workspace --locked --no-fail-fast
fi
log "all tests passed"
