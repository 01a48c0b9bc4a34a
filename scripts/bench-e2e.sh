#!/usr/bin/env bash
# End-to-end benchmark through pymilvus, the figure users see: the peers' unchanged
# ../shared/bench/bench_milvus.py against Ferrovec standalone (release build) and, in the
# same run, against a real Milvus 2.3.5 server from PyPI, both on the MiniLM set
# (50,000 x 384, IP), with the same client (pymilvus 2.4.15); then scripts/bench/recall_sweep.py
# at high-recall settings (IVF_FLAT nprobe 64/128 and HNSW M=16 efConstruction=200
# ef=32/64/128 on both; Milvus' own figures quote HNSW ef=64 at recall >= 0.95). Prints side-by-side tables.
#
# Usage: scripts/bench-e2e.sh [INDEXES=FLAT,IVF_FLAT,IVF_SQ8|none] [RUNS=3] [PEERS=ferrovec,milvus]
# (INDEXES=none: only the high-recall sweeps, IVF_FLAT and HNSW on both).
# Needs root for `unshare -n` (Milvus 2.3.5 has no listen-address option, so it runs in a
# private network namespace with loopback only). Takes 20-40 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

INDEXES="${1:-FLAT,IVF_FLAT,IVF_SQ8}"
RUNS="${2:-3}"
PEERS="${3:-ferrovec,milvus}"
ensure_rust
source scripts/deps.sh
ensure_protoc
export CARGO_TARGET_DIR="${FERROVEC_TARGET_DIR:-$HOME/.cache/ferrovec/target}"
CACHE="${FERROVEC_CACHE:-$HOME/.cache/ferrovec}"
SHARED="$(cd .. && pwd)/shared"
DATA="${FERROVEC_BENCH_DATA:-$SHARED/data/pypi-minilm-384}"
BENCH="$SHARED/bench"
[ -f "$DATA/base.fvecs" ] || die "dataset not found at $DATA (set FERROVEC_BENCH_DATA)"
[ -f "$BENCH/bench_milvus.py" ] || die "bench_milvus.py not found in $BENCH"
OUT="${FERROVEC_BENCH_OUT:-$CACHE/bench-e2e}"
IVF_SWEEP='IVF_FLAT:{"nlist":1024}:nprobe=64,128'
HNSW_SWEEP='HNSW:{"M":16,"efConstruction":200}:ef=32,64,128'
mkdir -p "$OUT"

client_req="$OUT/requirements-client.txt"
printf 'pymilvus==2.4.15\nsetuptools<70\nmarshmallow<4\nnumpy<2\n' > "$client_req"
client=$(ensure_venv "$CACHE/venv-bench-pymilvus" "$client_req")

if [[ ",$PEERS," == *",ferrovec,"* ]]; then
    log "building ferrovec (release)"
    cargo build --release --locked -p ferrovec
    dir=$(mktemp -d)
    "$CARGO_TARGET_DIR/release/ferrovec" run standalone --data-dir "$dir/data" --port 19530 --log-level warn \
        > "$OUT/ferrovec.log" 2>&1 &
    pid=$!
    trap 'kill $pid 2>/dev/null || true' EXIT
    for _ in $(seq 120); do
        curl -fs http://127.0.0.1:9091/healthz >/dev/null 2>&1 && break
        kill -0 $pid 2>/dev/null || die "ferrovec exited early: $(tail -5 "$OUT/ferrovec.log")"
        sleep 0.5
    done
    if [ "$INDEXES" != none ]; then
        log "Ferrovec: bench_milvus.py $INDEXES"
        (cd "$BENCH" && "$client/bin/python" bench_milvus.py http://127.0.0.1:19530 "$DATA" "$OUT/ferrovec.json" \
            "$INDEXES" "$RUNS") > "$OUT/ferrovec.out" 2>&1 || log "bench against Ferrovec failed: $(tail -3 "$OUT/ferrovec.out")"
    fi
    log "Ferrovec: recall sweep"
    "$client/bin/python" scripts/bench/recall_sweep.py http://127.0.0.1:19530 "$DATA" "$OUT/ferrovec-sweep.json" \
        "$IVF_SWEEP" "$HNSW_SWEEP" --runs="$RUNS" > "$OUT/ferrovec-sweep.out" 2>&1 \
        || log "sweep against Ferrovec failed: $(tail -3 "$OUT/ferrovec-sweep.out")"
    kill $pid; wait $pid 2>/dev/null || true
    trap - EXIT
    rm -rf "$dir"
fi

if [[ ",$PEERS," == *",milvus,"* ]]; then
    milvus_req="$OUT/requirements-milvus.txt"
    printf 'milvus==2.3.5\npymilvus==2.4.15\nsetuptools<70\nmarshmallow<4\nnumpy<2\n' > "$milvus_req"
    milvus=$(ensure_venv "$CACHE/venv-milvus235" "$milvus_req")
    dir=$(mktemp -d)
    log "Milvus 2.3.5: bench_milvus.py $INDEXES"
    sweep="$(pwd)/scripts/bench/recall_sweep.py"
    # shellcheck disable=SC2016
    (cd "$BENCH" && unshare -n bash run_milvus_server.sh "$milvus" "$dir" "$OUT/milvus.log" bash -c '
        if [ "$4" != none ]; then
            "$1/bin/python" bench_milvus.py http://127.0.0.1:19530 "$2" "$3/milvus.json" "$4" "$5" || exit 1
        fi
        "$1/bin/python" "$6" http://127.0.0.1:19530 "$2" "$3/milvus-sweep.json" "$7" "$8" --runs="$5"
        ' _ "$client" "$DATA" "$OUT" "$INDEXES" "$RUNS" "$sweep" "$IVF_SWEEP" "$HNSW_SWEEP") \
        > "$OUT/milvus.out" 2>&1 || log "bench against Milvus failed: $(tail -3 "$OUT/milvus.out")"
    rm -rf "$dir"
fi
log "loadavg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$INDEXES" = none ] || "$client/bin/python" scripts/bench/compare_e2e.py "$OUT"/ferrovec.json "$OUT"/milvus.json
"$client/bin/python" scripts/bench/compare_e2e.py "$OUT"/ferrovec-sweep.json "$OUT"/milvus-sweep.json
