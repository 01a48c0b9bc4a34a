"""Errors come back as pymilvus.MilvusException with Milvus' code and a helpful message,
and the server keeps serving afterwards. Message substrings are Milvus' own texts
(pkg/util/merr, proxy, rootcoord, planparserv2) where Milvus has a well-known one."""

import pytest
from pymilvus import DataType, MilvusException
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from conftest import unique_name
from helpers import check_search, random_vectors

STRONG = "Strong"
DIM = 8
N = 100


@pytest.fixture(scope="module")
def coll(client):
    """A loaded, non-dynamic collection with 100 rows: id, vec (L2), age Int32, tag VarChar.
    Shared by the module: every test leaves it loaded with the same 100 rows."""
    name = unique_name("e2e_errors")
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("age", DataType.INT32)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    ip = client.prepare_index_params()
    ip.add_index(field_name="vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=ip, consistency_level=STRONG)
    vecs = random_vectors(N, DIM, seed=71)
    client.insert(name, [{"id": i, "vec": vecs[i].tolist(), "age": i % 50, "tag": f"t{i % 5}"} for i in range(N)])
    yield name, vecs
    client.drop_collection(name)


def _still_serving(client, name, vecs):
    q = random_vectors(2, DIM, seed=72)
    res = client.search(name, q.tolist(), limit=5, consistency_level=STRONG)
    check_search(res, vecs, list(range(len(vecs))), q, "L2", 5, where="after an error")
    assert client.query(name, filter="", output_fields=["count(*)"], consistency_level=STRONG)[0]["count(*)"] == len(vecs)


def _raises(fn, code=None, contains=()):
    with pytest.raises(MilvusException) as ei:
        fn()
    e = ei.value
    assert e.code != 0, e
    if code is not None:
        assert e.code == code, f"expected code {code}, got {e.code}: {e.message}"
    for s in (contains if isinstance(contains, (list, tuple)) else [contains]):
        assert s in e.message, f"expected {s!r} in message {e.message!r}"
    return e


# ---------------------------------------------------------------------------- unknown collection


@pytest.mark.parametrize("op", [
    "describe_collection", "search", "query", "get", "insert", "upsert", "delete", "load_collection",
    "release_collection", "get_collection_stats", "create_partition", "list_partitions", "flush",
    "create_index", "rename_collection",
])
def test_unknown_collection(client, coll, op):
    missing = unique_name("e2e_missing")
    v = [0.1] * DIM
    calls = {
        "describe_collection": lambda: client.describe_collection(missing),
        "search": lambda: client.search(missing, [v], limit=3),
        "query": lambda: client.query(missing, filter="id > 0"),
        "get": lambda: client.get(missing, ids=[1]),
        "insert": lambda: client.insert(missing, [{"id": 1, "vec": v}]),
        "upsert": lambda: client.upsert(missing, [{"id": 1, "vec": v}]),
        "delete": lambda: client.delete(missing, filter="id > 0"),
        "load_collection": lambda: client.load_collection(missing),
        "release_collection": lambda: client.release_collection(missing),
        "get_collection_stats": lambda: client.get_collection_stats(missing),
        "create_partition": lambda: client.create_partition(missing, "p"),
        "list_partitions": lambda: client.list_partitions(missing),
        "flush": lambda: client.flush(missing),
        "create_index": lambda: client.create_index(missing, _flat_l2(client)),
        "rename_collection": lambda: client.rename_collection(missing, unique_name("e2e_x")),
    }
    # Milvus: merr.WrapErrCollectionNotFound -> code 100,
    # "collection not found[database=default][collection=<name>]".
    _raises(calls[op], code=100, contains=["collection not found", missing])
    assert not client.has_collection(missing)
    _still_serving(client, *coll)


def _flat_l2(client):
    ip = client.prepare_index_params()
    ip.add_index(field_name="vec", index_type="FLAT", metric_type="L2")
    return ip


def test_unknown_partition(client, coll):
    name, vecs = coll
    # Milvus: merr.WrapErrPartitionNotFound -> code 200, "partition not found[partition=p]".
    _raises(lambda: client.search(name, [vecs[0].tolist()], limit=3, partition_names=["nope"]),
            code=200, contains="partition not found")
    _raises(lambda: client.query(name, filter="id > 0", partition_names=["nope"]), code=200,
            contains="partition not found")
    _raises(lambda: client.insert(name, [{"id": 1000, "vec": vecs[0].tolist(), "age": 1, "tag": "x"}],
                                  partition_name="nope"), code=200, contains="partition not found")
    assert not client.has_partition(name, "nope")
    _still_serving(client, *coll)


# ---------------------------------------------------------------------------- dimension


def test_insert_wrong_dimension(client, coll):
    name, vecs = coll
    # Milvus proxy (validateUtil.checkFloatVectorFieldData / checkAligned):
    # "the dim (7) of field data(vec) is not equal to schema dim (8)"
    e = _raises(lambda: client.insert(name, [{"id": 5000, "vec": [0.5] * (DIM - 1), "age": 1, "tag": "x"}]),
                contains="dim")
    assert str(DIM) in e.message and str(DIM - 1) in e.message, e.message
    _still_serving(client, *coll)


def test_search_wrong_dimension(client, coll):
    name, vecs = coll
    # Milvus answers "vector dimension mismatch, expected vector size(byte) 32, actual 28";
    # any message naming the dimensions helps the user.
    e = _raises(lambda: client.search(name, [[0.5] * (DIM + 3)], limit=3, consistency_level=STRONG))
    assert "dim" in e.message.lower(), e.message
    _still_serving(client, *coll)


def test_create_collection_invalid_dimension(client, names):
    for dim in (0, 1, 32769):
        n = names()
        _raises(lambda: client.create_collection(n, dimension=dim), contains="dim")
        assert not client.has_collection(n)


# ---------------------------------------------------------------------------- filter expressions


@pytest.mark.parametrize("expr", [
    "age >>> 3",
    "id in [1,",
    "age == ",
    "(age > 3",
    "tag like 5",
    "age > 3 and",
    "\"unterminated",
])
def test_bad_filter_expression(client, coll, expr):
    name, vecs = coll
    # Milvus planparserv2: code 1100, "cannot parse expression: <expr>, error: ...".
    _raises(lambda: client.query(name, filter=expr, consistency_level=STRONG), code=1100,
            contains="cannot parse expression")
    _raises(lambda: client.search(name, [vecs[0].tolist()], limit=3, filter=expr, consistency_level=STRONG),
            code=1100, contains="cannot parse expression")
    _raises(lambda: client.delete(name, filter=expr), code=1100, contains="cannot parse expression")
    _still_serving(client, *coll)


def test_filter_value_of_wrong_type(client, coll):
    name, vecs = coll
    for expr in ('age > "old"', "tag == 5", 'id in ["a", "b"]'):
        _raises(lambda: client.query(name, filter=expr, consistency_level=STRONG), code=1100,
                contains="cannot parse expression")
    _still_serving(client, *coll)


def test_query_empty_filter_without_limit(client, coll):
    name, _ = coll
    # Milvus: "empty expression should be used with limit" (code 1100).
    _raises(lambda: client.query(name, filter="", output_fields=["id"], consistency_level=STRONG),
            contains="empty expression should be used with limit")
    _still_serving(client, *coll)


# ---------------------------------------------------------------------------- unknown fields


def test_unknown_field(client, coll):
    name, vecs = coll
    # Milvus: "field nope not exist" (translateOutputFields / planparserv2), non-dynamic collection.
    _raises(lambda: client.query(name, filter="id > 0", output_fields=["nope"], consistency_level=STRONG),
            contains="not exist")
    _raises(lambda: client.search(name, [vecs[0].tolist()], limit=3, output_fields=["nope"],
                                  consistency_level=STRONG), contains="not exist")
    _raises(lambda: client.query(name, filter="nope > 1", consistency_level=STRONG), contains="not exist")
    _raises(lambda: client.search(name, [vecs[0].tolist()], limit=3, anns_field="nope", consistency_level=STRONG))
    # pymilvus refuses the extra key client-side (DataNotMatchException is a MilvusException).
    _raises(lambda: client.insert(name, [{"id": 7000, "vec": vecs[0].tolist(), "age": 1, "tag": "x", "nope": 1}]))
    _still_serving(client, *coll)


def test_raw_insert_with_unknown_field_column(client, coll):
    """A column the schema does not have, sent past pymilvus' own checks."""
    name, vecs = coll
    stub = client._get_connection()._stub
    req = milvus_pb2.InsertRequest(collection_name=name, num_rows=1)
    req.fields_data.append(_long("id", [8000]))
    req.fields_data.append(_vec("vec", [vecs[0].tolist()]))
    req.fields_data.append(_int("age", [1]))
    req.fields_data.append(_str("tag", ["x"]))
    req.fields_data.append(_long("nope", [1]))
    resp = stub.Insert(req)
    assert resp.status.code != 0 or resp.status.error_code != 0, resp
    assert "nope" in resp.status.reason, resp.status.reason
    assert client.get(name, ids=[8000], consistency_level=STRONG) == []
    _still_serving(client, *coll)


# ---------------------------------------------------------------------------- wrong value types


def test_wrong_value_type_client_side(client, coll):
    name, vecs = coll
    for row in (
        {"id": "abc", "vec": vecs[0].tolist(), "age": 1, "tag": "x"},
        {"id": 9000, "vec": ["a"] * DIM, "age": 1, "tag": "x"},
        {"id": 9001, "vec": vecs[0].tolist(), "age": "old", "tag": "x"},
        {"id": 9002, "vec": vecs[0].tolist(), "age": 1, "tag": 17},
    ):
        _raises(lambda: client.insert(name, [row]))
    assert client.get(name, ids=[9000, 9001, 9002], consistency_level=STRONG) == []
    _still_serving(client, *coll)


def test_raw_insert_wrong_column_type(client, coll):
    """Type errors that pymilvus would catch, sent straight to the server: it must answer
    with an error status (not a panic, not a gRPC error that pymilvus retries for minutes)."""
    name, vecs = coll
    stub = client._get_connection()._stub
    bad_columns = [
        ("age as string", [_long("id", [9100]), _vec("vec", [vecs[0].tolist()]), _str("age", ["x"]), _str("tag", ["x"])]),
        ("id as string", [_str("id", ["k"]), _vec("vec", [vecs[0].tolist()]), _int("age", [1]), _str("tag", ["x"])]),
        ("tag as int", [_long("id", [9101]), _vec("vec", [vecs[0].tolist()]), _int("age", [1]), _long("tag", [5])]),
        ("row count mismatch", [_long("id", [9102, 9103]), _vec("vec", [vecs[0].tolist()]), _int("age", [1]), _str("tag", ["x"])]),
        ("missing column", [_long("id", [9104]), _vec("vec", [vecs[0].tolist()]), _int("age", [1])]),
        ("vector length not a multiple of dim",
         [_long("id", [9105]), _vec("vec", [vecs[0].tolist()[:-1]], dim=DIM), _int("age", [1]), _str("tag", ["x"])]),
        ("varchar too long", [_long("id", [9106]), _vec("vec", [vecs[0].tolist()]), _int("age", [1]), _str("tag", ["x" * 17])]),
    ]
    for label, cols in bad_columns:
        req = milvus_pb2.InsertRequest(collection_name=name, num_rows=1)
        for c in cols:
            req.fields_data.append(c)
        resp = stub.Insert(req, timeout=30)
        assert resp.status.code != 0 or resp.status.error_code != 0, f"{label}: accepted: {resp}"
        assert resp.status.reason, f"{label}: empty error message"
    got = client.query(name, filter="id >= 9100", output_fields=["id"], consistency_level=STRONG)
    assert got == [], got
    _still_serving(client, *coll)


def test_varchar_longer_than_max_length(client, coll):
    name, vecs = coll
    # Milvus: "length of varchar field tag exceeds max length, row number: 0, length: 17, max length: 16"
    _raises(lambda: client.insert(name, [{"id": 9200, "vec": vecs[0].tolist(), "age": 1, "tag": "y" * 17}]),
            contains="max length")
    _still_serving(client, *coll)


def test_duplicate_collection_with_different_schema(client, coll):
    name, _ = coll
    # Milvus rootcoord: "create duplicate collection with different parameters, collection: <name>".
    _raises(lambda: client.create_collection(name, dimension=DIM + 1),
            contains=f"create duplicate collection with different parameters, collection: {name}")
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    _raises(lambda: client.create_collection(name, schema=schema),
            contains="create duplicate collection with different parameters")
    d = client.describe_collection(name)
    assert [f["name"] for f in d["fields"]] == ["id", "vec", "age", "tag"]
    _still_serving(client, *coll)


def test_search_not_loaded(client, coll):
    name, vecs = coll
    client.release_collection(name)
    try:
        # Milvus: merr.WrapErrCollectionNotLoaded -> code 101, "collection not loaded[collection=...]".
        _raises(lambda: client.search(name, [vecs[0].tolist()], limit=3, consistency_level=STRONG), code=101,
                contains="collection not loaded")
        _raises(lambda: client.query(name, filter="id > 0", consistency_level=STRONG), code=101,
                contains="collection not loaded")
        _raises(lambda: client.get(name, ids=[1], consistency_level=STRONG), code=101,
                contains="collection not loaded")
    finally:
        client.load_collection(name)
    _still_serving(client, *coll)


def test_metric_type_mismatch(client, coll):
    name, vecs = coll
    # Milvus: "metric type not match: invalid parameter[expected=L2][actual=IP]" (code 1100).
    _raises(lambda: client.search(name, [vecs[0].tolist()], limit=3, search_params={"metric_type": "IP"},
                                  consistency_level=STRONG), code=1100, contains="metric type not match")
    _still_serving(client, *coll)


def test_limit_out_of_range(client, coll):
    name, vecs = coll
    # Milvus: "topk [20000] is invalid, it should be in range [1, 16384]" (code 1100 / 65535).
    _raises(lambda: client.search(name, [vecs[0].tolist()], limit=20000, consistency_level=STRONG),
            contains="should be in range [1, 16384]")
    _raises(lambda: client.search(name, [vecs[0].tolist()], limit=10000, offset=10000, consistency_level=STRONG))
    _still_serving(client, *coll)


def test_duplicate_partition_and_drop_default(client, coll):
    name, _ = coll
    part = unique_name("p")
    client.create_partition(name, part)
    # Milvus rootcoord createPartitionTask: an existing name is a no-op ("add duplicate
    # partition" is only logged), so the second create succeeds.
    client.create_partition(name, part)
    assert sorted(client.list_partitions(name)) == sorted(["_default", part])
    # Milvus proxy dropPartitionTask: "default partition cannot be deleted".
    _raises(lambda: client.drop_partition(name, "_default"), contains="default partition cannot be deleted")
    assert client.has_partition(name, "_default")
    client.release_partitions(name, [part])
    client.drop_partition(name, part)
    _still_serving(client, *coll)


def test_integer_out_of_range(client, names):
    n = names()
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=4)
    schema.add_field("i8", DataType.INT8)
    schema.add_field("i16", DataType.INT16)
    ip = client.prepare_index_params()
    ip.add_index(field_name="v", index_type="FLAT", metric_type="L2")
    client.create_collection(n, schema=schema, index_params=ip, consistency_level=STRONG)
    # Milvus validateUtil.checkIntegerFieldData (withOverflowCheck): values outside the
    # Int8/Int16 range are refused (code 1100).
    for row in ({"id": 1, "v": [0.1] * 4, "i8": 200, "i16": 1},
                {"id": 2, "v": [0.1] * 4, "i8": -129, "i16": 1},
                {"id": 3, "v": [0.1] * 4, "i8": 1, "i16": 40000}):
        _raises(lambda: client.insert(n, [row]), code=1100)
    client.insert(n, [{"id": 4, "v": [0.1] * 4, "i8": -128, "i16": 32767}])
    assert client.query(n, filter="", limit=10, output_fields=["i8", "i16"], consistency_level=STRONG) == [
        {"id": 4, "i8": -128, "i16": 32767}]


