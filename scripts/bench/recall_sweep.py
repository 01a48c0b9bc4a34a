#!/usr/bin/env python3
"""Recall and QPS through pymilvus at high-recall settings (bench_milvus.py stops at
nprobe 32, recall ~0.89). Same data, schema and measures as bench_milvus.py: recall@10
over the 1,000 public queries (metric IP), QPS with one query per call (1,000 calls) and
with 100 per call; each QPS figure is the median of RUNS runs.

Usage: recall_sweep.py URI DATA_DIR OUT.json SPEC [SPEC ...] [--runs N]
SPEC:  INDEX_TYPE:build_json:key=v1,v2   e.g.  IVF_FLAT:{"nlist":1024}:nprobe=64,128
                                               HNSW:{"M":16,"efConstruction":200}:ef=64
"""
import json
import statistics
import sys
import time

import numpy as np
from pymilvus import DataType, MilvusClient


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    return raw.reshape(-1, raw[0] + 1)[:, 1:].copy().view(np.float32)


def read_ivecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    return raw.reshape(-1, raw[0] + 1)[:, 1:]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--runs")]
    runs = 3
    for a in sys.argv[1:]:
        if a.startswith("--runs="):
            runs = int(a.split("=", 1)[1])
    uri, data, out, specs = args[0], args[1], args[2], args[3:]
    base = read_fvecs(f"{data}/base.fvecs")
    q = read_fvecs(f"{data}/queries_public.fvecs")
    gt = read_ivecs(f"{data}/gt_public.ivecs")[:, :10]
    n, d = base.shape
    c = MilvusClient(uri)
    name = "recall_sweep"
    if c.has_collection(name):
        c.drop_collection(name)
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("pk", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=int(d))
    c.create_collection(name, schema=s)
    for at in range(0, n, 1000):
        c.insert(name, [{"pk": i, "vec": base[i].tolist()} for i in range(at, min(n, at + 1000))])
    c.flush(name)
    res = {"uri": uri, "server_version": c.get_server_version(), "n": int(n)}
    qs = [v.tolist() for v in q]

    def search(vecs, sp):
        r = c.search(name, data=vecs, limit=10, anns_field="vec", output_fields=["pk"],
                     search_params={"metric_type": "IP", "params": sp})
        return [[h["id"] if "id" in h else h["pk"] for h in hits] for hits in r]

    for spec in specs:
        head, sweep = spec.rsplit(":", 1)
        index_type, build = head.split(":", 1)
        key, values = sweep.split("=", 1)
        c.release_collection(name)
        for idx in c.list_indexes(name):
            c.drop_index(name, idx)
        ip = c.prepare_index_params()
        ip.add_index(field_name="vec", index_name="vec", index_type=index_type, metric_type="IP",
                     params=json.loads(build))
        t = time.perf_counter()
        c.create_index(name, ip)
        res[f"{index_type} build_s"] = time.perf_counter() - t
        c.load_collection(name)
        for v in values.split(","):
            sp = {key: int(v)}
            tag = f"{index_type} {json.dumps(sp)}"
            ids = [x for at in range(0, len(qs), 100) for x in search(qs[at:at + 100], sp)]
            res[f"{tag} recall@10"] = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, gt)]))

            def single():
                t = time.perf_counter()
                for v1 in qs:
                    search([v1], sp)
                return len(qs) / (time.perf_counter() - t)

            def batch():
                t = time.perf_counter()
                for at in range(0, len(qs), 100):
                    search(qs[at:at + 100], sp)
                return len(qs) / (time.perf_counter() - t)

            res[f"{tag} qps_single"] = statistics.median(single() for _ in range(runs))
            res[f"{tag} qps_batch100"] = statistics.median(batch() for _ in range(runs))
            print(tag, {k: round(res[f"{tag} {k}"], 3) for k in ("recall@10", "qps_single", "qps_batch100")},
                  flush=True)
    c.drop_collection(name)
    json.dump(res, open(out, "w"), indent=1)


if __name__ == "__main__":
    main()
