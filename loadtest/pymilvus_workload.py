#!/usr/bin/env python3
"""The loadtest workload through pymilvus, for endpoints the Rust generator cannot reach.

milvus-lite runs inside the client's own process (``MilvusClient("./lite.db")``), so the
gRPC load generator cannot talk to it; this script runs the same phases with the official
client against any URI: a milvus-lite file, Ferrovec or a Milvus server. The data, schema
(``id`` INT64 primary, ``vector``, ``rnd`` INT64 = splitmix64(id) % 10000), filters and
tie-aware recall are those of ``loadtest`` (see loadtest/README.md), so the two agree.

Usage: pymilvus_workload.py URI DATA_DIR OUT.json [--label L] [--rows N] [--queries N]
       [--index FLAT|IVF_FLAT|...] [--index-params JSON] [--search-params JSON]
       [--concurrency 1,4] [--seconds 10] [--selectivities 0.01,0.5]
"""
import argparse
import json
import os
import sys
import threading
import time

import numpy as np
from pymilvus import DataType, MilvusClient

RND_RANGE = 10_000
MASK = (1 << 64) - 1


def splitmix64(x):
    """The derived field of loadtest/src/dataset.rs (vectorised)."""
    z = (x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(MASK)
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(MASK)
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(MASK)
    return z ^ (z >> np.uint64(31))


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    dim = int(raw[0])
    return raw.reshape(-1, dim + 1)[:, 1:].copy().view(dtype)


def recall_at_k(k, returned, truth_ids, truth_scores, true_score, higher_better):
    """Tie-aware recall@k, the rule of loadtest/src/recall.rs."""
    wanted = min(k, len(truth_ids))
    if wanted == 0:
        return 1.0 if not returned else 0.0
    top = set(int(i) for i in truth_ids[:wanted])
    kth = float(truth_scores[wanted - 1])
    tol = 1e-5 * max(abs(kth), 1.0)
    seen, found = set(), 0
    for i in returned[:k]:
        if i in seen:
            continue
        seen.add(i)
        s = true_score(i)
        better = s is not None and (s > kth if higher_better else s < kth)
        if i in top or (s is not None and (better or abs(s - kth) <= tol)):
            found += 1
    return min(found, wanted) / wanted


def pct(sorted_ms, p):
    if not sorted_ms:
        return 0.0
    rank = max(1, int(np.ceil(p / 100 * len(sorted_ms))))
    return sorted_ms[rank - 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("uri")
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--label", default="")
    ap.add_argument("--rows", type=int, default=0)
    ap.add_argument("--queries", type=int, default=0)
    ap.add_argument("--index", default="FLAT")
    ap.add_argument("--index-params", default="{}")
    ap.add_argument("--search-params", default="{}")
    ap.add_argument("--concurrency", default="1,4")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--selectivities", default="0.01,0.5")
    ap.add_argument("--topk", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1000)
    a = ap.parse_args()

    base = read_vecs(os.path.join(a.data, "base.fvecs"), np.float32)
    queries = read_vecs(os.path.join(a.data, "queries_public.fvecs"), np.float32)
    gt = read_vecs(os.path.join(a.data, "gt_public.ivecs"), np.int32)
    gt_dist = read_vecs(os.path.join(a.data, "gt_public.dist.fvecs"), np.float32)
    higher_better = bool(gt_dist[0, 0] > gt_dist[0, -1])
    metric = "IP" if higher_better else "L2"
    if a.rows and a.rows < len(base):
        base = base[: a.rows]
        gt = gt_dist = None  # recomputed below over the rows inserted
    if a.queries:
        queries = queries[: a.queries]
    n, dim, k = len(base), base.shape[1], a.topk

    def score(q, rows):
        if higher_better:
            return rows @ q
        return ((rows - q) ** 2).sum(axis=1)

    def exact(qs, allowed=None):
        ids, dists = [], []
        idx = np.arange(n) if allowed is None else np.nonzero(allowed)[0]
        for q in qs:
            s = score(q, base[idx])
            order = np.argsort(-s if higher_better else s, kind="stable")[:k]
            ids.append(idx[order])
            dists.append(s[order])
        return ids, dists

    if gt is None:
        gt, gt_dist = exact(queries)
    else:
        gt, gt_dist = gt[: len(queries)], gt_dist[: len(queries)]
    rnd = (splitmix64(np.arange(n, dtype=np.uint64)) % np.uint64(RND_RANGE)).astype(np.int64)

    R = {"label": a.label or a.uri, "uri": a.uri, "rows": n, "dim": dim, "queries": len(queries),
         "metric": metric, "index": a.index, "index_params": json.loads(a.index_params),
         "search_params": json.loads(a.search_params), "seconds_per_level": a.seconds, "setup": {},
         "search": [], "filtered": [], "query": []}
    remote = a.uri.startswith("http")
    client = MilvusClient(a.uri)
    try:
        R["server_version"] = client.get_server_version()
    except Exception as e:  # milvus-lite may not implement it
        R["server_version"] = f"unavailable: {e!r}"[:120]
    C = "loadtest_py"
    if client.has_collection(C):
        client.drop_collection(C)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("rnd", DataType.INT64)
    t0 = time.perf_counter()
    client.create_collection(C, schema=schema)
    R["setup"]["create_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    for s in range(0, n, a.batch):
        e = min(n, s + a.batch)
        client.insert(C, [{"id": i, "vector": base[i], "rnd": int(rnd[i])} for i in range(s, e)])
    R["setup"]["insert_s"] = time.perf_counter() - t0
    R["setup"]["insert_rows_per_s"] = n / R["setup"]["insert_s"]
    t0 = time.perf_counter()
    client.flush(C)
    R["setup"]["flush_s"] = time.perf_counter() - t0

    ip = client.prepare_index_params()
    bp = json.loads(a.index_params)
    # milvus-lite 3.x reads build parameters only from one JSON "params" key.
    ip.add_index(field_name="vector", index_type=a.index, metric_type=metric,
                 params={"params": bp} if (bp and not remote) else bp)
    t0 = time.perf_counter()
    client.create_index(C, ip)
    for _ in range(36_000):
        d = client.describe_index(C, client.list_indexes(C)[0])
        if str(d.get("state", "Finished")) in ("Finished", "3") and int(d.get("pending_index_rows", 0) or 0) == 0:
            break
        time.sleep(0.1)
    R["setup"]["index_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    client.load_collection(C)
    R["setup"]["load_s"] = time.perf_counter() - t0

    sp = json.loads(a.search_params)

    def true_score(qi):
        q = queries[qi]
        return lambda i: float(score(q, base[i:i + 1])[0]) if 0 <= i < n else None

    def run_level(clients, make_call):
        """Each thread loops make_call(client, seq) for a.seconds; returns the summary."""
        lat, recalls, errors, lock = [], [], {}, threading.Lock()
        counter = iter(range(10**12))
        stop = time.perf_counter() + a.seconds

        def worker(c):
            mine_lat, mine_rec = [], []
            while time.perf_counter() < stop:
                with lock:
                    seq = next(counter)
                t = time.perf_counter()
                try:
                    r = make_call(c, seq)
                except Exception as e:  # counted, like loadtest's error codes
                    key = type(e).__name__
                    with lock:
                        errors[key] = errors.get(key, 0) + 1
                    continue
                mine_lat.append((time.perf_counter() - t) * 1000)
                if r is not None:
                    mine_rec.append(r)
            with lock:
                lat.extend(mine_lat)
                recalls.extend(mine_rec)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        el = time.perf_counter() - t0
        lat.sort()
        return {"requests": len(lat), "qps": len(lat) / el, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
                "recall": float(np.mean(recalls)) if recalls else None, "errors": errors}

    def clients_for(c):
        # A connection per client for servers; milvus-lite serves one process, shared.
        return [MilvusClient(a.uri) if remote else client for _ in range(c)]

    nq = len(queries)
    for c in [int(x) for x in a.concurrency.split(",")]:
        def call(cl, seq):
            qi = seq % nq
            res = cl.search(C, data=[queries[qi].tolist()], limit=k, search_params={"params": sp},
                            anns_field="vector", output_fields=["id"])
            ids = [int(h["id"]) for h in res[0]]
            return recall_at_k(k, ids, gt[qi], gt_dist[qi], true_score(qi), higher_better)
        s = run_level(clients_for(c), call)
        s["concurrency"] = c
        R["search"].append(s)
        print(f"search c={c}: {s['qps']:.1f} QPS, p99 {s['p99_ms']:.2f} ms, recall {s['recall']}", flush=True)

    c = max(int(x) for x in a.concurrency.split(","))
    fq = min(nq, 200)
    for sel in [float(x) for x in a.selectivities.split(",")]:
        t = max(1, min(RND_RANGE, round(sel * RND_RANGE)))
        fids, fd = exact(queries[:fq], rnd < t)

        def fcall(cl, seq, t=t, fids=fids, fd=fd):
            qi = seq % fq
            res = cl.search(C, data=[queries[qi].tolist()], limit=k, filter=f"rnd < {t}",
                            search_params={"params": sp}, anns_field="vector", output_fields=["id"])
            ids = [int(h["id"]) for h in res[0]]
            return recall_at_k(k, ids, fids[qi], fd[qi], true_score(qi), higher_better)
        s = run_level(clients_for(c), fcall)
        s.update({"selectivity": sel, "expr": f"rnd < {t}", "concurrency": c})
        R["filtered"].append(s)
        print(f"filtered {sel}: {s['qps']:.1f} QPS, recall {s['recall']}", flush=True)

    expected = int((rnd < RND_RANGE // 10).sum())

    def count_call(cl, seq):
        got = cl.query(C, filter=f"rnd < {RND_RANGE // 10}", output_fields=["count(*)"])[0]["count(*)"]
        if got != expected:
            raise ValueError(f"count {got} != {expected}")

    def get_call(cl, seq):
        rng = np.random.default_rng(seq)
        ids = sorted(set(int(x) for x in rng.integers(0, n, 10)))
        got = sorted(int(r["id"]) for r in cl.query(C, filter=f"id in {ids}", output_fields=["id"]))
        if got != ids:
            raise ValueError("wrong rows")
    for name, fn in (("get by id", get_call), ("count", count_call)):
        s = run_level(clients_for(c), fn)
        s["name"] = name
        R["query"].append(s)
        print(f"query {name}: {s['qps']:.1f} QPS", flush=True)

    client.drop_collection(C)
    with open(a.out, "w") as f:
        json.dump(R, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
