#!/usr/bin/env python3
"""faiss-cpu, measured in the same run as Ferrovec's index benches (scripts/bench-index.sh).

Measures on the MiniLM set (50,000 x 384, IP) what the fv-index criterion benches measure:
k-means seconds per iteration (n=50,000, k=1,024), exact search (1 query per call and
1,000 per call), IVF_FLAT nlist=1024 recall@10 and per-query time at nprobe 8/16/32/64.
Every time is the median of RUNS repetitions. Writes one JSON object to OUT.

Usage: faiss_peer.py DATA_DIR OUT.json [RUNS=3]
"""
import json
import statistics
import sys
import time

import faiss
import numpy as np


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    return raw.reshape(-1, dim + 1)[:, 1:].copy().view(np.float32)


def read_ivecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    return raw.reshape(-1, raw[0] + 1)[:, 1:]


def median_of(runs, fn):
    return statistics.median(fn() for _ in range(runs))


def main():
    data, out = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    xb = read_fvecs(f"{data}/base.fvecs")[:50_000]
    xq = read_fvecs(f"{data}/queries_public.fvecs")[:1000]
    gt = read_ivecs(f"{data}/gt_public.ivecs")[:1000, :10]
    n, d = xb.shape
    res = {"faiss": faiss.__version__, "threads": faiss.omp_get_max_threads(), "n": int(n), "dim": int(d)}

    def timed(fn):
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    # k-means: 10 iterations, faiss' default of at most 256 points per centroid.
    def kmeans():
        km = faiss.Kmeans(d, 1024, niter=10, seed=1, spherical=True)
        return timed(lambda: km.train(xb)) / 10
    res["kmeans_s_per_iter"] = median_of(runs, kmeans)

    flat = faiss.IndexFlatIP(d)
    flat.add(xb)
    res["exact_single_ms"] = median_of(runs, lambda: timed(lambda: [flat.search(xq[i:i + 1], 10) for i in range(100)]) * 10)
    res["exact_batch1000_ms"] = median_of(runs, lambda: timed(lambda: flat.search(xq, 10)) * 1000)

    quantizer = faiss.IndexFlatIP(d)
    ivf = faiss.IndexIVFFlat(quantizer, d, 1024, faiss.METRIC_INNER_PRODUCT)
    ivf.train(xb)
    ivf.add(xb)
    for nprobe in (8, 16, 32, 64):
        ivf.nprobe = nprobe
        _, ids = ivf.search(xq, 10)
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, gt)]))
        single = median_of(runs, lambda: timed(lambda: [ivf.search(xq[i:i + 1], 10) for i in range(len(xq))]))
        batch = median_of(runs, lambda: timed(lambda: ivf.search(xq, 10)))
        res[f"ivf_flat_nprobe{nprobe}"] = {
            "recall@10": recall,
            "single_us": single / len(xq) * 1e6,
            "batch1000_ms": batch * 1000,
        }
    json.dump(res, open(out, "w"), indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
