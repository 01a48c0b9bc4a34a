"""insert / upsert / delete with Int64 and VarChar primary keys, auto_id, every scalar type,
nullable fields and defaults, JSON and the dynamic field. Every read-back is compared with
what was written, and searches with the numpy reference."""

import json

import numpy as np
import pytest
from pymilvus import DataType, MilvusException

from helpers import check_search, random_vectors, rows_by_pk

STRONG = "Strong"
DIM = 8


def f32(x: float) -> float:
    """The value a Float (float32) field gives back for x."""
    return float(np.float32(x))


def _count(client, name, filter=""):
    return client.query(name, filter=filter, output_fields=["count(*)"], consistency_level=STRONG)[0]["count(*)"]


def _all_types_schema(client, pk_type=DataType.INT64, auto_id=False, dynamic=False):
    schema = client.create_schema(auto_id=auto_id, enable_dynamic_field=dynamic)
    if pk_type == DataType.INT64:
        schema.add_field("id", DataType.INT64, is_primary=True)
    else:
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("b", DataType.BOOL)
    schema.add_field("i8", DataType.INT8)
    schema.add_field("i16", DataType.INT16)
    schema.add_field("i32", DataType.INT32)
    schema.add_field("i64", DataType.INT64)
    schema.add_field("f", DataType.FLOAT)
    schema.add_field("d", DataType.DOUBLE)
    schema.add_field("s", DataType.VARCHAR, max_length=128)
    schema.add_field("j", DataType.JSON)
    return schema


def _create(client, name, schema, metric="L2"):
    ip = client.prepare_index_params()
    ip.add_index(field_name="vec", index_type="FLAT", metric_type=metric)
    client.create_collection(name, schema=schema, index_params=ip, consistency_level=STRONG)


def _typed_rows(pks, vecs, seed=0):
    r = np.random.default_rng(seed)
    rows = []
    for k, pk in enumerate(pks):
        rows.append({
            "id": pk,
            "vec": vecs[k].tolist(),
            "b": bool(k % 3 == 0),
            "i8": int(r.integers(-128, 128)),
            "i16": int(r.integers(-32768, 32768)),
            "i32": int(r.integers(-2**31, 2**31)),
            "i64": int(r.integers(-2**62, 2**62)) * 2 + (k % 2),
            "f": float(r.normal()),
            "d": float(r.normal()) * 1e6,
            "s": f"str-{k}-" + "é中" * (k % 4),
            "j": {"k": k, "name": f"n{k}", "tags": ["a", "b"][: k % 3], "nested": {"x": k * 0.5, "ok": k % 2 == 0}},
        })
    return rows


def _assert_row_equal(got, want, where=""):
    for key, w in want.items():
        assert key in got, f"{where}: field {key} missing from {sorted(got)}"
        g = got[key]
        if key == "vec":
            np.testing.assert_allclose(np.asarray(g, dtype=np.float32), np.asarray(w, dtype=np.float32),
                                       rtol=0, atol=0, err_msg=f"{where}: vec")
        elif key == "f":
            assert g == pytest.approx(f32(w), rel=1e-7, abs=1e-30), f"{where}: f {g} != {f32(w)}"
        elif key == "j":
            assert g == w, f"{where}: json {g!r} != {w!r}"
        else:
            assert g == w, f"{where}: {key} {g!r} != {w!r}"
            assert type(g) is type(w), f"{where}: {key} type {type(g)} != {type(w)}"


# ---------------------------------------------------------------------------- insert


