"""Fixtures for the cluster tests: a cluster that `scripts/cluster.sh up` started.

`FERROVEC_CLUSTER_DIR` is its run directory (pid files); the tests kill role processes
by those PIDs and restart them with `scripts/cluster.sh up`, which starts only what is not
running. `FERROVEC_BIN` must name the binary the cluster runs (no rebuild in tests).
"""

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

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
