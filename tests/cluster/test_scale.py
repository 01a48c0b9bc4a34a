"""Scale-out: a search over segments spread across two query nodes (and two shards on two
data nodes) reduces to exactly the brute-force result, and a second proxy serves the same
cluster with the same answers."""

import numpy as np
from conftest import flat_collection, wait_for
from pymilvus import MilvusClient

DIM = 16


def exact_top(base: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    d = ((base - q) ** 2).sum(axis=1)
    return [int(i) for i in np.argsort(d, kind="stable")[:k]]


def test_search_fans_out_and_a_second_proxy_serves_the_same_cluster(cluster):
    c = MilvusClient(cluster.uri)
    name = flat_collection(c, "scale", DIM, shards=2)
    rng = np.random.default_rng(7)
    base = rng.random((6000, DIM), dtype=np.float32)
    # Several flushes: several sealed segments per shard, for the query coordinator to spread.
    for s in range(0, 5000, 1000):
        c.insert(name, [{"id": i, "v": base[i].tolist()} for i in range(s, s + 1000)])
        c.flush(name)
    c.load_collection(name)
    # And rows still growing.
    c.insert(name, [{"id": i, "v": base[i].tolist()} for i in range(5000, 6000)])

    queries = rng.random((20, DIM), dtype=np.float32)
    first = c.search(name, data=queries.tolist(), limit=10, consistency_level="Strong")
    for q, hits in zip(queries, first):
        assert [h["id"] for h in hits] == exact_top(base, q, 10)

    cluster.up(proxies=2)
    # cluster.sh puts the second proxy on the port after the first one's.
    host, port = cluster.uri.rsplit(":", 1)
    second = MilvusClient(f"{host}:{int(port) + 1}")
    wait_for("the second proxy answers", lambda: second.has_collection(name), 60)
    again = second.search(name, data=queries.tolist(), limit=10, consistency_level="Strong")
    assert [[h["id"] for h in hits] for hits in again] == [[h["id"] for h in hits] for hits in first]
    # Writes through the second proxy are visible through the first.
    second.insert(name, [{"id": 10**9, "v": [0.0] * DIM}])
    row = c.query(name, filter=f"id == {10**9}", output_fields=["id"], consistency_level="Strong")
    assert [r["id"] for r in row] == [10**9]
    c.drop_collection(name)
