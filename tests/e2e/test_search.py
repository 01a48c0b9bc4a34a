"""search: single and batched (nq up to 1000), limit/offset, filters, output fields, metrics
L2/IP/COSINE, search params, consistency levels, partitions and range search. Every result
is checked against a numpy brute-force reference (see helpers.check_search)."""

import time

import numpy as np
import pytest
from pymilvus import DataType

from conftest import unique_name
from helpers import check_search, close, random_vectors, scores

STRONG = "Strong"
METRICS = ["L2", "IP", "COSINE"]
N = 2000
DIM = 32
PARTS = ["_default", "pa", "pb"]


class Data:
    pass


def _make_rows(n, dim, seed):
    r = np.random.default_rng(seed)
    vecs = random_vectors(n, dim, seed)
    cat = r.integers(0, 10, n)
    price = np.round(r.random(n) * 100.0, 3)
    flag = r.random(n) < 0.5
    tag = np.array([f"t{int(x)}" for x in r.integers(0, 30, n)])
    g = r.integers(0, 4, n)
    part = np.array([PARTS[i % 3] for i in range(n)])
    rows = [
        {"id": i, "vec": vecs[i].tolist(), "cat": int(cat[i]), "price": float(price[i]), "flag": bool(flag[i]),
         "tag": str(tag[i]), "meta": {"g": int(g[i]), "sq": i * i}}
        for i in range(n)
    ]
    d = Data()
    d.vecs, d.cat, d.price, d.flag, d.tag, d.g, d.part, d.rows = vecs, cat, price, flag, tag, g, part, rows
    d.pks = list(range(n))
    return d


@pytest.fixture(scope="module", params=METRICS)
def coll(request, client):
    """One loaded collection per metric: 2000 rows in 3 partitions, half flushed (sealed
    segments), half growing."""
    metric = request.param
    name = unique_name(f"e2e_search_{metric.lower()}")
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("cat", DataType.INT64)
    schema.add_field("price", DataType.DOUBLE)
    schema.add_field("flag", DataType.BOOL)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    schema.add_field("meta", DataType.JSON)
    ip = client.prepare_index_params()
    ip.add_index(field_name="vec", index_type="FLAT", metric_type=metric)
    client.create_collection(name, schema=schema, index_params=ip, consistency_level=STRONG)
    d = _make_rows(N, DIM, seed=100 + METRICS.index(metric))
    d.name, d.metric = name, metric
    try:
        client.create_partition(name, "pa")
        client.create_partition(name, "pb")
        half = N // 2
        for lo, hi in ((0, half), (half, N)):
            for p in PARTS:
                rows = [d.rows[i] for i in range(lo, hi) if d.part[i] == p]
                client.insert(name, rows, partition_name=p)
            if lo == 0:
                client.flush(name)
        yield d
    finally:
        client.drop_collection(name)


def _q(n, seed):
    return random_vectors(n, DIM, seed)


# ---------------------------------------------------------------------------- basics


def test_single_query(client, coll):
    q = _q(1, 1)
    res = client.search(coll.name, q.tolist(), limit=10, consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, 10)
    # A query vector equal to a stored one finds that row first.
    res = client.search(coll.name, [coll.vecs[123].tolist()], limit=3, consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, coll.vecs[123:124], coll.metric, 3)
    if coll.metric != "IP":
        assert res[0][0].id == 123


def test_batched_queries(client, coll):
    q = _q(37, 2)
    res = client.search(coll.name, q.tolist(), limit=16, consistency_level=STRONG, anns_field="vec")
    check_search(res, coll.vecs, coll.pks, q, coll.metric, 16)


@pytest.mark.parametrize("coll", ["L2"], indirect=True)  # one nq=1000 run is enough
def test_batched_nq_1000(client, coll):
    q = _q(1000, 3)
    res = client.search(coll.name, q.tolist(), limit=10, consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, 10, where="nq=1000")


def test_numpy_query_vectors(client, coll):
    q = _q(3, 4)
    res = client.search(coll.name, list(q), limit=5, consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, 5)


@pytest.mark.parametrize("limit,offset", [(1, 0), (5, 0), (10, 5), (7, 100), (100, 0), (50, 1990), (10, 1995), (3, 2000)])
def test_limit_offset(client, coll, limit, offset):
    q = _q(4, 5)
    res = client.search(coll.name, q.tolist(), limit=limit, search_params={"offset": offset},
                        consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, limit, offset=offset)
    if offset:
        # offset also works as a keyword argument.
        res2 = client.search(coll.name, q.tolist(), limit=limit, offset=offset, consistency_level=STRONG)
        check_search(res2, coll.vecs, coll.pks, q, coll.metric, limit, offset=offset)


