#!/usr/bin/env bash
# Index benchmarks beside faiss-cpu, in one run on this machine: the fv-index criterion
# benches (k-means, exact search, IVF) and the same measures through faiss, printed as
# ratios (docs/benchmarks.md records the figures). Needs the MiniLM dataset
# (../shared/data/pypi-minilm-384, or $FERROVEC_BENCH_DATA). Takes about ten minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_rust
export CARGO_TARGET_DIR="${FERROVEC_TARGET_DIR:-$HOME/.cache/ferrovec/target}"
CACHE="${FERROVEC_CACHE:-$HOME/.cache/ferrovec}"
DATA="${FERROVEC_BENCH_DATA:-$(cd .. && pwd)/shared/data/pypi-minilm-384}"
[ -f "$DATA/base.fvecs" ] || die "dataset not found at $DATA (set FERROVEC_BENCH_DATA)"
OUT="${FERROVEC_BENCH_OUT:-$CACHE/bench-index}"
mkdir -p "$OUT" "$CACHE"
req="$OUT/requirements-faiss.txt"
printf 'faiss-cpu==1.15.1\nnumpy==2.4.6\n' > "$req"
venv=$(ensure_venv "$CACHE/venv-faiss" "$req")

log "building the benches (release)"
cargo bench -p fv-index --no-run --locked
rm -rf "$CARGO_TARGET_DIR/criterion"
log "Ferrovec: k-means, exact search, IVF"
for b in kmeans exact ivf; do
    cargo bench -p fv-index --locked --bench "$b" -- --noplot 2> "$OUT/$b.log" >/dev/null \
        || { tail -20 "$OUT/$b.log" >&2; die "bench $b failed"; }
done
log "faiss: the same measures"
"$venv/bin/python" scripts/bench/faiss_peer.py "$DATA" "$OUT/faiss.json" 3 > /dev/null
log "loadavg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
"$venv/bin/python" scripts/bench/compare_index.py "$CARGO_TARGET_DIR/criterion" "$OUT/faiss.json" "$OUT/ivf.log"
