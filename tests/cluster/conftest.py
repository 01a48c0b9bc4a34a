"""Fixtures for the cluster tests: a cluster that `scripts/cluster.sh up` started.

`FERROVEC_CLUSTER_DIR` is its run directory (pid files); the tests kill role processes
by those PIDs and restart them with `scripts/cluster.sh up`, which starts only what is not
running. `FERROVEC_BIN` must name the binary the cluster runs (no rebuild in tests).
"""

import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from pymilvus import DataType, MilvusClient

REPO = Path(__file__).resolve().parents[2]


class Cluster:
    def __init__(self, run_dir: Path):
        self.run = run_dir
        self.uri = os.environ.get("FERROVEC_CLUSTER_URI", "http://127.0.0.1:19530")

    def pid(self, name: str) -> int:
        return int((self.run / f"{name}.pid").read_text().strip())

    def alive(self, name: str) -> bool:
        try:
            pid = self.pid(name)
            os.kill(pid, 0)
        except (OSError, ValueError):
            return False
        status = Path(f"/proc/{pid}/status")
        return not (status.exists() and "\nState:\tZ" in status.read_text())

    def up(self, proxies: int = 1) -> None:
        env = dict(os.environ, FERROVEC_CLUSTER_PROXIES=str(proxies))
        r = subprocess.run([str(REPO / "scripts" / "cluster.sh"), "up"], env=env, capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"cluster.sh up failed:\n{r.stdout}\n{r.stderr}")


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    run = os.environ.get("FERROVEC_CLUSTER_DIR")
    if not run:
        pytest.skip("FERROVEC_CLUSTER_DIR is not set: start a cluster with scripts/cluster.sh up")
    if not os.environ.get("FERROVEC_BIN"):
        raise pytest.UsageError("FERROVEC_BIN must name the binary the cluster runs")
    c = Cluster(Path(run))
    c.up()
    return c


def wait_for(what: str, fn, timeout_s: float = 60.0, interval_s: float = 0.2):
    """Calls fn until it returns a truthy value (exceptions count as not yet); bounded."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
            last = v
        except Exception as e:  # the cluster may still be recovering
            last = e
        time.sleep(interval_s)
    raise AssertionError(f"{what} not reached within {timeout_s} s (last: {last!r})")


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def flat_collection(c: MilvusClient, prefix: str, dim: int, shards: int = 1) -> str:
    """Creates a Strong-consistency collection (int64 `id`, `dim`-d float vector `v`) with a
    FLAT L2 index, so every search can be checked against brute force; not loaded."""
    name = unique(prefix)
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=dim)
    c.create_collection(name, schema=schema, num_shards=shards, consistency_level="Strong")
    ip = c.prepare_index_params()
    ip.add_index("v", index_type="FLAT", metric_type="L2")
    c.create_index(name, ip)
    return name


class Background:
    """Loops (the `loops` methods, each on its own thread) that run until `stop`; they
    check `self.stopped()` between steps."""

    loops: tuple[str, ...] = ("_run",)

    def __init__(self):
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=getattr(self, m)) for m in self.loops]

    def stopped(self) -> bool:
        return self._stop.is_set()

    def start(self):
        for t in self._threads:
            t.start()

    def stop(self, timeout_s: float = 60.0):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=timeout_s)