def test_limit_larger_than_collection(client, coll):
    q = _q(2, 6)
    res = client.search(coll.name, q.tolist(), limit=N + 500, consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, N + 500)
    assert all(len(h) == N for h in res)


# ---------------------------------------------------------------------------- filters


FILTERS = [
    ("cat in [1, 3, 5]", lambda d: np.isin(d.cat, [1, 3, 5])),
    ("price > 50.0 and flag == true", lambda d: (d.price > 50.0) & d.flag),
    ('tag like "t1%"', lambda d: np.char.startswith(d.tag.astype(str), "t1")),
    ('meta["g"] == 2', lambda d: d.g == 2),
    ("id < 500 or id > 1800", lambda d: (np.arange(N) < 500) | (np.arange(N) > 1800)),
    ("not (cat == 0)", lambda d: d.cat != 0),
    ("10 <= price < 20", lambda d: (d.price >= 10) & (d.price < 20)),
    ('tag == "t7" and cat >= 5', lambda d: (d.tag == "t7") & (d.cat >= 5)),
    ("id in [5, 17, 1999, 3000]", lambda d: np.isin(np.arange(N), [5, 17, 1999])),
]


@pytest.mark.parametrize("expr,pred", FILTERS, ids=[f[0] for f in FILTERS])
def test_filter(client, coll, expr, pred):
    q = _q(5, 7)
    mask = pred(coll)
    res = client.search(coll.name, q.tolist(), limit=20, filter=expr, consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, 20, mask=mask, where=expr)


def test_filter_matching_nothing(client, coll):
    q = _q(3, 8)
    res = client.search(coll.name, q.tolist(), limit=10, filter="cat > 100", consistency_level=STRONG)
    assert len(res) == 3
    assert all(len(h) == 0 for h in res)


def test_filter_with_template_params(client, coll):
    q = _q(2, 9)
    res = client.search(coll.name, q.tolist(), limit=10, filter="cat in {cats} and price < {p}",
                        filter_params={"cats": [2, 4], "p": 60.0}, consistency_level=STRONG)
    mask = np.isin(coll.cat, [2, 4]) & (coll.price < 60.0)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, 10, mask=mask)


# ---------------------------------------------------------------------------- output fields


def test_output_fields_named(client, coll):
    q = _q(3, 10)
    res = client.search(coll.name, q.tolist(), limit=10, output_fields=["cat", "tag", "meta"],
                        consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, 10)
    for hits in res:
        for h in hits:
            row = coll.rows[h.id]
            e = h["entity"]
            assert set(e) - {"id"} == {"cat", "tag", "meta"}, set(e)
            assert e["cat"] == row["cat"] and e["tag"] == row["tag"] and e["meta"] == row["meta"]


def test_output_fields_star(client, coll):
    q = _q(2, 11)
    res = client.search(coll.name, q.tolist(), limit=5, output_fields=["*"], consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, 5)
    for hits in res:
        for h in hits:
            row = coll.rows[h.id]
            e = h["entity"]
            assert set(e) >= {"cat", "price", "flag", "tag", "meta", "vec"}, set(e)
            for k in ("cat", "price", "flag", "tag", "meta"):
                assert e[k] == row[k], (h.id, k, e[k], row[k])
            np.testing.assert_array_equal(np.asarray(e["vec"], dtype=np.float32), coll.vecs[h.id])


def test_output_fields_none(client, coll):
    q = _q(2, 12)
    res = client.search(coll.name, q.tolist(), limit=5, consistency_level=STRONG)
    for hits in res:
        for h in hits:
            assert set(h["entity"]) <= {"id"}, h["entity"]


def test_output_vector_field_and_pk(client, coll):
    q = _q(2, 13)
    res = client.search(coll.name, q.tolist(), limit=5, output_fields=["vec", "id"], consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, 5)
    for hits in res:
        for h in hits:
            np.testing.assert_array_equal(np.asarray(h["entity"]["vec"], dtype=np.float32), coll.vecs[h.id])
            assert h["entity"].get("id", h.id) == h.id


# ---------------------------------------------------------------------------- search params


