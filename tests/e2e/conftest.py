"""End-to-end fixtures: one `ferrovec run standalone` per test session, driven with pymilvus.

The server binary comes from `FERROVEC_BIN`; without it, `$CARGO_TARGET_DIR/debug/ferrovec`
and then `<repo>/target/debug/ferrovec` are tried (build with `cargo build -p ferrovec`).
The server runs on loopback ports picked at random, in a fresh temporary data directory,
with its output in `<tmp>/server.log`. It is stopped by PID at the end (SIGTERM, then
SIGKILL). If it dies during the session, every following test fails with the tail of
that log.

With `FERROVEC_E2E_URI=http://127.0.0.1:19530` (and `FERROVEC_E2E_HEALTHZ=http://...`) the
suite runs against a server that is already running instead, e.g. the cluster of
`scripts/cluster.sh up`; it is neither started nor stopped.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEALTHZ_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
# Every test (setup + call + teardown) must finish in this time; a hung RPC (pymilvus
# retries some gRPC errors for minutes) then fails one test instead of the whole run.
PER_TEST_TIMEOUT_S = int(os.environ.get("FERROVEC_E2E_TEST_TIMEOUT", "120"))


def _binary() -> Path:
    env = os.environ.get("FERROVEC_BIN")
    if env:
        path = Path(env)
        if not path.is_file():
            raise pytest.UsageError(f"FERROVEC_BIN={env} is not a file")
        return path
    candidates = []
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "ferrovec")
    candidates.append(REPO / "target" / "debug" / "ferrovec")
    for path in candidates:
        if path.is_file():
            return path
    raise pytest.UsageError(
        "ferrovec binary not found (tried "
        + ", ".join(str(p) for p in candidates)
        + "); build it with `cargo build -p ferrovec` or set FERROVEC_BIN"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running `ferrovec run standalone` child process."""

    def __init__(self, binary: Path):
        self.dir = Path(tempfile.mkdtemp(prefix="ferrovec-e2e-"))
        self.data_dir = self.dir / "data"
        self.log_path = self.dir / "server.log"
        self.port = _free_port()
        self.http_port = _free_port()
        while self.http_port == self.port:
            self.http_port = _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.healthz_url = f"http://127.0.0.1:{self.http_port}/healthz"
        env = dict(os.environ)
        env.update(
            {
                "FERROVEC__PROXY__HOST": "127.0.0.1",
                "FERROVEC__HTTP__HOST": "127.0.0.1",
                "FERROVEC__ROOTCOORD__DML_CHANNELS": "4",
                "FERROVEC__QUERYCOORD__CHECK_INTERVAL_MS": "200",
            }
        )
        self.cmd = [
            str(binary), "run", "standalone",
            "--data-dir", str(self.data_dir),
            "--port", str(self.port),
            "--http-port", str(self.http_port),
            "--log-level", "warn",
        ]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"<cannot read {self.log_path}: {e}>"
        return "\n".join(text.splitlines()[-lines:])

    def dead_message(self) -> str:
        return (
            f"ferrovec server (pid {self.proc.pid}) exited with code {self.proc.returncode}; "
            f"last lines of {self.log_path}:\n{self.log_tail()}"
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last_err = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(self.dead_message())
            try:
                with urllib.request.urlopen(self.healthz_url, timeout=2) as r:
                    if r.status == 200:
                        return
                    last_err = f"HTTP {r.status}"
            except (urllib.error.URLError, OSError) as e:
                last_err = repr(e)
            time.sleep(0.2)
        raise RuntimeError(
            f"ferrovec did not answer 200 on {self.healthz_url} within {timeout_s} s "
            f"(last: {last_err}); log tail:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        self._log.close()
        if os.environ.get("FERROVEC_E2E_KEEP_DATA"):
            print(f"\nferrovec e2e data and server.log kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class ExternalServer:
    """A server the suite did not start (FERROVEC_E2E_URI): only its addresses."""

    def __init__(self, uri: str, healthz_url: str):
        self.uri = uri.rstrip("/")
        self.port = int(self.uri.rsplit(":", 1)[1])
        self.healthz_url = healthz_url

    def alive(self) -> bool:
        return True

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(self.healthz_url, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.healthz_url} did not answer 200 within {timeout_s} s")
            time.sleep(0.2)

    def stop(self) -> None:
        pass


_SERVER = None


@pytest.fixture(scope="session")
def server():
    global _SERVER
    external = os.environ.get("FERROVEC_E2E_URI")
    if external:
        healthz = os.environ.get("FERROVEC_E2E_HEALTHZ")
        if not healthz:
            raise pytest.UsageError("FERROVEC_E2E_URI needs FERROVEC_E2E_HEALTHZ (the proxy's /healthz URL)")
        srv = ExternalServer(external, healthz)
        srv.wait_healthy(HEALTHZ_TIMEOUT_S)
        yield srv
        return
    srv = Server(_binary())
    _SERVER = srv
    try:
        srv.wait_healthy(HEALTHZ_TIMEOUT_S)
    except Exception:
        srv.stop()
        _SERVER = None
        raise
    yield srv
    srv.stop()
    if srv.proc.returncode not in (0, -signal.SIGTERM, None):
        # A crash on shutdown is a bug too, but it must not hide the test results.
        print(f"\nferrovec exited with {srv.proc.returncode} on SIGTERM; log tail:\n{srv.log_tail()}")
    _SERVER = None


@pytest.fixture(scope="session")
def uri(server) -> str:
    return server.uri


@pytest.fixture(autouse=True)
def _server_must_stay_alive(request):
    """Fails the test if the server died before or during it, with its log tail."""
    if "server" not in request.fixturenames and "uri" not in request.fixturenames:
        # Every test here talks to the server; pull it in so the check below is meaningful.
        request.getfixturevalue("server")
    srv = _SERVER
    if srv is not None and not srv.alive():
        pytest.fail(srv.dead_message(), pytrace=False)
    yield
    if srv is not None and not srv.alive():
        pytest.fail(srv.dead_message(), pytrace=False)


class _TestTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _TestTimeout(f"test exceeded {PER_TEST_TIMEOUT_S} s (FERROVEC_E2E_TEST_TIMEOUT)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Runs before any fixture of the test is set up (session and module ones included), so a
    # dead server fails fast instead of sending pymilvus into minutes of retries.
    if _SERVER is not None and not _SERVER.alive():
        pytest.fail(_SERVER.dead_message(), pytrace=False)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(PER_TEST_TIMEOUT_S)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    signal.alarm(0)


@pytest.fixture(scope="session")
def client(uri):
    from pymilvus import MilvusClient

    c = MilvusClient(uri=uri)
    yield c
    c.close()


def unique_name(prefix: str = "e2e") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def names(client):
    """Hands out unique collection names and drops those collections after the test."""
    made = []

    def make(prefix: str = "e2e") -> str:
        n = unique_name(prefix)
        made.append(n)
        return n

    yield make
    for n in made:
        try:
            if client.has_collection(n):
                client.drop_collection(n)
        except Exception as e:  # cleanup must not hide the test's own result
            print(f"cleanup of {n} failed: {e!r}")


@pytest.fixture
def name(names) -> str:
    return names()
