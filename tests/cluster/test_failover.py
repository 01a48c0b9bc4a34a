"""kill -9 of each role process under insert and search load, then its restart: no
acknowledged write is lost, and searches resume with full results. While a query node is
down, its segments are served by the other one.

Each test drives one collection with a writer (batches of new ids, remembering which
inserts were acknowledged) and a searcher, kills one process by its PID, restarts it with
`scripts/cluster.sh up` and checks every acknowledged id afterwards.
"""

import os
import random
import signal
import time

import numpy as np
import pytest
from conftest import Background, flat_collection, wait_for
from pymilvus import MilvusClient

DIM = 8
BATCH = 50
ROLES = [
    "proxy-1",
    "rootcoord-1",
    "datacoord-1",
    "indexcoord-1",
    "querycoord-1",
    "datanode-1",
    "querynode-1",
    "indexnode-1",
]


class Load(Background):
    """A writer and a searcher on one collection, until stopped."""

    loops = ("_write", "_search")

    def __init__(self, uri: str, name: str):
        super().__init__()
        self.uri, self.name = uri, name
        self.acked: list[int] = []
        self.unacked: list[int] = []
        self.insert_errors = 0
        self.searches_ok = 0
        self.search_errors = 0
        self.short_results = 0

    def stop(self):
        super().stop(timeout_s=120)

    def _write(self):
        c = MilvusClient(self.uri)
        rng = random.Random(1)
        next_id = 0
        while not self.stopped():
            ids = list(range(next_id, next_id + BATCH))
            next_id += BATCH
            rows = [{"id": i, "v": [rng.random() for _ in range(DIM)]} for i in ids]
            try:
                c.insert(self.name, rows, timeout=10)
                self.acked.extend(ids)
            except Exception:
                # Not acknowledged: may or may not have been written.
                self.unacked.extend(ids)
                self.insert_errors += 1
                time.sleep(0.2)
            time.sleep(0.01)

    def _search(self):
        c = MilvusClient(self.uri)
        while not self.stopped():
            try:
                r = c.search(self.name, data=[[0.5] * DIM], limit=10, timeout=10)
                self.searches_ok += 1
                if len(r[0]) < 10:
                    self.short_results += 1
            except Exception:
                self.search_errors += 1
                time.sleep(0.2)
            time.sleep(0.02)


def make_collection(uri: str) -> str:
    c = MilvusClient(uri)
    name = flat_collection(c, "failover", DIM)
    c.load_collection(name)
    # A few sealed segments before the kill, so query nodes hold historical data too.
    for s in range(3):
        ids = list(range(10_000_000 + s * 500, 10_000_000 + (s + 1) * 500))
        c.insert(name, [{"id": i, "v": np.random.default_rng(i).random(DIM).tolist()} for i in ids])
        c.flush(name)
    return name


def present_ids(c: MilvusClient, name: str, ids: list[int]) -> set[int]:
    found = set()
    for s in range(0, len(ids), 1000):
        chunk = ids[s:s + 1000]
        rows = c.query(name, filter=f"id in {chunk}", output_fields=["id"], consistency_level="Strong", timeout=30)
        found.update(r["id"] for r in rows)
    return found


@pytest.mark.parametrize("role", ROLES)
def test_kill_and_restart_loses_no_acknowledged_write(cluster, role):
    name = make_collection(cluster.uri)
    c = MilvusClient(cluster.uri)
    base_rows = 1500
    load = Load(cluster.uri, name)
    load.start()
    try:
        wait_for("some acknowledged inserts", lambda: len(load.acked) >= 500, 30)
        pid = cluster.pid(role)
        os.kill(pid, signal.SIGKILL)
        wait_for(f"{role} (pid {pid}) gone", lambda: not cluster.alive(role), 10)
        acked_at_kill = len(load.acked)

        if role.startswith("querynode"):
            # The other query node takes over: every acknowledged row is searchable without
            # the killed node (a fresh client: the load's own keeps going).
            def served_by_the_other():
                n = c.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong", timeout=10)
                return n[0]["count(*)"] >= base_rows + acked_at_kill
            wait_for("segments of the dead query node served by the other", served_by_the_other, 60)
            r = c.search(name, data=[[0.5] * DIM], limit=10, timeout=10)
            assert len(r[0]) == 10
        else:
            time.sleep(2)

        cluster.up()
        assert cluster.alive(role)
        searches_before = load.searches_ok
        acked_before = len(load.acked)
        # Load resumes: new acknowledged inserts and full searches after the restart.
        wait_for("inserts acknowledged after the restart", lambda: len(load.acked) >= acked_before + 200, 60)
        wait_for("searches answered after the restart", lambda: load.searches_ok >= searches_before + 20, 60)
    finally:
        load.stop()

    acked = load.acked
    found = wait_for(
        "every acknowledged id visible",
        lambda: (lambda f: f if set(acked) <= f else None)(present_ids(c, name, acked)),
        60,
    )
    assert set(acked) <= found
    total = c.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]
    # Unacknowledged inserts may or may not have landed; nothing else may appear or vanish.
    assert base_rows + len(acked) <= total <= base_rows + len(acked) + len(load.unacked)
    r = c.search(name, data=[[0.5] * DIM], limit=10, consistency_level="Strong")
    assert len(r[0]) == 10
    if role != "proxy-1":
        # Only the proxy is on the client's path: killing anything else must not fail inserts.
        assert load.insert_errors == 0, f"{load.insert_errors} inserts failed while {role} was down"
    c.drop_collection(name)