@pytest.mark.parametrize("params", [
    {},
    {"params": {}},
    {"params": {"nprobe": 10}},
    {"params": {"ef": 64}},
    {"nprobe": 16},
    {"params": {"search_list": 100, "level": 1}},
], ids=["none", "empty", "nprobe", "ef", "toplevel_nprobe", "diskann_like"])
def test_search_params_accepted(client, coll, params):
    q = _q(3, 14)
    sp = dict(params)
    res = client.search(coll.name, q.tolist(), limit=8, search_params=sp, consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, 8)
    # The same with the index's metric spelled out.
    sp = dict(params, metric_type=coll.metric)
    res = client.search(coll.name, q.tolist(), limit=8, search_params=sp, consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, 8)


# ---------------------------------------------------------------------------- partitions


@pytest.mark.parametrize("parts", [["pa"], ["pb", "_default"], ["_default"], ["pa", "pb", "_default"]])
def test_partition_names(client, coll, parts):
    q = _q(4, 15)
    mask = np.isin(coll.part, parts)
    res = client.search(coll.name, q.tolist(), limit=12, partition_names=parts, consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, 12, mask=mask, where=f"partitions {parts}")
    # Partition and filter together.
    res = client.search(coll.name, q.tolist(), limit=12, partition_names=parts, filter="cat < 4",
                        consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, 12, mask=mask & (coll.cat < 4))


# ---------------------------------------------------------------------------- range search


def _gap_between(sorted_vals, rank):
    """A threshold halfway between the rank-th and (rank+1)-th value (no boundary ties)."""
    return float((sorted_vals[rank] + sorted_vals[rank + 1]) / 2.0)


def test_range_search(client, coll):
    q = _q(1, 16)
    s = scores(coll.metric, coll.vecs, q)[0]
    if coll.metric == "L2":
        asc = np.sort(s)
        radius = _gap_between(asc, 60)        # distance < radius
        range_filter = _gap_between(asc, 20)  # distance >= range_filter
        mask = (s < radius) & (s >= range_filter)
    else:
        desc = np.sort(s)[::-1]
        radius = _gap_between(desc, 60)        # score > radius
        range_filter = _gap_between(desc, 20)  # score <= range_filter
        mask = (s > radius) & (s <= range_filter)
    assert mask.sum() == 40

    # Only radius: everything better than radius, up to limit.
    only_radius = (s < radius) if coll.metric == "L2" else (s > radius)
    res = client.search(coll.name, q.tolist(), limit=100, search_params={"params": {"radius": radius}},
                        consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, 100, mask=only_radius, where="radius")
    assert len(res[0]) == 61

    # radius and range_filter: a band of 40 rows.
    res = client.search(coll.name, q.tolist(), limit=100,
                        search_params={"params": {"radius": radius, "range_filter": range_filter}},
                        consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, 100, mask=mask, where="range")
    assert len(res[0]) == 40

    # limit smaller than the band: the best 10 inside it.
    res = client.search(coll.name, q.tolist(), limit=10,
                        search_params={"radius": radius, "range_filter": range_filter, "metric_type": coll.metric},
                        consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, 10, mask=mask, where="range limit 10")

    # With a filter.
    res = client.search(coll.name, q.tolist(), limit=100, filter="flag == true",
                        search_params={"params": {"radius": radius, "range_filter": range_filter}},
                        consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, 100, mask=mask & coll.flag, where="range+filter")


def test_range_search_batched(client, coll):
    q = _q(5, 17)
    s = scores(coll.metric, coll.vecs, q)
    # One threshold for all queries, taken from the first query's distribution.
    first = np.sort(s[0]) if coll.metric == "L2" else np.sort(s[0])[::-1]
    radius = _gap_between(first, 30)
    masks = (s < radius) if coll.metric == "L2" else (s > radius)
    res = client.search(coll.name, q.tolist(), limit=50, search_params={"params": {"radius": radius}},
                        consistency_level=STRONG)
    check_search(res, coll.vecs, coll.pks, q, coll.metric, 50, mask=masks, where="batched range")


# ---------------------------------------------------------------------------- consistency


