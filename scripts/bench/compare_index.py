#!/usr/bin/env python3
"""Prints Ferrovec's fv-index bench figures beside faiss' from the same run, as ratios.

Usage: compare_index.py CRITERION_DIR FAISS.json IVF_LOG

CRITERION_DIR is $CARGO_TARGET_DIR/criterion (each bench's new/benchmark.json and
new/estimates.json); IVF_LOG is the stderr of the ivf bench (recall lines).
"""
import json
import pathlib
import re
import sys


def criterion_medians(root):
    """full_id -> median time in seconds."""
    out = {}
    for bench in pathlib.Path(root).glob("**/new/benchmark.json"):
        full_id = json.loads(bench.read_text())["full_id"]
        est = json.loads((bench.parent / "estimates.json").read_text())
        out[full_id] = est["median"]["point_estimate"] / 1e9
    return out


def main():
    ours = criterion_medians(sys.argv[1])
    faiss = json.load(open(sys.argv[2]))
    recall = {}
    for line in open(sys.argv[3]):
        m = re.match(r"IVF_FLAT,nlist=1024 nprobe=(\d+): recall@10 ([0-9.]+)", line.strip())
        if m:
            recall[int(m.group(1))] = float(m.group(2))
    rows = []

    def row(what, fv, peer, unit, target):
        ratio = fv / peer if peer else float("nan")
        rows.append((what, f"{fv:.4g}", f"{peer:.4g}", unit, f"{ratio:.2f}x", target))

    row("k-means, 1 iteration, n=50k d=384 k=1024",
        ours["kmeans/iteration/n=50000/d=384/k=1024"], faiss["kmeans_s_per_iter"], "s", "<= 1.0x")
    row("exact, 1 query, 50k x 384", ours["exact/single/50000x384"] * 1e3, faiss["exact_single_ms"], "ms",
        "<= 2.7 ms x 1.5")
    row("exact, 1,000 queries, 50k x 384", ours["exact/batch/1000x50000x384"] * 1e3, faiss["exact_batch1000_ms"],
        "ms", ">= 70 % of sgemm peak")
    for nprobe in (8, 16, 32, 64):
        f = faiss[f"ivf_flat_nprobe{nprobe}"]
        key = f"ivf/IVF_FLAT,nlist=1024/nprobe={nprobe}/single"
        if key in ours:
            row(f"IVF_FLAT nlist=1024 nprobe={nprobe}, 1 query", ours[key] * 1e6, f["single_us"], "us", "<= 1.0x")
        if nprobe in recall:
            rows.append((f"IVF_FLAT nprobe={nprobe} recall@10", f"{recall[nprobe]:.3f}", f"{f['recall@10']:.3f}",
                         "", f"{recall[nprobe] - f['recall@10']:+.3f}", "within 0.01"))
    flops = 2 * 1000 * 50_000 * 384 / ours["exact/batch/1000x50000x384"] / 1e9
    print(f"faiss {faiss['faiss']}, {faiss['threads']} threads; Ferrovec batched exact search at {flops:.0f} GFLOP/s")
    print("| measure | Ferrovec | faiss | unit | Ferrovec / faiss | target |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