@pytest.mark.parametrize("pk_type", [DataType.INT64, DataType.VARCHAR], ids=["int64_pk", "varchar_pk"])
def test_insert_every_scalar_type_round_trips(client, name, pk_type):
    _create(client, name, _all_types_schema(client, pk_type))
    n = 200
    pks = list(range(10, 10 + n)) if pk_type == DataType.INT64 else [f"key-{i:04d}" for i in range(n)]
    vecs = random_vectors(n, DIM, seed=31)
    rows = _typed_rows(pks, vecs, seed=32)
    res = client.insert(name, rows[:150])
    assert res["insert_count"] == 150
    assert list(res["ids"]) == pks[:150]
    res = client.insert(name, rows[150:])
    assert res["insert_count"] == 50 and list(res["ids"]) == pks[150:]

    got = rows_by_pk(client.query(name, filter="", limit=1000, output_fields=["*"], consistency_level=STRONG))
    assert sorted(got) == sorted(pks)
    for row in rows:
        _assert_row_equal(got[row["id"]], row, where=f"pk {row['id']!r}")

    # get() by ids, explicit output fields.
    some = pks[3:9]
    got = rows_by_pk(client.get(name, ids=some, output_fields=["i32", "s", "j"], consistency_level=STRONG))
    assert sorted(got) == sorted(some)
    for row in rows[3:9]:
        assert set(got[row["id"]]) == {"id", "i32", "s", "j"}
        _assert_row_equal(got[row["id"]], {k: row[k] for k in ("i32", "s", "j")})

    # Filters over each type select exactly the right rows.
    def ids_where(pred):
        return sorted(r["id"] for r in rows if pred(r))

    checks = [
        ("b == true", lambda r: r["b"]),
        ("i8 < 0", lambda r: r["i8"] < 0),
        ("i16 >= 100 and i16 <= 20000", lambda r: 100 <= r["i16"] <= 20000),
        ("i32 > 0", lambda r: r["i32"] > 0),
        # Milvus' % truncates toward zero (C++ semantics): negative odd numbers give -1.
        ("i64 % 2 == -1", lambda r: r["i64"] < 0 and r["i64"] % 2 == 1),
        ("i64 % 2 != 0", lambda r: r["i64"] % 2 == 1),
        ("f > 0.5", lambda r: f32(r["f"]) > 0.5),
        ("d < 0", lambda r: r["d"] < 0),
        ('s like "str-1%"', lambda r: r["s"].startswith("str-1")),
        ('j["nested"]["ok"] == true', lambda r: r["j"]["nested"]["ok"]),
        ('j["k"] in [3, 5, 7, 1000]', lambda r: r["j"]["k"] in (3, 5, 7)),
    ]
    for expr, pred in checks:
        got = client.query(name, filter=expr, output_fields=["id"], consistency_level=STRONG)
        assert sorted(r["id"] for r in got) == ids_where(pred), expr

    # Search returns the same rows with the same field values.
    q = random_vectors(2, DIM, seed=33)
    res = client.search(name, q.tolist(), limit=5, output_fields=["i64", "s", "j", "f"], consistency_level=STRONG)
    check_search(res, vecs, pks, q, "L2", 5)
    by_pk = {r["id"]: r for r in rows}
    for hits in res:
        for h in hits:
            _assert_row_equal(h["entity"], {k: by_pk[h.id][k] for k in ("i64", "s", "j", "f")}, where="search")


def test_insert_auto_id_int64(client, name):
    _create(client, name, _all_types_schema(client, DataType.INT64, auto_id=True))
    vecs = random_vectors(100, DIM, seed=34)
    rows = _typed_rows([None] * 100, vecs, seed=35)
    for r in rows:
        del r["id"]
    res1 = client.insert(name, rows[:60])
    res2 = client.insert(name, rows[60:])
    ids = list(res1["ids"]) + list(res2["ids"])
    assert res1["insert_count"] == 60 and res2["insert_count"] == 40
    assert len(set(ids)) == 100 and all(isinstance(i, int) for i in ids)
    got = rows_by_pk(client.query(name, filter="", limit=200, output_fields=["*"], consistency_level=STRONG))
    assert sorted(got) == sorted(ids)
    for pk, row in zip(ids, rows):
        _assert_row_equal(got[pk], row, where=f"auto id {pk}")
    q = random_vectors(3, DIM, seed=36)
    check_search(client.search(name, q.tolist(), limit=10), vecs, ids, q, "L2", 10)


