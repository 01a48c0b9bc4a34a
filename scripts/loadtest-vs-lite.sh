#!/usr/bin/env bash
# The same pymilvus workload (loadtest/pymilvus_workload.py) against milvus-lite (PyPI,
# in-process) and against Ferrovec standalone (release build), in one run, with one client
# (pymilvus 3.0.2 + milvus-lite 3.2.2); prints a side-by-side table with ratios.
#
# Usage: scripts/loadtest-vs-lite.sh [INDEX=FLAT] [INDEX_PARAMS={}] [SEARCH_PARAMS={}] [SECONDS=10]
# Env: FERROVEC_BENCH_DATA (default ../shared/data/pypi-minilm-384), LOADTEST_ROWS (all),
#      LOADTEST_CONCURRENCY (1,4), FERROVEC_BENCH_OUT (~/.cache/ferrovec/loadtest-vs-lite).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

INDEX="${1:-FLAT}"
INDEX_PARAMS="${2:-"{}"}"
SEARCH_PARAMS="${3:-"{}"}"
SECONDS_PER_LEVEL="${4:-10}"
ensure_rust
source scripts/deps.sh
ensure_protoc
export CARGO_TARGET_DIR="${FERROVEC_TARGET_DIR:-$HOME/.cache/ferrovec/target}"
CACHE="${FERROVEC_CACHE:-$HOME/.cache/ferrovec}"
DATA="${FERROVEC_BENCH_DATA:-$(cd .. && pwd)/shared/data/pypi-minilm-384}"
OUT="${FERROVEC_BENCH_OUT:-$CACHE/loadtest-vs-lite}"
CONC="${LOADTEST_CONCURRENCY:-1,4}"
PORT="${LOADTEST_PORT:-19560}"
[ -f "$DATA/base.fvecs" ] || die "dataset not found at $DATA (set FERROVEC_BENCH_DATA)"
mkdir -p "$OUT"

req="$OUT/requirements.txt"
printf 'pymilvus==3.0.2\nmilvus-lite==3.2.2\nnumpy<3\n' > "$req"
py=$(ensure_venv "$CACHE/venv-loadtest-lite" "$req")/bin/python

common=(--index "$INDEX" --index-params "$INDEX_PARAMS" --search-params "$SEARCH_PARAMS"
        --concurrency "$CONC" --seconds "$SECONDS_PER_LEVEL")
[ -z "${LOADTEST_ROWS:-}" ] || common+=(--rows "$LOADTEST_ROWS")

log "building ferrovec (release)"
cargo build --release --locked -p ferrovec
dir=$(mktemp -d)
"$CARGO_TARGET_DIR/release/ferrovec" run standalone --data-dir "$dir/data" --port "$PORT" \
    --http-port $((PORT + 1)) --log-level warn > "$OUT/ferrovec.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 120); do
    curl -fs "http://127.0.0.1:$((PORT + 1))/healthz" >/dev/null 2>&1 && break
    kill -0 $pid 2>/dev/null || die "ferrovec exited early: $(tail -5 "$OUT/ferrovec.log")"
    sleep 0.5
done

log "Ferrovec at http://127.0.0.1:$PORT"
"$py" loadtest/pymilvus_workload.py "http://127.0.0.1:$PORT" "$DATA" "$OUT/ferrovec.json" --label ferrovec "${common[@]}"
kill $pid; wait $pid 2>/dev/null || true
trap 'rm -rf "$dir"' EXIT

log "milvus-lite in $dir/lite.db"
"$py" loadtest/pymilvus_workload.py "$dir/lite.db" "$DATA" "$OUT/lite.json" --label milvus-lite "${common[@]}"

"$py" - "$OUT/lite.json" "$OUT/ferrovec.json" <<'PY' | tee "$OUT/table.md"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
print(f"{b['rows']} rows x {b['dim']} ({b['metric']}), {b['index']} {json.dumps(b['index_params'])}, "
      f"search {json.dumps(b['search_params'])}, {b['seconds_per_level']} s per level\n")
print(f"| figure | {a['label']} | {b['label']} | {b['label']} / {a['label']} |")
print("|---|---|---|---|")
def row(name, x, y, time=False, recall=False):
    if x is None or y is None:
        return
    r = f"{y - x:+.4f}" if recall else (f"{y / x:.2f}x" if x else "-")
    print(f"| {name} | {x:.4g} | {y:.4g} | {r} |")
for key in ("insert_rows_per_s",):
    row("insert rows/s", a["setup"][key], b["setup"][key])
for key in ("flush_s", "index_s", "load_s"):
    row(key.replace("_s", " s"), a["setup"][key], b["setup"][key], time=True)
for la, lb in zip(a["search"], b["search"]):
    c = la["concurrency"]
    row(f"search c={c} QPS", la["qps"], lb["qps"])
    row(f"search c={c} p99 ms", la["p99_ms"], lb["p99_ms"], time=True)
    row(f"search c={c} recall", la["recall"], lb["recall"], recall=True)
for fa, fb in zip(a["filtered"], b["filtered"]):
    row(f"filtered {fa['selectivity']} QPS", fa["qps"], fb["qps"])
    row(f"filtered {fa['selectivity']} recall", fa["recall"], fb["recall"], recall=True)
for qa, qb in zip(a["query"], b["query"]):
    row(f"query {qa['name']} QPS", qa["qps"], qb["qps"])
for r in (a, b):
    bad = {k: v for part in ("search", "filtered", "query") for s in r[part] for k, v in s["errors"].items()}
    if bad:
        print(f"\n{r['label']} errors: {bad}")
PY
log "results in $OUT (lite.json, ferrovec.json, table.md)"
