"""create_index / list_indexes / describe_index / drop_index with FLAT, AUTOINDEX, the
IVF types (IVF_FLAT, IVF_SQ8, IVF_PQ) and HNSW."""

import numpy as np
import pytest
from pymilvus import Collection, DataType, MilvusException, connections, utility

from conftest import unique_name
from helpers import check_search, higher_is_better, random_vectors, scores

STRONG = "Strong"
DIM = 16


def _unindexed(client, name, n=200, seed=0, flush=False):
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("x", DataType.INT64)
    client.create_collection(name, schema=schema, consistency_level=STRONG)
    vecs = random_vectors(n, DIM, seed=seed)
    client.insert(name, [{"id": i, "emb": vecs[i].tolist(), "x": i % 10} for i in range(n // 2)])
    if flush:
        client.flush(name)  # half of the rows in a sealed segment, half growing
    client.insert(name, [{"id": i, "emb": vecs[i].tolist(), "x": i % 10} for i in range(n // 2, n)])
    return vecs


@pytest.mark.parametrize("index_type", ["FLAT", "AUTOINDEX"])
@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_create_describe_search_drop(client, name, index_type, metric):
    vecs = _unindexed(client, name, seed=1, flush=True)
    assert client.list_indexes(name) == []
    assert client.describe_index(name, "emb") is None

    ip = client.prepare_index_params()
    ip.add_index(field_name="emb", index_type=index_type, metric_type=metric)
    client.create_index(name, ip)

    # Default index name is the field name.
    assert client.list_indexes(name) == ["emb"]
    assert client.list_indexes(name, field_name="emb") == ["emb"]
    assert client.list_indexes(name, field_name="x") == []
    d = client.describe_index(name, "emb")
    assert d["index_type"] == index_type
    assert d["metric_type"] == metric
    assert d["field_name"] == "emb"
    assert d["index_name"] == "emb"
    assert d["state"] == "Finished"
    assert d["pending_index_rows"] == 0
    # 100 rows are in a flushed segment (the other 100 still grow); a finished index has
    # indexed them all.
    assert d["total_rows"] >= 100 and d["indexed_rows"] == d["total_rows"], d

    client.load_collection(name)
    q = random_vectors(3, DIM, seed=2)
    res = client.search(name, q.tolist(), limit=10, consistency_level=STRONG)
    check_search(res, vecs, list(range(200)), q, metric, 10, where=f"{index_type}/{metric}")

    # Milvus refuses to drop the index of a loaded collection.
    with pytest.raises(MilvusException) as ei:
        client.drop_index(name, "emb")
    assert "release" in ei.value.message, ei.value
    client.release_collection(name)
    client.drop_index(name, "emb")
    assert client.list_indexes(name) == []
    assert client.describe_index(name, "emb") is None


def test_custom_index_name_and_params(client, name):
    vecs = _unindexed(client, name, seed=3)
    ip = client.prepare_index_params()
    ip.add_index(field_name="emb", index_name="my_idx", index_type="FLAT", metric_type="IP",
                 params={"nlist": 128})
    client.create_index(name, ip)
    assert client.list_indexes(name) == ["my_idx"]
    d = client.describe_index(name, "my_idx")
    assert d["index_name"] == "my_idx" and d["field_name"] == "emb"
    assert d["index_type"] == "FLAT" and d["metric_type"] == "IP"
    # User params are echoed back (pymilvus decodes the "params" JSON).
    assert d.get("nlist") in (128, "128") or d.get("params", {}).get("nlist") in (128, "128"), d
    assert client.describe_index(name, "emb") is None  # not an index name
    client.load_collection(name)
    q = random_vectors(2, DIM, seed=4)
    check_search(client.search(name, q.tolist(), limit=5, consistency_level=STRONG), vecs, list(range(200)), q, "IP", 5)
    client.release_collection(name)
    client.drop_index(name, "my_idx")
    assert client.list_indexes(name) == []


def test_create_same_index_twice_is_idempotent(client, name):
    _unindexed(client, name, seed=5)
    ip = client.prepare_index_params()
    ip.add_index(field_name="emb", index_type="AUTOINDEX", metric_type="L2")
    client.create_index(name, ip)
    client.create_index(name, ip)
    assert client.list_indexes(name) == ["emb"]


def test_second_different_index_on_field_is_refused(client, name):
    # Milvus: "at most one distinct index is allowed per field" (CreateIndex failed).
    _unindexed(client, name, seed=6)
    ip = client.prepare_index_params()
    ip.add_index(field_name="emb", index_type="FLAT", metric_type="L2")
    client.create_index(name, ip)
    ip2 = client.prepare_index_params()
    ip2.add_index(field_name="emb", index_type="FLAT", metric_type="IP")
    with pytest.raises(MilvusException) as ei:
        client.create_index(name, ip2)
    assert "at most one distinct index is allowed per field" in ei.value.message, ei.value
    assert client.describe_index(name, "emb")["metric_type"] == "L2"


def test_reindex_with_other_metric(client, name):
    vecs = _unindexed(client, name, seed=7)
    for metric in ("L2", "COSINE", "IP"):
        ip = client.prepare_index_params()
        ip.add_index(field_name="emb", index_type="FLAT", metric_type=metric)
        client.create_index(name, ip)
        client.load_collection(name)
        q = random_vectors(2, DIM, seed=8)
        check_search(client.search(name, q.tolist(), limit=7, consistency_level=STRONG),
                     vecs, list(range(200)), q, metric, 7, where=metric)
        client.release_collection(name)
        client.drop_index(name, "emb")


def test_load_without_index_is_refused(client, name):
    # Milvus: LoadCollection without a vector index fails with code 700 (index not found).
    _unindexed(client, name, seed=9)
    with pytest.raises(MilvusException) as ei:
        client.load_collection(name)
    assert ei.value.code == 700, ei.value
    assert "index not found" in ei.value.message, ei.value


def test_orm_index(uri):
    alias = unique_name("alias")
    connections.connect(alias=alias, uri=uri)
    name = unique_name("e2e_orm_idx")
    try:
        from pymilvus import CollectionSchema, FieldSchema

        schema = CollectionSchema([
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("v", DataType.FLOAT_VECTOR, dim=DIM),
        ])
        c = Collection(name, schema, using=alias, consistency_level="Strong")
        vecs = random_vectors(100, DIM, seed=10)
        c.insert([list(range(100)), vecs.tolist()])
        # The ORM sends params as a JSON string next to index_type/metric_type.
        c.create_index("v", {"index_type": "AUTOINDEX", "metric_type": "COSINE", "params": {}}, index_name="v_idx")
        assert c.has_index(index_name="v_idx")
        idx = c.index(index_name="v_idx")
        assert idx.field_name == "v" and idx.params["metric_type"] == "COSINE"
        assert utility.list_indexes(name, using=alias) == ["v_idx"]
        c.load()
        q = random_vectors(2, DIM, seed=11)
        res = c.search(q.tolist(), "v", {"metric_type": "COSINE"}, limit=6)
        check_search(res, vecs, list(range(100)), q, "COSINE", 6)
        c.release()
        c.drop_index(index_name="v_idx")
        assert not c.has_index(index_name="v_idx")
        c.drop()
    finally:
        if utility.has_collection(name, using=alias):
            utility.drop_collection(name, using=alias)
        connections.disconnect(alias)


# ---------------------------------------------------------------------------- IVF indexes

IVF_ROWS = 3000
IVF_NLIST = 32


def _clustered(n, dim, seed):
    """Vectors around 40 centres, so inverted lists mean something."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim)).astype(np.float32)
    labels = rng.integers(0, len(centres), size=n)
    return (centres[labels] + 0.3 * rng.normal(size=(n, dim))).astype(np.float32)


def _recall(res, base, queries, metric, k):
    s = scores(metric, base, np.asarray(queries))
    hits = 0
    for qi, hits_q in enumerate(res):
        order = np.argsort(-s[qi] if higher_is_better(metric) else s[qi], kind="stable")[:k]
        hits += len({h["id"] for h in hits_q} & set(order.tolist()))
    return hits / (k * len(res))


@pytest.mark.parametrize("index_type,params,min_recall", [
    ("IVF_FLAT", {"nlist": IVF_NLIST}, 1.0),
    ("IVF_SQ8", {"nlist": IVF_NLIST}, 0.9),
    ("IVF_PQ", {"nlist": IVF_NLIST, "m": 8, "nbits": 8}, 0.6),
])
@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_ivf_indexes_build_describe_and_search(client, name, index_type, params, min_recall, metric):
    """An IVF index on a flushed segment: create_index returns once it is built (pymilvus
    waits for Finished), describe_index reports its parameters and rows, and searches go
    through it: with every list probed IVF_FLAT is exact, SQ8 and PQ stay above a recall
    floor; a filter narrows the candidates before scoring."""
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("x", DataType.INT64)
    client.create_collection(name, schema=schema, consistency_level=STRONG)
    vecs = _clustered(IVF_ROWS, DIM, seed=len(index_type) * 10 + len(metric))
    for at in range(0, IVF_ROWS, 1000):
        client.insert(name, [{"id": i, "emb": vecs[i].tolist(), "x": i % 10} for i in range(at, at + 1000)])
    client.flush(name)

    ip = client.prepare_index_params()
    ip.add_index(field_name="emb", index_type=index_type, metric_type=metric, params=params)
    client.create_index(name, ip)
    d = client.describe_index(name, "emb")
    assert d["index_type"] == index_type and d["metric_type"] == metric, d
    assert int(d["nlist"]) == IVF_NLIST, d
    assert d["state"] == "Finished" and d["indexed_rows"] == d["total_rows"] == IVF_ROWS, d

    client.load_collection(name)
    q = _clustered(20, DIM, seed=7)
    pks = list(range(IVF_ROWS))
    all_lists = {"params": {"nprobe": IVF_NLIST}}
    res = client.search(name, q.tolist(), limit=10, search_params=all_lists, consistency_level=STRONG)
    if min_recall == 1.0:
        check_search(res, vecs, pks, q, metric, 10, where=f"{index_type}/{metric}")
    assert _recall(res, vecs, q, metric, 10) >= min_recall
    # Fewer lists probed: still answers, never better than probing them all.
    few = client.search(name, q.tolist(), limit=10, search_params={"params": {"nprobe": 2}},
                        consistency_level=STRONG)
    assert all(len(h) == 10 for h in few)
    assert _recall(few, vecs, q, metric, 10) <= _recall(res, vecs, q, metric, 10) + 1e-9

    # Filtered search through the index.
    res = client.search(name, q.tolist(), limit=10, filter="x < 3", search_params=all_lists,
                        output_fields=["x"], consistency_level=STRONG)
    assert all(h["entity"]["x"] < 3 for hits in res for h in hits)
    if min_recall == 1.0:
        check_search(res, vecs, pks, q, metric, 10, mask=np.arange(IVF_ROWS) % 10 < 3, where="filtered")

    # Deleted rows never come back from the index.
    best = [hits[0]["id"] for hits in res]
    client.delete(name, ids=best)
    res = client.search(name, q.tolist(), limit=10, filter="x < 3", search_params=all_lists,
                        consistency_level=STRONG)
    assert not ({h["id"] for hits in res for h in hits} & set(best))


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_hnsw_build_describe_and_search(client, name, metric):
    """HNSW as pymilvus creates it (`M`, `efConstruction`): described with its parameters,
    searched with `ef` (recall grows with it; an `ef` below the limit is refused, as
    Milvus refuses it), with a filter, without deleted rows."""
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("x", DataType.INT64)
    client.create_collection(name, schema=schema, consistency_level=STRONG)
    vecs = _clustered(IVF_ROWS, DIM, seed=len(metric))
    for at in range(0, IVF_ROWS, 1000):
        client.insert(name, [{"id": i, "emb": vecs[i].tolist(), "x": i % 10} for i in range(at, at + 1000)])
    client.flush(name)

    ip = client.prepare_index_params()
    ip.add_index(field_name="emb", index_type="HNSW", metric_type=metric, params={"M": 16, "efConstruction": 100})
    client.create_index(name, ip)
    d = client.describe_index(name, "emb")
    assert d["index_type"] == "HNSW" and d["metric_type"] == metric, d
    assert int(d["M"]) == 16 and int(d["efConstruction"]) == 100, d
    assert d["state"] == "Finished" and d["indexed_rows"] == d["total_rows"] == IVF_ROWS, d

    client.load_collection(name)
    q = _clustered(20, DIM, seed=7)
    wide = {"params": {"ef": 200}}
    res = client.search(name, q.tolist(), limit=10, search_params=wide, consistency_level=STRONG)
    assert all(len(h) == 10 for h in res)
    assert _recall(res, vecs, q, metric, 10) >= 0.95
    narrow = client.search(name, q.tolist(), limit=10, search_params={"params": {"ef": 10}},
                           consistency_level=STRONG)
    assert all(len(h) == 10 for h in narrow)
    with pytest.raises(Exception, match=r"ef\(5\) should be larger than k\(10\)"):
        client.search(name, q.tolist(), limit=10, search_params={"params": {"ef": 5}}, consistency_level=STRONG)

    res = client.search(name, q.tolist(), limit=10, filter="x < 3", search_params=wide,
                        output_fields=["x"], consistency_level=STRONG)
    assert all(h["entity"]["x"] < 3 for hits in res for h in hits)
    best = [hits[0]["id"] for hits in res]
    client.delete(name, ids=best)
    res = client.search(name, q.tolist(), limit=10, filter="x < 3", search_params=wide,
                        consistency_level=STRONG)
    assert not ({h["id"] for hits in res for h in hits} & set(best))


def test_ivf_range_search_is_exact_with_every_list_probed(client, name):
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=DIM)
    client.create_collection(name, schema=schema, consistency_level=STRONG)
    vecs = _clustered(IVF_ROWS, DIM, seed=11)
    client.insert(name, [{"id": i, "emb": vecs[i].tolist()} for i in range(IVF_ROWS)])
    client.flush(name)
    ip = client.prepare_index_params()
    ip.add_index(field_name="emb", index_type="IVF_FLAT", metric_type="L2", params={"nlist": IVF_NLIST})
    client.create_index(name, ip)
    client.load_collection(name)
    q = _clustered(1, DIM, seed=12)
    s = scores("L2", vecs, q)[0]
    asc = np.sort(s)
    radius, range_filter = float(asc[50] + asc[51]) / 2, float(asc[10] + asc[11]) / 2
    res = client.search(name, q.tolist(), limit=100,
                        search_params={"params": {"nprobe": IVF_NLIST, "radius": radius,
                                                  "range_filter": range_filter}},
                        consistency_level=STRONG)
    check_search(res, vecs, list(range(IVF_ROWS)), q, "L2", 100, mask=(s < radius) & (s >= range_filter),
                 where="IVF range")
    assert len(res[0]) == 40


@pytest.mark.parametrize("index_type,params", [
    ("IVF_FLAT", {"nlist": 0}),
    ("IVF_FLAT", {"nlist": 70000}),
    ("IVF_PQ", {"nlist": 8, "m": 5}),  # m must divide dim 16
    ("IVF_PQ", {"nlist": 8, "m": 4, "nbits": 17}),
])
def test_bad_ivf_params_are_refused(client, name, index_type, params):
    _unindexed(client, name, n=50)
    ip = client.prepare_index_params()
    ip.add_index(field_name="emb", index_type=index_type, metric_type="L2", params=params)
    with pytest.raises(MilvusException) as ei:
        client.create_index(name, ip)
    assert ei.value.code == 1100, ei.value
    assert client.list_indexes(name) == []