@pytest.mark.parametrize("level", ["Strong", "Session", "Bounded", "Eventually", None])
def test_consistency_levels(client, level):
    """Each read level is accepted. Strong and Session must see a write made just before
    by the same client; Bounded/Eventually must converge to the full data in bounded time."""
    name = unique_name("e2e_consistency")
    kw = {} if level is None else {"consistency_level": level}
    client.create_collection(name, dimension=8, metric_type="L2", **kw)
    try:
        vecs = random_vectors(300, 8, seed=18)
        client.insert(name, [{"id": i, "vector": vecs[i].tolist()} for i in range(150)])
        client.insert(name, [{"id": i, "vector": vecs[i].tolist()} for i in range(150, 300)])
        q = vecs[[0, 299]]
        search_kw = {} if level is None else {"consistency_level": level}
        deadline = time.monotonic() + 15
        while True:
            res = client.search(name, q.tolist(), limit=5, **search_kw)
            cnt = client.query(name, filter="", output_fields=["count(*)"], **search_kw)[0]["count(*)"]
            # No level: the collection's default, which pymilvus creates as Bounded, so a
            # read right after the writes may be stale like a Bounded one, and converges.
            if level in ("Strong", "Session") or (cnt == 300 and all(len(h) == 5 for h in res)
                                                  and res[1][0].id == 299):
                break
            assert time.monotonic() < deadline, f"{level} read still stale after 15 s (count {cnt})"
            time.sleep(0.2)
        assert cnt == 300
        check_search(res, vecs, list(range(300)), q, "L2", 5, where=f"consistency {level}")
        assert res[0][0].id == 0 and res[1][0].id == 299
        # Strong with a collection created at another level is allowed per request.
        res = client.search(name, q.tolist(), limit=5, consistency_level="Strong")
        check_search(res, vecs, list(range(300)), q, "L2", 5)
    finally:
        client.drop_collection(name)


# ---------------------------------------------------------------------------- other collections


def test_search_varchar_pk_collection(client, name):
    client.create_collection(name, dimension=12, id_type="string", max_length=20, metric_type="IP",
                             consistency_level=STRONG)
    vecs = random_vectors(400, 12, seed=19)
    pks = [f"k{i:05d}" for i in range(400)]
    client.insert(name, [{"id": pks[i], "vector": vecs[i].tolist(), "n": i} for i in range(400)])
    q = random_vectors(6, 12, seed=20)
    res = client.search(name, q.tolist(), limit=9, output_fields=["n"])
    check_search(res, vecs, pks, q, "IP", 9)
    for hits in res:
        for h in hits:
            assert isinstance(h.id, str) and h["entity"]["n"] == int(h.id[1:])
    # A filter on the VarChar pk.
    res = client.search(name, q.tolist(), limit=9, filter='id in ["k00001", "k00002", "k00399"] or id > "k00390"')
    mask = np.array([p in ("k00001", "k00002", "k00399") or p > "k00390" for p in pks])
    check_search(res, vecs, pks, q, "IP", 9, mask=mask)


def test_search_empty_collection(client, name):
    client.create_collection(name, dimension=8, consistency_level=STRONG)
    res = client.search(name, random_vectors(3, 8, seed=21).tolist(), limit=5)
    assert len(res) == 3 and all(len(h) == 0 for h in res)


def test_search_high_dim(client, name):
    client.create_collection(name, dimension=128, metric_type="COSINE", consistency_level=STRONG)
    vecs = random_vectors(500, 128, seed=22)
    client.insert(name, [{"id": i, "vector": vecs[i].tolist()} for i in range(500)])
    q = random_vectors(10, 128, seed=23)
    res = client.search(name, q.tolist(), limit=25)
    check_search(res, vecs, list(range(500)), q, "COSINE", 25)
    # COSINE similarity of a vector with itself is 1.
    res = client.search(name, [vecs[7].tolist()], limit=1)
    assert res[0][0].id == 7 and close(res[0][0].distance, 1.0)


@pytest.mark.parametrize("coll", ["L2"], indirect=True)
def test_search_iterator(client, coll):
    """MilvusClient.search_iterator (v2 when the server supports it, else the v1 range-search
    fallback) walks the hits in order without duplicates."""
    q = _q(1, 24)
    it = client.search_iterator(coll.name, data=q.tolist(), batch_size=50, limit=300, anns_field="vec",
                                filter="cat != 2", search_params={"metric_type": "L2"})
    ids, dists = [], []
    try:
        while True:
            batch = it.next()
            if not batch:
                break
            ids += [h.id for h in batch]
            dists += [float(h.distance) for h in batch]
    finally:
        it.close()
    assert len(ids) == 300 and len(set(ids)) == 300
    mask = coll.cat != 2
    s = scores("L2", coll.vecs, q)[0]
    want = np.sort(s[mask])[:300]
    for i, (pk, d) in enumerate(zip(ids, dists)):
        assert mask[pk], pk
        assert close(d, s[pk]), (i, pk, d, s[pk])
        assert close(d, want[i]), (i, pk, d, want[i])
