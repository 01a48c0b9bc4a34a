"""Collection, partition, load and flush management; the ORM flow."""

import numpy as np
import pytest
from pymilvus import (
    Collection,
    CollectionSchema,
    DataType,
    FieldSchema,
    MilvusException,
    Partition,
    connections,
    utility,
)
from pymilvus.client.types import LoadState

from conftest import unique_name
from helpers import check_search, random_vectors

STRONG = "Strong"


def _state(client, name, **kw):
    return client.get_load_state(name, **kw)["state"]


def _field(desc, name):
    for f in desc["fields"]:
        if f["name"] == name:
            return f
    raise AssertionError(f"field {name} not in {[f['name'] for f in desc['fields']]}")


# ---------------------------------------------------------------------------- quick setup


def test_quick_setup_defaults(client, name):
    client.create_collection(name, dimension=8)
    assert client.has_collection(name)
    assert name in client.list_collections()

    d = client.describe_collection(name)
    assert d["collection_name"] == name
    assert d["auto_id"] is False
    assert d["enable_dynamic_field"] is True
    assert d["num_shards"] == 1
    assert d["num_partitions"] == 1
    assert d["consistency_level"] == 2  # Bounded is MilvusClient's default
    assert [f["name"] for f in d["fields"]] == ["id", "vector"]
    pk, vec = d["fields"]
    assert pk["field_id"] == 100 and pk["type"] == DataType.INT64 and pk.get("is_primary") is True
    assert not pk.get("auto_id", False)
    assert vec["field_id"] == 101 and vec["type"] == DataType.FLOAT_VECTOR
    assert vec["params"]["dim"] == 8

    assert client.list_indexes(name) == ["vector"]
    idx = client.describe_index(name, "vector")
    assert idx["index_type"] == "AUTOINDEX"
    assert idx["metric_type"] == "COSINE"
    assert idx["field_name"] == "vector"
    assert idx["state"] == "Finished"

    # Loaded at once: insert, then search without any load call.
    assert _state(client, name) == LoadState.Loaded
    vecs = random_vectors(50, 8, seed=1)
    rows = [{"id": i, "vector": vecs[i].tolist()} for i in range(50)]
    assert client.insert(name, rows)["insert_count"] == 50
    q = random_vectors(3, 8, seed=2)
    res = client.search(name, q.tolist(), limit=5, consistency_level=STRONG)
    check_search(res, vecs, list(range(50)), q, "COSINE", 5, where="quick setup")


def test_quick_setup_options(client, names):
    # metric, string ids with max_length, custom field names.
    name = names()
    client.create_collection(
        name, dimension=16, primary_field_name="pk", id_type="string", max_length=32,
        vector_field_name="emb", metric_type="L2", consistency_level=STRONG,
    )
    d = client.describe_collection(name)
    assert [f["name"] for f in d["fields"]] == ["pk", "emb"]
    pk = _field(d, "pk")
    assert pk["type"] == DataType.VARCHAR and pk["params"]["max_length"] == 32
    assert d["consistency_level"] == 0
    assert client.describe_index(name, "emb")["metric_type"] == "L2"
    vecs = random_vectors(40, 16, seed=3)
    pks = [f"doc-{i}" for i in range(40)]
    client.insert(name, [{"pk": pks[i], "emb": vecs[i].tolist()} for i in range(40)])
    q = random_vectors(2, 16, seed=4)
    res = client.search(name, q.tolist(), limit=7)
    check_search(res, vecs, pks, q, "L2", 7, where="quick setup string pk")

    # auto_id: ids are generated, distinct, and returned by insert.
    name2 = names()
    client.create_collection(name2, dimension=4, auto_id=True, metric_type="IP")
    d2 = client.describe_collection(name2)
    assert d2["auto_id"] is True
    vecs2 = random_vectors(30, 4, seed=5)
    r = client.insert(name2, [{"vector": v.tolist()} for v in vecs2])
    assert r["insert_count"] == 30
    ids = list(r["ids"])
    assert len(ids) == 30 and len(set(ids)) == 30 and all(isinstance(i, int) for i in ids)
    res = client.search(name2, [vecs2[0].tolist()], limit=30, consistency_level=STRONG)
    check_search(res, vecs2, ids, vecs2[:1], "IP", 30, where="auto_id")


def test_create_same_collection_twice_is_idempotent(client, name):
    client.create_collection(name, dimension=8)
    client.create_collection(name, dimension=8)
    assert client.list_collections().count(name) == 1


# ---------------------------------------------------------------------------- explicit schema


