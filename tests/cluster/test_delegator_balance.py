"""Shard delegators move onto a query node that joins, without a read gap.

querynode-2 is killed, a two-shard collection is loaded (both delegators land on
querynode-1), rows are inserted continuously, and querynode-2 comes back: querycoord must
move one delegator to it. Meanwhile a checker runs Strong searches and count(*) queries
restricted to ids acknowledged before each request (the writer numbers its rows in order
and must see no insert fail), so every answer has one right value: the count equals the
number of those ids (a lost or duplicated row changes it) and the search equals brute
force over them. Any failed read fails the test too: the proxy must hide the leader
switch.
"""

import os
import re
import signal
import time
from pathlib import Path

import numpy as np
from conftest import Background, flat_collection, wait_for
from pymilvus import Collection, MilvusClient, connections, utility

DIM = 8
BATCH = 100
TOPK = 10
SEALED_ROWS = 1_000


def vector(i: int) -> np.ndarray:
    return np.random.default_rng(i).random(DIM, dtype=np.float32)


class Writer(Background):
    """Inserts rows numbered 0, 1, 2... in batches; `acked` is the count of rows whose
    insert was acknowledged (all ids below it)."""

    def __init__(self, uri: str, name: str, start: int):
        super().__init__()
        self.uri, self.name = uri, name
        self.acked = start
        self.errors: list[str] = []

    def _run(self):
        c = MilvusClient(self.uri)
        while not self.stopped():
            ids = range(self.acked, self.acked + BATCH)
            try:
                c.insert(self.name, [{"id": i, "v": vector(i).tolist()} for i in ids], timeout=10)
            except Exception as e:
                # The checker relies on every id below `acked` existing: stop writing.
                self.errors.append(repr(e))
                return
            self.acked += BATCH
            time.sleep(0.02)


class Checker(Background):
    """Strong count(*) and search over the acknowledged ids, until stopped."""

    def __init__(self, uri: str, name: str, writer: Writer):
        super().__init__()
        self.uri, self.name, self.writer = uri, name, writer
        self.ok = 0
        self.errors: list[str] = []
        self.wrong: list[str] = []
        self._vectors = np.zeros((0, DIM), dtype=np.float32)

    def _brute_force(self, n: int, q: np.ndarray) -> list[int]:
        have = len(self._vectors)
        if have < n:
            self._vectors = np.vstack([self._vectors] + [vector(i)[None, :] for i in range(have, n)])
        d = ((self._vectors[:n] - q) ** 2).sum(axis=1)
        order = np.lexsort((np.arange(n), d))[:TOPK]
        return [int(i) for i in order]

    def _run(self):
        c = MilvusClient(self.uri)
        rng = np.random.default_rng(11)
        while not self.stopped():
            n = self.writer.acked
            try:
                rows = c.query(self.name, filter=f"id < {n}", output_fields=["count(*)"],
                               consistency_level="Strong", timeout=20)
                count = rows[0]["count(*)"]
                if count != n:
                    self.wrong.append(f"count(*) of ids below {n} is {count}")
                q = rng.random(DIM, dtype=np.float32)
                r = c.search(self.name, data=[q.tolist()], filter=f"id < {n}", limit=TOPK,
                             consistency_level="Strong", timeout=20)
            except Exception as e:
                self.errors.append(repr(e))
                time.sleep(0.1)
                continue
            got = [h["id"] for h in r[0]]
            want = self._brute_force(n, q)
            if len(set(got)) != len(got):
                self.wrong.append(f"duplicates in {got}")
            elif set(got) != set(want):
                self.wrong.append(f"search over {n} rows: got {sorted(got)}, want {sorted(want)}")
            else:
                self.ok += 1


def leaders(name: str) -> dict[str, int]:
    group = Collection(name).get_replicas().groups[0]
    return {s.channel_name: s.shard_leader for s in group.shards}


def test_a_joining_query_node_takes_over_a_shard_delegator_without_a_read_gap(cluster):
    connections.connect(uri=cluster.uri)
    c = MilvusClient(cluster.uri)

    os.kill(cluster.pid("querynode-2"), signal.SIGKILL)
    wait_for("querynode-2 gone", lambda: not cluster.alive("querynode-2"), 10)

    name = flat_collection(c, "deleg_balance", DIM, shards=2)
    # Sealed segments too, so the new delegator must receive the sealed routing.
    c.insert(name, [{"id": i, "v": vector(i).tolist()} for i in range(SEALED_ROWS)])
    c.flush(name)
    c.load_collection(name, timeout=120)

    before = wait_for("both delegators on the one live query node",
                      lambda: (lambda l: l if len(l) == 2 and len(set(l.values())) == 1 else None)(leaders(name)), 60)
    alone = next(iter(before.values()))

    writer = Writer(cluster.uri, name, SEALED_ROWS)
    checker = Checker(cluster.uri, name, writer)
    log = Path(cluster.run) / "querycoord-1.log"
    log_start = log.stat().st_size if log.exists() else 0
    writer.start()
    checker.start()
    try:
        wait_for("reads answered before the restart", lambda: checker.ok >= 5, 60)
        restart = time.monotonic()
        cluster.up()
        assert cluster.alive("querynode-2")
        up = time.monotonic()
        # A flush while the delegator moves: the handoff must reach both delegators.
        c.flush(name)
        spread = wait_for("a shard leader on each query node",
                          lambda: (lambda l: l if len(set(l.values())) == 2 else None)(leaders(name)), 90, 0.05)
        done = time.monotonic()
        ok_at_switch = checker.ok
        wait_for("reads after the move", lambda: checker.ok >= ok_at_switch + 10, 60)
    finally:
        checker.stop()
        writer.stop()

    moves = []
    if log.exists():
        with log.open(errors="replace") as f:
            f.seek(log_start)
            for line in f:
                line = re.sub(r"\x1b\[[0-9;]*m", "", line)  # the log is coloured
                if "shard delegator moved for balance" in line and name_collection_matches(line, c, name):
                    moves.append({k: v for k, v in re.findall(r"(switch_ms|move_ms)=(?:Some\()?(\d+)", line)})
    print(f"restart {up - restart:.1f} s; leader on the new node {done - up:.2f} s after it was up; "
          f"moves {moves}; {checker.ok} exact reads, {writer.acked - SEALED_ROWS} rows written meanwhile")

    assert not writer.errors, writer.errors[:3]
    assert not checker.wrong, checker.wrong[:3]
    assert not checker.errors, checker.errors[:3]
    assert alone in spread.values()
    newcomer = (set(spread.values()) - {alone}).pop()

    # The distribution as users see it: each node leads one shard and holds data of it.
    group = Collection(name).get_replicas().groups[0]
    assert {s.shard_leader for s in group.shards} == {alone, newcomer}
    for s in group.shards:
        assert s.shard_leader in s.shard_nodes
    infos = utility.get_query_segment_info(name)
    assert sum(s.num_rows for s in infos if len(s.nodeIds) == 1) >= SEALED_ROWS
    # Every acknowledged row, exactly once.
    total = c.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]
    assert total == writer.acked
    c.drop_collection(name)
    connections.disconnect("default")


def name_collection_matches(line: str, c: MilvusClient, name: str) -> bool:
    """Whether a querycoord log line is about this test's collection (by id)."""
    cid = c.describe_collection(name)["collection_id"]
    return f"collection={cid}" in line
