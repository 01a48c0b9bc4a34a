"""Where a loaded collection is served: `get_query_segment_info` / `list_loaded_segments`
(sealed segments per query node) and `get_replicas` / `describe_replica` (shards with
their delegator and workers), on standalone and on a cluster."""

import time

import pytest
from pymilvus import Collection, MilvusException, connections, utility

from conftest import unique_name
from helpers import random_vectors

SEALED = 3  # milvus.proto.common.SegmentState.Sealed
BATCHES = 3
ROWS = 300


def _wait(what, fn, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout_s} s (last: {last!r})")


def _fill(client, name, shards=2):
    client.create_collection(name, dimension=8, num_shards=shards, consistency_level="Strong")
    vecs = random_vectors(BATCHES * ROWS, 8, seed=11)
    for b in range(BATCHES):
        rows = [{"id": i, "vector": vecs[i].tolist()} for i in range(b * ROWS, (b + 1) * ROWS)]
        client.insert(name, rows)
        client.flush(name)


def test_loaded_collection_reports_its_segments_and_replica(client, uri, name):
    _fill(client, name)
    cid = client.describe_collection(name)["collection_id"]
    total = BATCHES * ROWS
    # Flushed segments reach the query nodes asynchronously (handoff).
    segs = _wait(
        "every flushed row on a query node",
        lambda: (lambda s: s if sum(x.num_rows for x in s) == total else None)(client.list_loaded_segments(name)),
    )
    assert len({s.segment_id for s in segs}) == len(segs) >= BATCHES
    for s in segs:
        assert s.collection_id == cid
        assert s.partition_id > 0
        assert s.num_rows > 0
        assert int(s.state) == SEALED
        assert s.node_ids and all(n > 0 for n in s.node_ids)
        # Named once its index build is in use; the quick-setup index is on "vector".
        assert s.index_name in ("", "vector")

    replicas = client.describe_replica(name)
    assert len(replicas) == 1
    r = replicas[0]
    shards = r.shards
    assert len(shards) == 2
    assert len({s.channel_name for s in shards}) == 2
    segment_nodes = {n for s in segs for n in s.node_ids}
    leaders = {s.shard_leader for s in shards}
    assert all(n > 0 for n in leaders)
    assert r.id == client.describe_collection(name)["collection_id"]
    assert set(r.group_nodes) == leaders | segment_nodes
    for s in shards:
        assert s.shard_leader in s.shard_nodes

    # The ORM calls read the same distribution.
    alias = unique_name("dist")
    connections.connect(alias=alias, uri=uri)
    try:
        infos = utility.get_query_segment_info(name, using=alias)
        assert sorted(i.segmentID for i in infos) == sorted(s.segment_id for s in segs)
        assert sum(i.num_rows for i in infos) == total
        for i in infos:
            assert i.nodeID == i.nodeIds[0]
            assert i.collectionID == cid
        groups = Collection(name, using=alias).get_replicas().groups
        assert len(groups) == 1
        assert set(groups[0].group_nodes) == set(r.group_nodes)
        assert {s.shard_leader for s in groups[0].shards} == leaders
    finally:
        connections.disconnect(alias)


def test_index_name_is_reported_once_segments_search_through_it(client, name):
    _fill(client, name, shards=1)
    client.release_collection(name)
    client.drop_index(name, "vector")
    ip = client.prepare_index_params()
    ip.add_index("vector", index_name="vec_idx", index_type="FLAT", metric_type="L2")
    client.create_index(name, ip)
    client.load_collection(name)
    _wait(
        "every segment searched through vec_idx",
        lambda: (lambda s: sum(x.num_rows for x in s) == BATCHES * ROWS and all(x.index_name == "vec_idx" for x in s))(
            client.list_loaded_segments(name)
        ),
    )


def test_unloaded_collection_has_an_empty_distribution(client, name):
    _fill(client, name, shards=1)
    client.release_collection(name)
    # As in Milvus: success with nothing listed.
    assert client.list_loaded_segments(name) == []
    assert client.describe_replica(name) == []


def test_missing_collection_is_an_error(client):
    missing = unique_name("missing")
    with pytest.raises(MilvusException) as e:
        client.list_loaded_segments(missing)
    assert e.value.code == 100, e.value
    assert "collection not found" in e.value.message
    with pytest.raises(MilvusException) as e:
        client.describe_replica(missing)
    assert e.value.code == 100, e.value
