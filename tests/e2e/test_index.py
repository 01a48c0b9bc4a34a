"""create_index / list_indexes / describe_index / drop_index with FLAT and AUTOINDEX."""

import pytest
from pymilvus import Collection, DataType, MilvusException, connections, utility

from conftest import unique_name
from helpers import check_search, random_vectors

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