def _full_schema(client, dim=8, dynamic=False):
    schema = client.create_schema(auto_id=False, enable_dynamic_field=dynamic, description="e2e schema")
    schema.add_field("id", DataType.INT64, is_primary=True, description="primary key")
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("b", DataType.BOOL)
    schema.add_field("i8", DataType.INT8)
    schema.add_field("i16", DataType.INT16)
    schema.add_field("i32", DataType.INT32)
    schema.add_field("i64", DataType.INT64)
    schema.add_field("f", DataType.FLOAT)
    schema.add_field("d", DataType.DOUBLE)
    schema.add_field("s", DataType.VARCHAR, max_length=64)
    schema.add_field("j", DataType.JSON)
    schema.add_field("n", DataType.INT32, nullable=True)
    schema.add_field("dv", DataType.VARCHAR, max_length=16, default_value="none")
    return schema


def test_explicit_schema_with_index_params(client, name):
    schema = _full_schema(client)
    ip = client.prepare_index_params()
    ip.add_index(field_name="vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=ip, consistency_level=STRONG)

    d = client.describe_collection(name)
    assert d["description"] == "e2e schema"
    assert d["enable_dynamic_field"] is False
    assert d["consistency_level"] == 0
    names_ = [f["name"] for f in d["fields"]]
    assert names_ == ["id", "vec", "b", "i8", "i16", "i32", "i64", "f", "d", "s", "j", "n", "dv"]
    assert [f["field_id"] for f in d["fields"]] == list(range(100, 113))
    types = {f["name"]: f["type"] for f in d["fields"]}
    assert types == {
        "id": DataType.INT64, "vec": DataType.FLOAT_VECTOR, "b": DataType.BOOL,
        "i8": DataType.INT8, "i16": DataType.INT16, "i32": DataType.INT32,
        "i64": DataType.INT64, "f": DataType.FLOAT, "d": DataType.DOUBLE,
        "s": DataType.VARCHAR, "j": DataType.JSON, "n": DataType.INT32, "dv": DataType.VARCHAR,
    }
    assert _field(d, "id")["description"] == "primary key"
    assert _field(d, "vec")["params"]["dim"] == 8
    assert _field(d, "s")["params"]["max_length"] == 64
    assert _field(d, "n").get("nullable") is True
    assert not _field(d, "i32").get("nullable", False)
    assert _field(d, "dv").get("default_value") is not None
    assert "none" in str(_field(d, "dv")["default_value"])

    assert client.list_indexes(name) == ["vec"]
    idx = client.describe_index(name, "vec")
    assert idx["index_type"] == "FLAT" and idx["metric_type"] == "L2"
    assert _state(client, name) == LoadState.Loaded


def test_explicit_schema_without_index_is_not_loaded(client, name):
    schema = _full_schema(client)
    client.create_collection(name, schema=schema)
    assert client.has_collection(name)
    assert _state(client, name) == LoadState.NotLoad
    assert client.list_indexes(name) == []
    # Inserting into an unloaded collection is fine; then index + load and search it.
    vecs = random_vectors(20, 8, seed=7)
    rows = [
        {"id": i, "vec": vecs[i].tolist(), "b": True, "i8": 1, "i16": 2, "i32": 3, "i64": 4,
         "f": 0.5, "d": 0.25, "s": "x", "j": {"k": i}}
        for i in range(20)
    ]
    client.insert(name, rows)
    ip = client.prepare_index_params()
    ip.add_index(field_name="vec", index_type="AUTOINDEX", metric_type="IP")
    client.create_index(name, ip)
    client.load_collection(name)
    assert _state(client, name) == LoadState.Loaded
    q = random_vectors(2, 8, seed=8)
    res = client.search(name, q.tolist(), limit=4, consistency_level=STRONG)
    check_search(res, vecs, list(range(20)), q, "IP", 4)


# ---------------------------------------------------------------------------- lifecycle


def test_has_list_drop(client, names):
    a, b = names(), names()
    assert not client.has_collection(a)
    client.create_collection(a, dimension=4)
    client.create_collection(b, dimension=4)
    listed = client.list_collections()
    assert a in listed and b in listed
    client.drop_collection(a)
    assert not client.has_collection(a)
    assert a not in client.list_collections()
    assert b in client.list_collections()
    # The name can be reused for a new, empty collection.
    client.create_collection(a, dimension=6, consistency_level=STRONG)
    assert client.describe_collection(a)["fields"][1]["params"]["dim"] == 6
    assert client.query(a, filter="", output_fields=["count(*)"])[0]["count(*)"] == 0


def test_rename_collection(client, names):
    old, new = names(), names()
    client.create_collection(old, dimension=8, consistency_level=STRONG)
    vecs = random_vectors(30, 8, seed=11)
    client.insert(old, [{"id": i, "vector": vecs[i].tolist()} for i in range(30)])
    client.rename_collection(old, new)
    assert not client.has_collection(old)
    assert client.has_collection(new)
    listed = client.list_collections()
    assert new in listed and old not in listed
    assert client.describe_collection(new)["collection_name"] == new
    assert client.query(new, filter="", output_fields=["count(*)"])[0]["count(*)"] == 30
    q = random_vectors(1, 8, seed=12)
    check_search(client.search(new, q.tolist(), limit=5), vecs, list(range(30)), q, "COSINE", 5)


def test_flush_and_collection_stats(client, name):
    client.create_collection(name, dimension=8, consistency_level=STRONG)
    assert int(client.get_collection_stats(name)["row_count"]) == 0
    vecs = random_vectors(123, 8, seed=13)
    client.insert(name, [{"id": i, "vector": vecs[i].tolist()} for i in range(100)])
    client.insert(name, [{"id": i, "vector": vecs[i].tolist()} for i in range(100, 123)])
    client.flush(name)
    assert int(client.get_collection_stats(name)["row_count"]) == 123
    # Data stays searchable after the flush (sealed segments).
    q = random_vectors(3, 8, seed=14)
    check_search(client.search(name, q.tolist(), limit=10), vecs, list(range(123)), q, "COSINE", 10)
    assert client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == 123


def test_load_release_load_state(client, name):
    client.create_collection(name, dimension=8, consistency_level=STRONG, metric_type="L2")
    vecs = random_vectors(64, 8, seed=15)
    client.insert(name, [{"id": i, "vector": vecs[i].tolist()} for i in range(64)])
    assert _state(client, name) == LoadState.Loaded
    client.release_collection(name)
    assert _state(client, name) == LoadState.NotLoad
    client.load_collection(name)
    assert _state(client, name) == LoadState.Loaded
    q = random_vectors(2, 8, seed=16)
    check_search(client.search(name, q.tolist(), limit=8), vecs, list(range(64)), q, "L2", 8)
    # Releasing twice and loading twice are harmless.
    client.release_collection(name)
    client.release_collection(name)
    client.load_collection(name)
    client.load_collection(name)
    assert _state(client, name) == LoadState.Loaded
    assert client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == 64


def test_load_state_of_missing_collection(client):
    # Milvus' proxy GetLoadState answers a collection it cannot find with a SUCCESS status
    # and state LoadStateNotExist (internal/proxy/impl.go GetLoadState: "failed to get
    # collection id" -> successResponse.State = LoadStateNotExist), and pymilvus returns
    # {"state": LoadState.NotExist} (grpc_handler.get_load_state raises on any error status).
    missing = unique_name("e2e_missing")
    assert client.get_load_state(missing)["state"] == LoadState.NotExist


# ---------------------------------------------------------------------------- partitions


def test_partitions(client, name):
    client.create_collection(name, dimension=8, consistency_level=STRONG, metric_type="L2")
    assert client.list_partitions(name) == ["_default"]
    assert client.has_partition(name, "_default")
    assert not client.has_partition(name, "p1")
    client.create_partition(name, "p1")
    client.create_partition(name, "p2")
    assert sorted(client.list_partitions(name)) == ["_default", "p1", "p2"]
    assert client.has_partition(name, "p1")
    assert client.describe_collection(name)["num_partitions"] == 3

    vecs = random_vectors(90, 8, seed=17)
    part = np.array(["_default"] * 30 + ["p1"] * 30 + ["p2"] * 30)
    for p in ("_default", "p1", "p2"):
        rows = [{"id": i, "vector": vecs[i].tolist()} for i in range(90) if part[i] == p]
        kw = {} if p == "_default" else {"partition_name": p}
        client.insert(name, rows, **kw)
    client.flush(name)
    assert int(client.get_partition_stats(name, "p1")["row_count"]) == 30
    assert int(client.get_collection_stats(name)["row_count"]) == 90

    # Newly created partitions of a loaded collection are searchable.
    q = random_vectors(2, 8, seed=18)
    ids = list(range(90))
    check_search(client.search(name, q.tolist(), limit=10), vecs, ids, q, "L2", 10)
    check_search(client.search(name, q.tolist(), limit=10, partition_names=["p1"]),
                 vecs, ids, q, "L2", 10, mask=part == "p1", where="p1")
    rows = client.query(name, filter="id >= 0", output_fields=["id"], partition_names=["p2", "_default"])
    assert sorted(r["id"] for r in rows) == [i for i in range(90) if part[i] != "p1"]

    # Drop p1 (release it first, as Milvus requires); its rows disappear.
    client.release_partitions(name, ["p1"])
    client.drop_partition(name, "p1")
    assert not client.has_partition(name, "p1")
    assert sorted(client.list_partitions(name)) == ["_default", "p2"]
    client.load_collection(name)
    check_search(client.search(name, q.tolist(), limit=10), vecs, ids, q, "L2", 10,
                 mask=part != "p1", where="after drop p1")
    assert client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == 60


def test_load_and_release_partitions(client, name):
    client.create_collection(name, dimension=8, consistency_level=STRONG, metric_type="IP")
    client.create_partition(name, "pa")
    vecs = random_vectors(40, 8, seed=19)
    client.insert(name, [{"id": i, "vector": vecs[i].tolist()} for i in range(20)])
    client.insert(name, [{"id": i, "vector": vecs[i].tolist()} for i in range(20, 40)], partition_name="pa")
    client.release_collection(name)
    client.load_partitions(name, ["pa"])
    assert _state(client, name, partition_name="pa") == LoadState.Loaded
    q = random_vectors(1, 8, seed=20)
    mask = np.arange(40) >= 20
    check_search(client.search(name, q.tolist(), limit=5, partition_names=["pa"]),
                 vecs, list(range(40)), q, "IP", 5, mask=mask)
    # Without partition_names, only the loaded partitions are searched.
    check_search(client.search(name, q.tolist(), limit=5), vecs, list(range(40)), q, "IP", 5, mask=mask)
    assert client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == 20
    # Milvus: a partition that is not loaded -> code 201 "partition not loaded".
    with pytest.raises(MilvusException) as ei:
        client.search(name, q.tolist(), limit=5, partition_names=["_default"])
    assert ei.value.code == 201 and "partition not loaded" in ei.value.message, ei.value
    client.release_partitions(name, ["pa"])
    assert _state(client, name, partition_name="pa") == LoadState.NotLoad
    assert _state(client, name) == LoadState.NotLoad


# ---------------------------------------------------------------------------- ORM


def test_orm_flow(uri):
    alias = unique_name("alias")
    connections.connect(alias=alias, uri=uri)
    name = unique_name("e2e_orm")
    try:
        fields = [
            FieldSchema("pk", DataType.INT64, is_primary=True, auto_id=False),
            FieldSchema("title", DataType.VARCHAR, max_length=100),
            FieldSchema("year", DataType.INT32),
            FieldSchema("embedding", DataType.FLOAT_VECTOR, dim=16),
        ]
        schema = CollectionSchema(fields, description="orm e2e")
        coll = Collection(name, schema, using=alias, consistency_level="Strong")
        assert utility.has_collection(name, using=alias)
        # Re-opening with the same schema (the ORM compares the described schema with its own).
        again = Collection(name, schema, using=alias, consistency_level="Strong")
        assert again.schema == coll.schema
        assert Collection(name, using=alias).schema == schema

        n = 300
        vecs = random_vectors(n, 16, seed=21)
        pks = list(range(1000, 1000 + n))
        years = [1990 + (i % 30) for i in range(n)]
        titles = [f"book {i}" for i in range(n)]
        mr = coll.insert([pks, titles, years, vecs.tolist()])
        assert mr.insert_count == n
        assert list(mr.primary_keys) == pks
        coll.flush()
        assert coll.num_entities == n

        coll.create_index("embedding", {"index_type": "FLAT", "metric_type": "L2", "params": {}})
        assert coll.has_index()
        assert coll.index().params["metric_type"] == "L2"
        coll.load()
        assert utility.load_state(name, using=alias) == LoadState.Loaded

        q = random_vectors(3, 16, seed=22)
        res = coll.search(q.tolist(), "embedding", {"metric_type": "L2", "params": {}}, limit=10,
                          expr="year >= 2000", output_fields=["title", "year"])
        mask = np.array(years) >= 2000
        check_search(res, vecs, pks, q, "L2", 10, mask=mask, where="orm search")
        for hits in res:
            for h in hits:
                i = h.id - 1000
                assert h.entity.get("title") == titles[i]
                assert h.entity.get("year") == years[i]

        rows = coll.query(expr="pk in [1000, 1005, 1299]", output_fields=["title", "year"])
        assert sorted((r["pk"], r["title"], r["year"]) for r in rows) == [
            (1000, "book 0", years[0]), (1005, "book 5", years[5]), (1299, "book 299", years[299])]

        coll.delete("pk in [1000, 1001]")
        assert coll.query(expr="", output_fields=["count(*)"])[0]["count(*)"] == n - 2

        Partition(coll, "orm_part")
        assert coll.has_partition("orm_part")
        assert {x.name for x in coll.partitions} == {"_default", "orm_part"}

        coll.release()
        assert utility.load_state(name, using=alias) == LoadState.NotLoad
        coll.drop_index()
        assert not coll.has_index()
        coll.drop()
        assert not utility.has_collection(name, using=alias)
    finally:
        if utility.has_collection(name, using=alias):
            utility.drop_collection(name, using=alias)
        connections.disconnect(alias)
