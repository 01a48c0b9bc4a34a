"""Balance onto a query node that comes back: kill -9 querynode-2 so querynode-1 serves
everything, restart it, and wait until querycoord has moved sealed segments onto it;
meanwhile a searcher checks every result against brute force, so a segment searched twice
or not at all during a move fails the test. The distribution is read with
`utility.get_query_segment_info` and `Collection.get_replicas`, as a user would.
"""

import os
import signal
import time

import numpy as np
from conftest import Background, flat_collection, wait_for
from pymilvus import Collection, MilvusClient, connections, utility

DIM = 16
SEGMENTS = 6
ROWS_PER_SEGMENT = 400
TOPK = 20


def exact_topk(data: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    d = ((data - q) ** 2).sum(axis=1)
    order = np.lexsort((ids, d))[:k]
    return [int(ids[i]) for i in order]


class Checker(Background):
    """Searches until stopped; every answer must equal the exact top-k."""

    def __init__(self, uri: str, name: str, data: np.ndarray, ids: np.ndarray):
        super().__init__()
        self.uri, self.name, self.data, self.ids = uri, name, data, ids
        self.ok = 0
        self.errors: list[str] = []
        self.wrong: list[str] = []

    def _run(self):
        c = MilvusClient(self.uri)
        rng = np.random.default_rng(7)
        while not self.stopped():
            q = rng.random(DIM, dtype=np.float32)
            try:
                r = c.search(self.name, data=[q.tolist()], limit=TOPK, consistency_level="Strong", timeout=10)
            except Exception as e:
                self.errors.append(repr(e))
                time.sleep(0.1)
                continue
            got = [h["id"] for h in r[0]]
            want = exact_topk(self.data, self.ids, q, TOPK)
            if len(set(got)) != len(got):
                self.wrong.append(f"duplicates in {got}")
            elif set(got) != set(want):
                self.wrong.append(f"got {sorted(got)}, want {sorted(want)}")
            else:
                self.ok += 1


def test_restarted_query_node_gets_segments_back_without_search_gaps(cluster):
    connections.connect(uri=cluster.uri)
    c = MilvusClient(cluster.uri)
    name = flat_collection(c, "balance", DIM)
    c.load_collection(name)

    rng = np.random.default_rng(3)
    total = SEGMENTS * ROWS_PER_SEGMENT
    data = rng.random((total, DIM), dtype=np.float32)
    ids = np.arange(total, dtype=np.int64)
    for s in range(SEGMENTS):
        lo, hi = s * ROWS_PER_SEGMENT, (s + 1) * ROWS_PER_SEGMENT
        c.insert(name, [{"id": int(i), "v": data[i].tolist()} for i in range(lo, hi)])
        c.flush(name)

    def settled(min_nodes: int):
        """The placement once every row is served from exactly one copy on at least
        `min_nodes` nodes whose loads are within one segment of each other."""
        infos = utility.get_query_segment_info(name)
        per_node: dict[int, int] = {}
        for s in infos:
            if len(s.nodeIds) != 1:
                return None  # a move is under way
            per_node[s.nodeID] = per_node.get(s.nodeID, 0) + s.num_rows
        if sum(per_node.values()) != total or len(per_node) < min_nodes:
            return None
        if min_nodes > 1 and max(per_node.values()) - min(per_node.values()) > ROWS_PER_SEGMENT:
            return None
        return {s.segmentID: list(s.nodeIds) for s in infos}

    # querynode-2 goes away: querynode-1 ends up holding every sealed segment.
    pid = cluster.pid("querynode-2")
    os.kill(pid, signal.SIGKILL)
    wait_for("querynode-2 gone", lambda: not cluster.alive("querynode-2"), 10)
    alone = wait_for("every segment on the remaining query node", lambda: settled(1), 90)
    remaining = {n for hs in alone.values() for n in hs}
    assert len(remaining) == 1, alone
    assert len(alone) >= SEGMENTS
    # A delegator that failover moved refuses reads until its routing is complete: the
    # checker starts once the remaining node answers.
    wait_for("searches answered by the remaining query node",
             lambda: c.search(name, data=[data[0].tolist()], limit=1, consistency_level="Strong"), 30)

    checker = Checker(cluster.uri, name, data, ids)
    checker.start()
    try:
        wait_for("searches answered before the restart", lambda: checker.ok >= 5, 30)
        restart = time.monotonic()
        cluster.up()
        assert cluster.alive("querynode-2")
        up = time.monotonic()
        spread = wait_for("segments balanced onto the restarted query node", lambda: settled(2), 90, 0.05)
        done = time.monotonic()
        ok_at_balance = checker.ok
        # Keep checking for a moment after the last move.
        wait_for("searches after the balance", lambda: checker.ok >= ok_at_balance + 5, 30)
    finally:
        checker.stop()

    print(f"restart took {up - restart:.1f} s; balanced {done - up:.2f} s after querynode-2 was up; "
          f"{checker.ok} exact searches meanwhile")
    assert not checker.wrong, checker.wrong[:3]
    assert not checker.errors, checker.errors[:3]
    per_node: dict[int, int] = {}
    for s in utility.get_query_segment_info(name):
        per_node[s.nodeID] = per_node.get(s.nodeID, 0) + s.num_rows
    assert len(per_node) == 2, per_node
    # Even to within one segment.
    assert max(per_node.values()) - min(per_node.values()) <= ROWS_PER_SEGMENT, per_node
    newcomer = ({n for hs in spread.values() for n in hs} - remaining).pop()

    replicas = Collection(name).get_replicas()
    assert len(replicas.groups) == 1
    group = replicas.groups[0]
    assert set(group.group_nodes) == remaining | {newcomer}
    assert {n for shard in group.shards for n in shard.shard_nodes} == remaining | {newcomer}
    for shard in group.shards:
        assert shard.shard_leader in remaining | {newcomer}
        assert shard.channel_name
    c.drop_collection(name)
    connections.disconnect("default")
