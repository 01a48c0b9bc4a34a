#!/usr/bin/env bash
# Builds (release) and runs the load generator (loadtest/) with the given arguments, e.g.
#   scripts/loadtest.sh --dataset ../shared/data/pypi-minilm-384
# benchmarks the server on http://127.0.0.1:19530 and writes loadtest-report/report.html.
# `scripts/loadtest.sh --help` lists every option.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_rust
export CARGO_TARGET_DIR="${FERROVEC_TARGET_DIR:-$HOME/.cache/ferrovec/target}"
cargo build --release --locked -p loadtest >&2
exec "$CARGO_TARGET_DIR/release/loadtest" "$@"
