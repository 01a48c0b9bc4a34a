#!/usr/bin/env python3
"""faiss' side of benches/ivf_single.rs (fv-index): IVF_FLAT nlist=1024 (IP) on the MiniLM
set, every public query searched alone, us per query as the median of RUNS passes, both
wall time (time.perf_counter) and the calling thread's CPU time (time.thread_time, which
load from other processes inflates least; it misses work on faiss' OpenMP threads).

Trains once, prints "ready", then for each stdin line "RUNS NPROBES" (e.g. "3 8,16,32,64")
prints "faiss WALL... | CPU..." - so an A/B driver can interleave it with Rust builds
without retraining. Usage: faiss_ivf_single.py DATA_DIR
"""
import statistics
import sys
import time

import faiss
import numpy as np


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    return raw.reshape(-1, raw[0] + 1)[:, 1:].copy().view(np.float32)


def main():
    data = sys.argv[1]
    xb = read_fvecs(f"{data}/base.fvecs")[:50_000]
    xq = read_fvecs(f"{data}/queries_public.fvecs")[:1000]
    d = xb.shape[1]
    quantizer = faiss.IndexFlatIP(d)
    ivf = faiss.IndexIVFFlat(quantizer, d, 1024, faiss.METRIC_INNER_PRODUCT)
    ivf.train(xb)
    ivf.add(xb)
    print("ready", flush=True)
    for line in sys.stdin:
        runs, nprobes = line.split()
        wall, cpu = [], []
        for nprobe in (int(x) for x in nprobes.split(",")):
            ivf.nprobe = nprobe

            def one():
                t, c = time.perf_counter(), time.thread_time()
                for i in range(len(xq)):
                    ivf.search(xq[i:i + 1], 10)
                return (time.perf_counter() - t) / len(xq) * 1e6, (time.thread_time() - c) / len(xq) * 1e6

            r = [one() for _ in range(int(runs))]
            wall.append(statistics.median(x[0] for x in r))
            cpu.append(statistics.median(x[1] for x in r))
        print("faiss", " ".join(f"{x:.1f}" for x in wall), "|", " ".join(f"{x:.1f}" for x in cpu), flush=True)


if __name__ == "__main__":
    main()