def test_nan_and_infinity_in_vectors(client, coll):
    name, vecs = coll
    # Milvus validateUtil (withNANCheck): "float vector ... NaN / infinity" is refused.
    for bad in (float("nan"), float("inf"), float("-inf")):
        v = [0.5] * DIM
        v[3] = bad
        _raises(lambda: client.insert(name, [{"id": 9300, "vec": v, "age": 1, "tag": "x"}]))
    assert client.get(name, ids=[9300], consistency_level=STRONG) == []
    v = [0.5] * DIM
    v[0] = float("nan")
    _raises(lambda: client.search(name, [v], limit=3, consistency_level=STRONG))
    _still_serving(client, *coll)


def test_nan_and_infinity_in_float_and_double_fields(client, names):
    """Milvus refuses NaN/Inf in Float and Double scalar fields too: insertTask.PreExecute
    validates with newValidateUtil(withNANCheck(), ...), and checkFloatFieldData /
    checkDoubleFieldData call typeutil.VerifyFloats32 / VerifyFloats64 (internal/proxy/
    validate_util.go), answering code 1100 (ParameterInvalid)."""
    n = names()
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=4)
    schema.add_field("f", DataType.FLOAT)
    schema.add_field("d", DataType.DOUBLE)
    ip = client.prepare_index_params()
    ip.add_index(field_name="v", index_type="FLAT", metric_type="L2")
    client.create_collection(n, schema=schema, index_params=ip, consistency_level=STRONG)
    bad_rows = [
        {"id": 1, "v": [0.1] * 4, "f": float("nan"), "d": 1.0},
        {"id": 2, "v": [0.1] * 4, "f": float("inf"), "d": 1.0},
        {"id": 3, "v": [0.1] * 4, "f": 1.0, "d": float("nan")},
        {"id": 4, "v": [0.1] * 4, "f": 1.0, "d": float("-inf")},
    ]
    accepted = []
    for row in bad_rows:
        try:
            client.insert(n, [row])
            accepted.append(row["id"])
        except MilvusException as e:
            assert e.code == 1100, e
    assert accepted == [], f"rows with NaN/Inf in Float/Double fields were stored: ids {accepted}"


