"""Connection handshake (MilvusClient and ORM), server version, database `default`, /healthz."""

import re
import urllib.request
import uuid

import pytest
from pymilvus import MilvusClient, MilvusException, connections, utility

from conftest import unique_name


def test_healthz(server):
    with urllib.request.urlopen(server.healthz_url, timeout=5) as r:
        assert r.status == 200
        assert r.read().decode().strip() == "OK"


def test_milvus_client_connects_and_reports_version(uri):
    c = MilvusClient(uri=uri)
    try:
        v = c.get_server_version()
        assert isinstance(v, str) and v, f"empty version {v!r}"
        # Milvus answers e.g. "v2.6.0"; pymilvus and tools parse a leading (v)MAJOR.MINOR.
        assert re.match(r"^v?\d+\.\d+", v), f"version {v!r} is not Milvus-like"
        # list_collections works right after the handshake.
        assert isinstance(c.list_collections(), list)
    finally:
        c.close()


def test_server_version_detail_comes_from_connect(uri):
    c = MilvusClient(uri=uri)
    try:
        info = c.get_server_version(detail=True)
        assert isinstance(info, dict)
        assert set(info) >= {"version", "build_time", "git_commit", "go_version", "deploy_mode"}
    finally:
        c.close()


def test_localhost_uri(server):
    # The quickstart form: "http://localhost:PORT".
    c = MilvusClient(uri=f"http://localhost:{server.port}")
    try:
        assert c.get_server_version()
    finally:
        c.close()


def test_orm_connect_host_port(server):
    alias = f"e2e_{uuid.uuid4().hex[:8]}"
    connections.connect(alias=alias, host="127.0.0.1", port=str(server.port))
    try:
        assert connections.has_connection(alias)
        v = utility.get_server_version(using=alias)
        assert isinstance(v, str) and v
        assert isinstance(utility.list_collections(using=alias), list)
    finally:
        connections.disconnect(alias)
    assert not connections.has_connection(alias)


def test_orm_connect_uri(uri):
    alias = f"e2e_{uuid.uuid4().hex[:8]}"
    connections.connect(alias=alias, uri=uri)
    try:
        assert utility.get_server_version(using=alias)
    finally:
        connections.disconnect(alias)


def test_database_default(uri, client):
    dbs = client.list_databases()
    assert "default" in dbs, dbs
    # A client bound to db_name="default" sees the same collections as one with no db.
    name = unique_name("e2e_db")
    c = MilvusClient(uri=uri, db_name="default")
    try:
        c.create_collection(name, dimension=4, consistency_level="Strong")
        assert name in c.list_collections()
        assert name in client.list_collections()
        assert client.has_collection(name)
    finally:
        c.drop_collection(name)
        c.close()
    assert name not in client.list_collections()


def test_other_database_is_refused(uri):
    # Ferrovec has only "default". Milvus' Connect answers a database that does not exist
    # with code 800 "database not found[database=X]" (proxy Connect / merr.WrapErrDatabaseNotFound);
    # it must not fall back to "default" silently (a collection created through such a
    # client would land in "default").
    dbname = f"nodb_{uuid.uuid4().hex[:8]}"
    name = unique_name("e2e_nodb")
    c = None
    try:
        with pytest.raises(MilvusException) as ei:
            c = MilvusClient(uri=uri, db_name=dbname)
            c.create_collection(name, dimension=4)
        assert ei.value.code == 800, ei.value
        assert "database not found" in ei.value.message, ei.value
    finally:
        if c is not None:
            c.close()
        d = MilvusClient(uri=uri)
        if d.has_collection(name):
            d.drop_collection(name)
        d.close()


def test_async_client_round_trip(uri):
    """AsyncMilvusClient (grpc.aio) speaks the same RPCs."""
    import asyncio

    import numpy as np
    from pymilvus import AsyncMilvusClient

    from helpers import check_search, random_vectors

    name = unique_name("e2e_async")
    vecs = random_vectors(100, 8, seed=5)

    async def main():
        c = AsyncMilvusClient(uri=uri)
        try:
            await c.create_collection(name, dimension=8, metric_type="L2", consistency_level="Strong")
            r = await c.insert(name, [{"id": i, "vector": vecs[i].tolist(), "t": i} for i in range(100)])
            assert r["insert_count"] == 100
            q = random_vectors(2, 8, seed=6)
            res = await c.search(name, q.tolist(), limit=5, output_fields=["t"])
            check_search(res, vecs, list(range(100)), q, "L2", 5, where="async")
            for hits in res:
                for h in hits:
                    assert h["entity"]["t"] == h["id"]
            rows = await c.query(name, filter="t < 3", output_fields=["t"])
            assert sorted(r["id"] for r in rows) == [0, 1, 2]
            got = await c.get(name, ids=[5])
            np.testing.assert_array_equal(np.asarray(got[0]["vector"], dtype=np.float32), vecs[5])
            await c.delete(name, ids=[0, 1])
            cnt = await c.query(name, filter="", output_fields=["count(*)"])
            assert cnt[0]["count(*)"] == 98
        finally:
            await c.drop_collection(name)
            await c.close()

    asyncio.run(main())