def test_insert_auto_id_varchar(client, name):
    schema = client.create_schema(auto_id=True, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("x", DataType.INT64)
    _create(client, name, schema, metric="IP")
    vecs = random_vectors(50, DIM, seed=37)
    res = client.insert(name, [{"vec": vecs[i].tolist(), "x": i} for i in range(50)])
    ids = list(res["ids"])
    assert len(ids) == 50 and len(set(ids)) == 50 and all(isinstance(i, str) and i for i in ids)
    got = client.query(name, filter="x >= 45", output_fields=["id", "x"], consistency_level=STRONG)
    assert sorted((r["x"], r["id"]) for r in got) == [(i, ids[i]) for i in range(45, 50)]
    q = random_vectors(1, DIM, seed=38)
    check_search(client.search(name, q.tolist(), limit=7, consistency_level=STRONG), vecs, ids, q, "IP", 7)


# ---------------------------------------------------------------------------- upsert


@pytest.mark.parametrize("pk_type", [DataType.INT64, DataType.VARCHAR], ids=["int64_pk", "varchar_pk"])
def test_upsert_replaces_and_inserts(client, name, pk_type):
    _create(client, name, _all_types_schema(client, pk_type))
    n = 100
    pks = list(range(n)) if pk_type == DataType.INT64 else [f"u{i}" for i in range(n)]
    vecs = random_vectors(n, DIM, seed=41)
    rows = _typed_rows(pks, vecs, seed=42)
    client.insert(name, rows)
    client.flush(name)  # the replaced rows live in a sealed segment

    # Replace rows 0..29 (new vectors and values) and add 20 new ones.
    new_pks = pks[:30] + (list(range(n, n + 20)) if pk_type == DataType.INT64 else [f"u{i}" for i in range(n, n + 20)])
    new_vecs = random_vectors(50, DIM, seed=43)
    new_rows = _typed_rows(new_pks, new_vecs, seed=44)
    for r in new_rows:
        r["s"] = "upserted"
    res = client.upsert(name, new_rows)
    assert res["upsert_count"] == 50
    if "ids" in res:
        assert list(res["ids"]) == new_pks

    assert _count(client, name) == n + 20
    want = {r["id"]: r for r in rows}
    want.update({r["id"]: r for r in new_rows})
    got = rows_by_pk(client.query(name, filter="", limit=1000, output_fields=["*"], consistency_level=STRONG))
    assert sorted(got) == sorted(want)
    for pk, row in want.items():
        _assert_row_equal(got[pk], row, where=f"after upsert pk {pk!r}")
    assert _count(client, name, 's == "upserted"') == 50

    # Search sees only the latest version of each row (no stale duplicates).
    all_pks = list(want)
    all_vecs = np.array([want[p]["vec"] for p in all_pks], dtype=np.float32)
    q = np.vstack([new_vecs[:2], vecs[:2], random_vectors(2, DIM, seed=45)])
    res = client.search(name, q.tolist(), limit=15, consistency_level=STRONG)
    check_search(res, all_vecs, all_pks, q, "L2", 15, where="after upsert")

    # Upserting the same rows twice in a row is stable too.
    client.upsert(name, new_rows[:5])
    assert _count(client, name) == n + 20


def test_upsert_duplicate_pks_in_one_batch_is_refused(client, name):
    """Milvus 2.6 refuses an upsert whose batch repeats a primary key: upsertTask.PreExecute
    calls CheckDuplicatePkExist and answers code 1100 "duplicate primary keys are not allowed
    in the same batch" (internal/proxy/task_upsert.go; Milvus' own suite:
    test_milvus_client_upsert.py::test_milvus_client_upsert_duplicate_pk_int64)."""
    client.create_collection(name, dimension=4, consistency_level=STRONG)
    client.insert(name, [{"id": 1, "vector": [0.1] * 4, "v": "old"}])
    with pytest.raises(MilvusException) as ei:
        client.upsert(name, [{"id": 1, "vector": [0.2] * 4, "v": "a"}, {"id": 2, "vector": [0.3] * 4, "v": "b"},
                             {"id": 1, "vector": [0.4] * 4, "v": "c"}])
    assert ei.value.code == 1100, ei.value
    assert "duplicate primary keys are not allowed in the same batch" in ei.value.message, ei.value
    # Nothing was written.
    rows = client.query(name, filter="", limit=10, output_fields=["v"], consistency_level=STRONG)
    assert [dict(r) for r in rows] == [{"id": 1, "v": "old"}]


# ---------------------------------------------------------------------------- delete


@pytest.mark.parametrize("pk_type", [DataType.INT64, DataType.VARCHAR], ids=["int64_pk", "varchar_pk"])
def test_delete_by_ids_and_filter(client, name, pk_type):
    _create(client, name, _all_types_schema(client, pk_type), metric="COSINE")
    n = 300
    pks = list(range(1000, 1000 + n)) if pk_type == DataType.INT64 else [f"d-{i}" for i in range(n)]
    vecs = random_vectors(n, DIM, seed=51)
    rows = _typed_rows(pks, vecs, seed=52)
    client.insert(name, rows[:200])
    client.flush(name)
    client.insert(name, rows[200:])  # growing segment

    alive = np.ones(n, dtype=bool)
    # By ids, across the sealed and the growing segment, plus an id that does not exist.
    del_idx = [0, 5, 199, 200, 250, 299]
    missing = 10**9 if pk_type == DataType.INT64 else "no-such-key"
    res = client.delete(name, ids=[pks[i] for i in del_idx] + [missing])
    assert isinstance(res, dict) and "delete_count" in res, res
    alive[del_idx] = False
    assert _count(client, name) == alive.sum()
    assert client.get(name, ids=[pks[i] for i in del_idx], consistency_level=STRONG) == []

    # A single id (not a list).
    res = client.delete(name, ids=pks[7])
    alive[7] = False
    assert _count(client, name) == alive.sum()

    # By filter on a scalar field.
    pred = np.array([r["i32"] > 10**9 for r in rows])
    expected_deleted = int((pred & alive).sum())
    res = client.delete(name, filter="i32 > 1000000000")
    assert res["delete_count"] == expected_deleted, (res, expected_deleted)
    alive &= ~pred
    assert _count(client, name) == alive.sum()

    # By filter on JSON.
    pred = np.array([r["j"]["k"] % 10 == 3 for r in rows])
    client.delete(name, filter='j["k"] % 10 == 3')
    alive &= ~pred
    assert _count(client, name) == alive.sum()

    got = sorted(r["id"] for r in client.query(name, filter="", limit=1000, output_fields=["id"], consistency_level=STRONG))
    assert got == sorted(p for p, a in zip(pks, alive) if a)

    q = random_vectors(4, DIM, seed=53)
    res = client.search(name, q.tolist(), limit=20, consistency_level=STRONG)
    check_search(res, vecs, pks, q, "COSINE", 20, mask=alive, where="after deletes")

    # Deleted rows stay deleted after a flush and a reload.
    client.flush(name)
    client.release_collection(name)
    client.load_collection(name)
    assert _count(client, name) == alive.sum()
    res = client.search(name, q.tolist(), limit=20, consistency_level=STRONG)
    check_search(res, vecs, pks, q, "COSINE", 20, mask=alive, where="after reload")

    # A deleted pk can be inserted again.
    client.insert(name, [rows[0]])
    alive[0] = True
    assert _count(client, name) == alive.sum()
    _assert_row_equal(client.get(name, ids=[pks[0]], consistency_level=STRONG)[0], rows[0])


def test_delete_in_partition(client, name):
    _create(client, name, _all_types_schema(client))
    client.create_partition(name, "p1")
    vecs = random_vectors(40, DIM, seed=54)
    rows = _typed_rows(list(range(40)), vecs, seed=55)
    client.insert(name, rows[:20])
    client.insert(name, rows[20:], partition_name="p1")
    client.delete(name, filter="id >= 0", partition_name="p1")
    got = sorted(r["id"] for r in client.query(name, filter="", limit=100, output_fields=["id"], consistency_level=STRONG))
    assert got == list(range(20))


# ---------------------------------------------------------------------------- nullable & defaults


def test_nullable_and_default_values(client, name):
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("n_i32", DataType.INT32, nullable=True)
    schema.add_field("n_s", DataType.VARCHAR, max_length=32, nullable=True)
    schema.add_field("n_d", DataType.DOUBLE, nullable=True)
    schema.add_field("n_b", DataType.BOOL, nullable=True)
    schema.add_field("n_j", DataType.JSON, nullable=True)
    schema.add_field("def_i64", DataType.INT64, default_value=-7)
    schema.add_field("def_s", DataType.VARCHAR, max_length=32, default_value="dflt")
    schema.add_field("def_f", DataType.FLOAT, default_value=1.5)
    # pymilvus sends a Python int default as Int64 (long_data), which Milvus rejects for an
    # Int16 field; a numpy int16 travels as int_data.
    schema.add_field("both", DataType.INT16, nullable=True, default_value=np.int16(3))
    _create(client, name, schema)

    vecs = random_vectors(60, DIM, seed=61)
    rows, want = [], []
    for i in range(60):
        row = {"id": i, "vec": vecs[i].tolist()}
        exp = {"id": i}
        if i % 3 == 0:  # explicit values everywhere
            row.update(n_i32=i, n_s=f"s{i}", n_d=i / 4, n_b=i % 2 == 0, n_j={"i": i},
                       def_i64=i * 10, def_s=f"v{i}", def_f=0.25, both=i)
            exp.update(row)
            del exp["vec"]
        elif i % 3 == 1:  # explicit None
            row.update(n_i32=None, n_s=None, n_d=None, n_b=None, n_j=None, def_i64=None, def_s=None,
                       def_f=None, both=None)
            exp.update(n_i32=None, n_s=None, n_d=None, n_b=None, n_j=None, def_i64=-7, def_s="dflt",
                       def_f=1.5, both=3)
        else:  # keys left out
            exp.update(n_i32=None, n_s=None, n_d=None, n_b=None, n_j=None, def_i64=-7, def_s="dflt",
                       def_f=1.5, both=3)
        rows.append(row)
        want.append(exp)
    assert client.insert(name, rows)["insert_count"] == 60

    fields = ["n_i32", "n_s", "n_d", "n_b", "n_j", "def_i64", "def_s", "def_f", "both"]
    got = rows_by_pk(client.query(name, filter="", limit=100, output_fields=fields, consistency_level=STRONG))
    for exp in want:
        g = got[exp["id"]]
        for k in fields:
            assert g[k] == exp[k], f"id {exp['id']} field {k}: got {g[k]!r}, expected {exp[k]!r}"

    null_ids = [e["id"] for e in want if e["n_i32"] is None]
    assert sorted(r["id"] for r in client.query(name, filter="n_i32 is null", output_fields=["id"],
                                                  consistency_level=STRONG)) == null_ids
    assert sorted(r["id"] for r in client.query(name, filter="n_s is not null", output_fields=["id"],
                                                  consistency_level=STRONG)) == [i for i in range(60) if i % 3 == 0]
    assert _count(client, name, 'def_s == "dflt"') == 40
    assert _count(client, name, "both == 3") == 41  # 40 defaulted rows + row 3 (explicit 3)

    # Nullable fields come back through search too.
    q = random_vectors(2, DIM, seed=62)
    res = client.search(name, q.tolist(), limit=10, output_fields=fields, consistency_level=STRONG)
    check_search(res, vecs, list(range(60)), q, "L2", 10)
    for hits in res:
        for h in hits:
            for k in fields:
                assert h["entity"][k] == want[h.id][k], (h.id, k)


# ---------------------------------------------------------------------------- JSON & dynamic field


def test_json_field_values(client, name):
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("meta", DataType.JSON)
    _create(client, name, schema)
    docs = [
        {"a": 1, "b": "x", "c": [1, 2, 3]},
        {"a": 2.5, "b": None, "c": []},
        {"nested": {"deep": {"deeper": [1, {"z": "y"}]}}},
        {},
        {"unicode": "héllo 世界", "esc": "quote\" backslash\\ nl\n"},
        [1, 2, 3],
        42,
        {"big": 2**53 + 1, "neg": -(2**40), "f": 1e-300, "t": True},
    ]
    vecs = random_vectors(len(docs), DIM, seed=63)
    client.insert(name, [{"id": i, "vec": vecs[i].tolist(), "meta": d} for i, d in enumerate(docs)])
    got = rows_by_pk(client.query(name, filter="", limit=100, output_fields=["meta"], consistency_level=STRONG))
    for i, d in enumerate(docs):
        assert got[i]["meta"] == d, f"id {i}: {got[i]['meta']!r} != {d!r}"
    assert sorted(r["id"] for r in client.query(name, filter='meta["a"] >= 1', output_fields=["id"],
                                                  consistency_level=STRONG)) == [0, 1]
    assert [r["id"] for r in client.query(name, filter='meta["nested"]["deep"]["deeper"][1]["z"] == "y"',
                                          output_fields=["id"], consistency_level=STRONG)] == [2]
    assert [r["id"] for r in client.query(name, filter='json_contains(meta["c"], 2)', output_fields=["id"],
                                          consistency_level=STRONG)] == [0]


def test_dynamic_field_keys(client, name):
    client.create_collection(name, dimension=DIM, metric_type="L2", consistency_level=STRONG)
    vecs = random_vectors(120, DIM, seed=64)
    rows = []
    for i in range(120):
        row = {"id": i, "vector": vecs[i].tolist(), "color": ["red", "green", "blue"][i % 3], "rank": i}
        if i % 2 == 0:
            row["even_only"] = {"half": i // 2, "list": [i, "x"]}
        if i % 5 == 0:
            row["score"] = i * 1.5
        rows.append(row)
    assert client.insert(name, rows)["insert_count"] == 120

    # Named dynamic keys.
    got = rows_by_pk(client.query(name, filter="rank < 10", output_fields=["color", "rank", "even_only"],
                                  consistency_level=STRONG))
    assert sorted(got) == list(range(10))
    for i in range(10):
        g = got[i]
        assert g["color"] == rows[i]["color"] and g["rank"] == i
        if i % 2 == 0:
            assert g["even_only"] == rows[i]["even_only"]
        else:
            assert "even_only" not in g or g["even_only"] is None

    # "*" returns every key that each row has.
    got = rows_by_pk(client.query(name, filter="id in [0, 1, 5, 10]", output_fields=["*"], consistency_level=STRONG))
    for i in (0, 1, 5, 10):
        g = dict(got[i])
        np.testing.assert_allclose(g.pop("vector"), rows[i]["vector"], rtol=0, atol=0)
        want = {k: v for k, v in rows[i].items() if k != "vector"}
        assert g == want, f"id {i}: {g} != {want}"

    # Filters on dynamic keys, including keys only some rows have.
    assert sorted(r["id"] for r in client.query(name, filter='color == "green" and rank >= 100',
                                                  output_fields=["id"], consistency_level=STRONG)) == \
        [i for i in range(100, 120) if i % 3 == 1]
    assert _count(client, name, "score > 100") == len([i for i in range(0, 120, 5) if i * 1.5 > 100])
    assert _count(client, name, 'even_only["half"] >= 50') == len([i for i in range(0, 120, 2) if i // 2 >= 50])
    assert _count(client, name, "$meta[\"rank\"] < 3") == 3

    # Search output of dynamic keys, and a filter on them.
    q = random_vectors(2, DIM, seed=65)
    mask = np.array([r["color"] == "red" for r in rows])
    res = client.search(name, q.tolist(), limit=8, filter='color == "red"', output_fields=["color", "score"])
    check_search(res, vecs, list(range(120)), q, "L2", 8, mask=mask)
    for hits in res:
        for h in hits:
            assert h["entity"]["color"] == "red"
            if h.id % 5 == 0:
                assert h["entity"]["score"] == rows[h.id]["score"]
    res = client.search(name, q.tolist(), limit=4, output_fields=["*"])
    check_search(res, vecs, list(range(120)), q, "L2", 4)
    for hits in res:
        for h in hits:
            e = dict(h["entity"])
            np.testing.assert_array_equal(np.asarray(e.pop("vector"), dtype=np.float32), vecs[h.id])
            want = {k: v for k, v in rows[h.id].items() if k != "vector"}
            assert {k: v for k, v in e.items() if k != "id"} == {k: v for k, v in want.items() if k != "id"}, (h.id, e)
    # A key that no row has matches nothing (no error).
    res = client.search(name, q.tolist(), limit=8, filter="no_such_key == 1")
    assert [len(h) for h in res] == [0, 0]
    assert _count(client, name, 'no_such_key == "x" or rank == 5') == 1
    # Upsert changes dynamic keys too (the new row's keys replace the old ones).
    client.upsert(name, [{"id": 3, "vector": vecs[3].tolist(), "color": "black"}])
    g = client.get(name, ids=[3], output_fields=["*"], consistency_level=STRONG)[0]
    assert g["color"] == "black" and "rank" not in g


def test_insert_columnar_data_is_json_text(client, name):
    # The dynamic column travels as JSON text per row; values must not be re-typed.
    client.create_collection(name, dimension=4, consistency_level=STRONG)
    client.insert(name, [{"id": 1, "vector": [0.1, 0.2, 0.3, 0.4], "big": 2**62, "txt": json.dumps({"a": 1})}])
    g = client.get(name, ids=[1], output_fields=["big", "txt"], consistency_level=STRONG)[0]
    assert g["big"] == 2**62 and isinstance(g["big"], int)
    assert g["txt"] == json.dumps({"a": 1})


# ---------------------------------------------------------------------------- size & concurrency


def test_large_insert_and_large_results(client, name):
    """~10 MB in one Insert and ~5 MB Query answers (past gRPC's 4 MiB default limit)."""
    dim, n = 128, 20000
    client.create_collection(name, dimension=dim, metric_type="L2", consistency_level=STRONG)
    vecs = random_vectors(n, dim, seed=81)
    res = client.insert(name, [{"id": i, "vector": vecs[i].tolist()} for i in range(n)])
    assert res["insert_count"] == n
    assert _count(client, name) == n
    # Two ~5 MB answers (a query window is at most 16384 rows, as in Milvus).
    got = []
    for expr in ("id < 10000", "id >= 10000"):
        got += client.query(name, filter=expr, limit=10000, output_fields=["vector"], consistency_level=STRONG)
    assert len(got) == n
    got_vecs = np.array([r["vector"] for r in sorted(got, key=lambda r: r["id"])], dtype=np.float32)
    np.testing.assert_array_equal(got_vecs, vecs)
    q = random_vectors(5, dim, seed=82)
    check_search(client.search(name, q.tolist(), limit=10), vecs, list(range(n)), q, "L2", 10)


def test_concurrent_writers_and_readers(uri, name):
    """Four clients insert disjoint id ranges while others search and query; at the end
    every row is there exactly once and searches match the reference."""
    from concurrent.futures import ThreadPoolExecutor

    from pymilvus import MilvusClient

    setup = MilvusClient(uri=uri)
    setup.create_collection(name, dimension=DIM, metric_type="IP", consistency_level=STRONG)
    vecs = random_vectors(4000, DIM, seed=83)

    def writer(w):
        c = MilvusClient(uri=uri)
        for b in range(10):
            lo = w * 1000 + b * 100
            c.insert(name, [{"id": i, "vector": vecs[i].tolist(), "w": w} for i in range(lo, lo + 100)])
        return True

    def reader(r):
        c = MilvusClient(uri=uri)
        for _ in range(15):
            res = c.search(name, [vecs[r].tolist()], limit=5, consistency_level=STRONG)
            assert len(res) == 1 and len(res[0]) <= 5
            cnt = c.query(name, filter="", output_fields=["count(*)"], consistency_level=STRONG)[0]["count(*)"]
            assert 0 <= cnt <= 4000
        return True

    with ThreadPoolExecutor(max_workers=6) as ex:
        futs = [ex.submit(writer, w) for w in range(4)] + [ex.submit(reader, r) for r in range(2)]
        assert all(f.result(timeout=100) for f in futs)

    assert _count(setup, name) == 4000
    ids = sorted(r["id"] for r in setup.query(name, filter="id >= 0", limit=5000, output_fields=["id"],
                                              consistency_level=STRONG))
    assert ids == list(range(4000))
    q = random_vectors(8, DIM, seed=84)
    check_search(setup.search(name, q.tolist(), limit=10, consistency_level=STRONG),
                 vecs, list(range(4000)), q, "IP", 10)