def test_invalid_collection_names(client, names):
    # Milvus proxy validateCollectionName: "Invalid collection name: <name>. <reason>" (1100).
    for bad in ("1abc", "a-b", "has space", "中文", "a" * 256):
        _raises(lambda: client.create_collection(bad, dimension=4), code=1100, contains="Invalid collection name")
        assert not client.has_collection(bad) if len(bad) < 256 else True
    a, b = names(), names()
    client.create_collection(a, dimension=4)
    client.create_collection(b, dimension=4)
    _raises(lambda: client.rename_collection(a, "1bad"), contains="Invalid collection name")
    # Milvus rootcoord renameCollection: "duplicated new collection name default:<b> with other
    # collection name or alias".
    _raises(lambda: client.rename_collection(a, b), contains="duplicated new collection name")
    assert client.has_collection(a) and client.has_collection(b)


def test_schema_without_or_with_two_vector_fields(client, names):
    n = names()
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("x", DataType.INT64)
    # Milvus: "schema does not contain vector field".
    _raises(lambda: client.create_collection(n, schema=schema), contains="schema does not contain vector field")
    n2 = names()
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v1", DataType.FLOAT_VECTOR, dim=4)
    schema.add_field("v2", DataType.FLOAT_VECTOR, dim=4)
    _raises(lambda: client.create_collection(n2, schema=schema))  # Ferrovec: one vector field
    assert not client.has_collection(n) and not client.has_collection(n2)


