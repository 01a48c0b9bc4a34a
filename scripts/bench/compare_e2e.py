#!/usr/bin/env python3
"""Side-by-side table of two bench_milvus.py result files (Ferrovec first), with ratios.

Usage: compare_e2e.py FERROVEC.json MILVUS.json
"""
import json
import os
import sys


def load(path):
    return json.load(open(path)) if os.path.exists(path) else {}


def main():
    fv, mv = load(sys.argv[1]), load(sys.argv[2])
    keys = [k for k in fv if isinstance(fv[k], (dict, int, float)) and k not in ("n", "dim", "runs")]
    keys += [k for k in mv if k not in keys and isinstance(mv[k], (dict, int, float)) and k not in ("n", "dim", "runs")]
    print(f"Ferrovec: {fv.get('server_version', '-')}, Milvus: {mv.get('server_version', '-')}")
    print("| measure | Ferrovec | Milvus 2.3.5 | Ferrovec / Milvus |")
    print("| --- | --- | --- | --- |")

    def value(r, k):
        v = r.get(k)
        return v.get("median") if isinstance(v, dict) else v

    for k in keys:
        a, b = value(fv, k), value(mv, k)
        if not isinstance(a, (int, float)) and not isinstance(b, (int, float)):
            continue
        fmt = lambda x: "-" if not isinstance(x, (int, float)) else f"{x:.4g}"
        ratio = f"{a / b:.2f}x" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "-"
        print(f"| {k} | {fmt(a)} | {fmt(b)} | {ratio} |")
    for name, r in (("Ferrovec", fv), ("Milvus", mv)):
        if r.get("errors"):
            print(f"{name} errors: {r['errors']}")


if __name__ == "__main__":
    main()
