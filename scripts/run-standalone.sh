#!/usr/bin/env bash
# Builds (release) and runs `ferrovec run standalone`: every role in one process on
# embedded backends, the Milvus API on port 19530, /healthz on 9091, data under ./data.
# Extra arguments go to ferrovec, e.g. `scripts/run-standalone.sh --data-dir /tmp/fv`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_rust
source scripts/deps.sh
ensure_protoc   # etcd-client's build script needs it
export CARGO_TARGET_DIR="${FERROVEC_TARGET_DIR:-$HOME/.cache/ferrovec/target}"
cargo build --release --locked --bin ferrovec
exec "$CARGO_TARGET_DIR/release/ferrovec" run standalone "$@"