# ---------------------------------------------------------------------------- unsupported features


def test_unsupported_features_fail_cleanly(client, coll, names):
    name, vecs = coll
    # Scalar indexes.
    ip = client.prepare_index_params()
    ip.add_index(field_name="age", index_type="INVERTED")
    _raises(lambda: client.create_index(name, ip))
    # Aliases, other databases, AlterCollection.
    _raises(lambda: client.create_alias(name, unique_name("alias")))
    _raises(lambda: client.create_database(unique_name("db")))
    _raises(lambda: client.alter_collection_properties(name, {"collection.ttl.seconds": 60}))
    # HybridSearch and search by primary keys (SearchRequest.ids).
    from pymilvus import AnnSearchRequest, RRFRanker

    reqs = [AnnSearchRequest([vecs[0].tolist()], "vec", {}, 3), AnnSearchRequest([vecs[1].tolist()], "vec", {}, 3)]
    _raises(lambda: client.hybrid_search(name, reqs, RRFRanker(), limit=3))
    _raises(lambda: client.search(name, ids=[1, 2], limit=3, consistency_level=STRONG))
    # Array, binary and sparse vector fields.
    for add in (
        lambda s: s.add_field("a", DataType.ARRAY, element_type=DataType.INT64, max_capacity=4),
        lambda s: s.add_field("b", DataType.BINARY_VECTOR, dim=16),
        lambda s: s.add_field("sp", DataType.SPARSE_FLOAT_VECTOR),
    ):
        n = names()
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=4)
        add(schema)
        _raises(lambda: client.create_collection(n, schema=schema))
        assert not client.has_collection(n)
    _still_serving(client, *coll)


