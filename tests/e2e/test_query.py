"""query and get: filters, ids, output fields, limit/offset pagination, count(*). Each
result is compared with the rows computed in the test."""

import re

import numpy as np
import pytest
from pymilvus import DataType

from conftest import unique_name
from helpers import random_vectors, rows_by_pk

STRONG = "Strong"
N = 1000
DIM = 8


@pytest.fixture(scope="module")
def data(client):
    name = unique_name("e2e_query")
    schema = client.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("age", DataType.INT32)
    schema.add_field("score", DataType.DOUBLE)
    schema.add_field("name", DataType.VARCHAR, max_length=32)
    schema.add_field("active", DataType.BOOL)
    schema.add_field("info", DataType.JSON)
    schema.add_field("maybe", DataType.INT64, nullable=True)
    ip = client.prepare_index_params()
    ip.add_index(field_name="vec", index_type="AUTOINDEX", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=ip, consistency_level=STRONG)
    client.create_partition(name, "odd")
    r = np.random.default_rng(7)
    vecs = random_vectors(N, DIM, seed=8)
    rows = []
    for i in range(N):
        row = {
            "id": i * 3,  # non-contiguous pks
            "vec": vecs[i].tolist(),
            "age": int(r.integers(18, 90)),
            "score": float(np.round(r.random() * 10, 4)),
            "name": ["alice", "bob", "carol", "dave", "erin"][i % 5] + f"_{i}",
            "active": bool(i % 4 != 0),
            "info": {"city": ["paris", "rome", "oslo"][i % 3], "level": i % 7, "tags": ["x"] * (i % 3)},
            "maybe": None if i % 6 == 0 else i,
        }
        if i % 10 == 0:
            row["extra"] = f"e{i}"
        rows.append(row)
    try:
        even = [r_ for r_ in rows if r_["id"] % 2 == 0]
        odd = [r_ for r_ in rows if r_["id"] % 2 == 1]
        client.insert(name, even[:300])
        client.insert(name, odd[:250], partition_name="odd")
        client.flush(name)
        client.insert(name, even[300:])
        client.insert(name, odd[250:], partition_name="odd")
        yield name, rows, vecs
    finally:
        client.drop_collection(name)


def _ids(res):
    return sorted(r["id"] for r in res)


def _want(rows, pred):
    return sorted(r["id"] for r in rows if pred(r))


QUERIES = [
    ("age > 50", lambda r: r["age"] > 50),
    ("age >= 30 and age < 40 and active == false", lambda r: 30 <= r["age"] < 40 and not r["active"]),
    ('name like "bob%"', lambda r: r["name"].startswith("bob")),
    # "_" is LIKE's one-character wildcard: "%_1" is "at least 2 characters, ending in 1".
    ('name like "%_1"', lambda r: len(r["name"]) >= 2 and r["name"].endswith("1")),
    ('name like "a%e_1_"', lambda r: re.fullmatch(r"a.*e.1.", r["name"], re.S) is not None),
    ('name in ["alice_0", "carol_2", "nobody"]', lambda r: r["name"] in ("alice_0", "carol_2")),
    ('name not in ["alice_0", "carol_2"] and id < 30', lambda r: r["name"] not in ("alice_0", "carol_2") and r["id"] < 30),
    ('info["city"] == "rome"', lambda r: r["info"]["city"] == "rome"),
    ('info["level"] > 4 or score < 1.5', lambda r: r["info"]["level"] > 4 or r["score"] < 1.5),
    ("maybe is null", lambda r: r["maybe"] is None),
    ("maybe is not null and maybe < 100", lambda r: r["maybe"] is not None and r["maybe"] < 100),
    ('extra == "e100"', lambda r: r.get("extra") == "e100"),
    ("id % 7 == 0", lambda r: r["id"] % 7 == 0),
    ("age * 2 > 150", lambda r: r["age"] * 2 > 150),
    ("not active", lambda r: not r["active"]),
    ("id in [0, 3, 6, 9999]", lambda r: r["id"] in (0, 3, 6)),
    ("array_length(info[\"tags\"]) == 2", lambda r: len(r["info"]["tags"]) == 2),
    ("(age < 20 or age > 85) and (score >= 5)", lambda r: (r["age"] < 20 or r["age"] > 85) and r["score"] >= 5),
    ("id in []", lambda r: False),
    ("id not in [] and age == 40", lambda r: r["age"] == 40),
    ("40 >= age > 30", lambda r: 40 >= r["age"] > 30),
    ("age > 85 && active || id == 0", lambda r: (r["age"] > 85 and r["active"]) or r["id"] == 0),
    ("!(age < 89)", lambda r: not r["age"] < 89),
    ('name > "dave_9"', lambda r: r["name"] > "dave_9"),
    ("score * 2 < 3.0", lambda r: r["score"] * 2 < 3.0),
    ("age - 18 == 0", lambda r: r["age"] == 18),
    ('json_contains(info["tags"], "x") and id < 100', lambda r: "x" in r["info"]["tags"] and r["id"] < 100),
    ('json_contains_any(info["tags"], ["x", "y"])', lambda r: bool(set(r["info"]["tags"]) & {"x", "y"})),
    ('json_contains_all(info["tags"], ["x"])', lambda r: "x" in r["info"]["tags"]),
    ('info["city"] in ["oslo", "lima"] and info["level"] != 0', lambda r: r["info"]["city"] == "oslo" and r["info"]["level"] != 0),
    ('info["nope"] == 1', lambda r: False),
    ("active == true and maybe >= 990", lambda r: r["active"] and r["maybe"] is not None and r["maybe"] >= 990),
]