def test_unsupported_index_type_on_vector(client, names):
    n = names()
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=4)
    client.create_collection(n, schema=schema)
    for it, params in (("SCANN", {"nlist": 8}), ("DISKANN", {}), ("IVF_FLAT", {"nlist": 0}), ("HNSW", {"M": 1})):
        ip = client.prepare_index_params()
        ip.add_index(field_name="v", index_type=it, metric_type="L2", params=params)
        _raises(lambda: client.create_index(n, ip))
    assert client.list_indexes(n) == []


# ---------------------------------------------------------------------------- raw column builders


def _long(name, vals):
    return schema_pb2.FieldData(field_name=name, type=DataType.INT64,
                                scalars=schema_pb2.ScalarField(long_data=schema_pb2.LongArray(data=vals)))


def _int(name, vals):
    return schema_pb2.FieldData(field_name=name, type=DataType.INT32,
                                scalars=schema_pb2.ScalarField(int_data=schema_pb2.IntArray(data=vals)))


def _str(name, vals):
    return schema_pb2.FieldData(field_name=name, type=DataType.VARCHAR,
                                scalars=schema_pb2.ScalarField(string_data=schema_pb2.StringArray(data=vals)))


def _vec(name, rows, dim=None):
    flat = [x for r in rows for x in r]
    return schema_pb2.FieldData(field_name=name, type=DataType.FLOAT_VECTOR,
                                vectors=schema_pb2.VectorField(dim=dim or len(rows[0]),
                                                               float_vector=schema_pb2.FloatArray(data=flat)))