@pytest.mark.parametrize("expr,pred", QUERIES, ids=[q[0] for q in QUERIES])
def test_query_filter(client, data, expr, pred):
    name, rows, _ = data
    res = client.query(name, filter=expr, output_fields=["id"], consistency_level=STRONG)
    assert _ids(res) == _want(rows, pred), expr
    cnt = client.query(name, filter=expr, output_fields=["count(*)"], consistency_level=STRONG)
    assert cnt == [{"count(*)": len(_want(rows, pred))}] or cnt[0]["count(*)"] == len(_want(rows, pred))


def test_query_output_fields_values(client, data):
    name, rows, vecs = data
    by_id = {r["id"]: r for r in rows}
    res = client.query(name, filter="id < 300", output_fields=["age", "score", "name", "active", "info", "maybe"],
                       consistency_level=STRONG)
    got = rows_by_pk(res)
    assert sorted(got) == _want(rows, lambda r: r["id"] < 300)
    for pk, g in got.items():
        w = by_id[pk]
        assert set(g) == {"id", "age", "score", "name", "active", "info", "maybe"}, set(g)
        for k in ("age", "score", "name", "active", "info", "maybe"):
            assert g[k] == w[k], (pk, k, g[k], w[k])


def test_query_output_star_includes_vector_and_dynamic(client, data):
    name, rows, vecs = data
    res = client.query(name, filter="id in [0, 30, 33]", output_fields=["*"], consistency_level=STRONG)
    got = rows_by_pk(res)
    assert sorted(got) == [0, 30, 33]
    for pk in (0, 30, 33):
        g = dict(got[pk])
        w = dict(rows[pk // 3])
        np.testing.assert_array_equal(np.asarray(g.pop("vec"), dtype=np.float32), vecs[pk // 3])
        w.pop("vec")
        assert g == w, (pk, g, w)


def test_query_default_output_fields(client, data):
    # MilvusClient.query with no output_fields returns the row's fields (Milvus sends "*").
    name, rows, _ = data
    res = client.query(name, filter="id == 3", consistency_level=STRONG)
    assert len(res) == 1
    assert {"id", "age", "score", "name", "active", "info"} <= set(res[0]), set(res[0])
    assert res[0]["name"] == rows[1]["name"]


def test_query_vector_output(client, data):
    name, rows, vecs = data
    res = client.query(name, filter="id in [6, 9]", output_fields=["vec"], consistency_level=STRONG)
    got = rows_by_pk(res)
    for pk in (6, 9):
        np.testing.assert_array_equal(np.asarray(got[pk]["vec"], dtype=np.float32), vecs[pk // 3])


def test_query_by_ids_and_get(client, data):
    name, rows, vecs = data
    ids = [0, 3, 297, 1500, 2997, 5]  # 5 does not exist
    want = [i for i in ids if i % 3 == 0]
    res = client.query(name, ids=ids, output_fields=["name"], consistency_level=STRONG)
    assert _ids(res) == sorted(want)
    for r in res:
        assert r["name"] == rows[r["id"] // 3]["name"]
    got = rows_by_pk(client.get(name, ids=ids, consistency_level=STRONG))
    assert sorted(got) == sorted(want)
    for pk, g in got.items():
        assert g["age"] == rows[pk // 3]["age"]
        np.testing.assert_array_equal(np.asarray(g["vec"], dtype=np.float32), vecs[pk // 3])
    # A single id.
    one = client.get(name, ids=297, output_fields=["score"], consistency_level=STRONG)
    assert len(one) == 1 and one[0]["id"] == 297 and one[0]["score"] == rows[99]["score"]
    assert client.get(name, ids=[1, 2, 4], consistency_level=STRONG) == []


def test_query_partitions(client, data):
    name, rows, _ = data
    res = client.query(name, filter="id < 100", output_fields=["id"], partition_names=["odd"],
                       consistency_level=STRONG)
    assert _ids(res) == _want(rows, lambda r: r["id"] < 100 and r["id"] % 2 == 1)
    cnt = client.query(name, filter="", output_fields=["count(*)"], partition_names=["_default"],
                       consistency_level=STRONG)
    assert cnt[0]["count(*)"] == len(_want(rows, lambda r: r["id"] % 2 == 0))
    got = client.get(name, ids=[3, 6], partition_names=["odd"], consistency_level=STRONG)
    assert _ids(got) == [3]


def test_count_star(client, data):
    name, rows, _ = data
    assert client.query(name, filter="", output_fields=["count(*)"], consistency_level=STRONG) == [{"count(*)": N}]
    assert client.query(name, filter="age >= 60", output_fields=["count(*)"],
                        consistency_level=STRONG)[0]["count(*)"] == len(_want(rows, lambda r: r["age"] >= 60))


@pytest.mark.parametrize("page", [7, 100, 1000])
def test_limit_offset_pagination(client, data, page):
    """Pages of a filtered query partition the full result: right sizes, no duplicates,
    nothing missing (Milvus orders query results by primary key)."""
    name, rows, _ = data
    expr = "age > 25"
    want = _want(rows, lambda r: r["age"] > 25)
    seen = []
    offset = 0
    while offset < len(want) + page:
        res = client.query(name, filter=expr, output_fields=["id"], limit=page, offset=offset,
                           consistency_level=STRONG)
        assert len(res) == min(page, max(0, len(want) - offset)), (offset, len(res))
        seen.extend(r["id"] for r in res)
        offset += page
    assert len(seen) == len(set(seen)), "duplicates across pages"
    assert sorted(seen) == want
    assert seen == sorted(seen), "pages are not in primary-key order"


def test_limit_without_filter(client, data):
    name, rows, _ = data
    res = client.query(name, filter="", limit=10, output_fields=["id", "age"], consistency_level=STRONG)
    assert len(res) == 10
    by_id = {r["id"]: r for r in rows}
    for r in res:
        assert r["age"] == by_id[r["id"]]["age"]
    res = client.query(name, filter="", limit=5, offset=N - 2, output_fields=["id"], consistency_level=STRONG)
    assert len(res) == 2


def test_query_varchar_pk(client, name):
    client.create_collection(name, dimension=4, id_type="string", max_length=16, consistency_level=STRONG)
    keys = [f"key_{i}" for i in range(50)] + ["it's", 'dq"x', "back\\slash", "ünï"]
    vecs = random_vectors(len(keys), 4, seed=9)
    client.insert(name, [{"id": k, "vector": vecs[i].tolist(), "n": i} for i, k in enumerate(keys)])
    plain = ["key_3", "key_49", "missing"]
    got = rows_by_pk(client.get(name, ids=plain, output_fields=["n"], consistency_level=STRONG))
    assert sorted(got) == ["key_3", "key_49"]
    for k, g in got.items():
        assert g["n"] == keys.index(k)
    # Keys with quotes and backslashes go through template values (pymilvus' ids= builds
    # the expression text without escaping them).
    odd = ["it's", 'dq"x', "back\\slash", "ünï", "missing"]
    got = rows_by_pk(client.query(name, filter="id in {keys}", filter_params={"keys": odd},
                                  output_fields=["n"], consistency_level=STRONG))
    assert sorted(got) == sorted(odd[:4])
    for k, g in got.items():
        assert g["n"] == keys.index(k)
    res = client.query(name, filter='id == "back\\\\slash" or id == \'it\\\'s\'', output_fields=["n"],
                       consistency_level=STRONG)
    assert sorted(r["id"] for r in res) == sorted(["back\\slash", "it's"])
    res = client.query(name, filter='id like "key_1%"', output_fields=["n"], consistency_level=STRONG)
    assert sorted(r["id"] for r in res) == sorted(k for k in keys if k.startswith("key") and k[4:5] == "1")
    client.delete(name, filter="id in {keys}", filter_params={"keys": ["it's", "ünï"]})
    assert client.query(name, filter="", output_fields=["count(*)"], consistency_level=STRONG)[0]["count(*)"] == len(keys) - 2


# ---------------------------------------------------------------------------- iterators


def test_query_iterator_returns_every_row_once(client, data):
    name, rows, _ = data
    want = _want(rows, lambda r: r["age"] % 3 != 0)
    it = client.query_iterator(name, batch_size=64, filter="age % 3 != 0", output_fields=["age"])
    seen = []
    try:
        while True:
            batch = it.next()
            if not batch:
                break
            assert len(batch) <= 64
            seen.extend(r["id"] for r in batch)
    finally:
        it.close()
    assert len(seen) == len(set(seen))
    assert sorted(seen) == want


def test_query_iterator_first_page_carries_session_ts(client, data):
    """pymilvus' QueryIterator pins its snapshot to the MVCC timestamp the server returns in
    QueryResults.session_ts for the first page (query_params iterator=True, guarantee_ts 0);
    Milvus sets it in queryTask.PostExecute (`t.result.SessionTs = getMaxMvccTsFromChannels(...)`
    when `t.queryParams.isIterator && GuaranteeTimestamp == 0`). pymilvus reads it as
    res.extra["iterator_session_ts"] (grpc_handler.query) and otherwise logs "failed to get
    mvccTs from milvus server, use client-side ts instead"."""
    import time as _time

    name, rows, _ = data
    res = client.query(name, filter="id >= 0", limit=1, output_fields=["id"], iterator="True",
                       consistency_level=STRONG)
    assert len(res) == 1
    ts = res.extra.get("iterator_session_ts", 0)
    assert ts > 0, f"QueryResults.session_ts not set for an iterator query (extra={res.extra})"
    physical_ms = ts >> 18
    assert abs(physical_ms - _time.time() * 1000) < 120_000, f"session_ts {ts} is not a recent hybrid timestamp"


def test_query_iterator_reads_one_snapshot(client, name):
    """Rows written and deleted while an iterator runs do not change what it returns: every
    page reads at the snapshot of the first (Milvus pins the MVCC timestamp of an iterator's
    later pages to the guarantee_timestamp pymilvus sends back)."""
    client.create_collection(name, dimension=4, consistency_level=STRONG)
    client.insert(name, [{"id": i, "vector": [float(i), 0.0, 0.0, 1.0]} for i in range(300)])
    it = client.query_iterator(name, batch_size=50, filter="id >= 0", output_fields=["id"])
    seen = []
    try:
        seen.extend(r["id"] for r in it.next())
        # Later writes: new keys after every key seen so far, and deletes of unseen ones.
        client.insert(name, [{"id": 1000 + i, "vector": [0.0, 1.0, 0.0, 1.0]} for i in range(100)])
        client.delete(name, ids=list(range(250, 300)))
        while True:
            batch = it.next()
            if not batch:
                break
            seen.extend(r["id"] for r in batch)
    finally:
        it.close()
    assert sorted(seen) == list(range(300)), f"{len(seen)} rows; extra {sorted(set(seen) - set(range(300)))[:5]}"
    # A fresh read sees the writes.
    assert client.query(name, filter="", output_fields=["count(*)"], consistency_level=STRONG)[0]["count(*)"] == 350
