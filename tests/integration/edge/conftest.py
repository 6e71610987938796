"""Real nginx + Lua in front of real upstream processes, in a temporary runtime directory.

Every process here is started by these fixtures and stopped by its PID; ports are picked
dynamically on loopback.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.edge.errors import DeployError
from scripts.edge.nginx import NginxNotFound, find_nginx
from scripts.runtime import RuntimeDir
from scripts.stack.edge import Edge

HERE = Path(__file__).resolve().parent
TOKEN = "test-token-0123456789"
SIDECAR = (sys.executable, "-m", "scripts.cli", "sidecar", "--device", "cpu")

try:
    find_nginx()
except NginxNotFound as exc:  # pragma: no cover - depends on the machine
    pytest.skip(str(exc), allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Upstream:
    """tests/integration/edge/fake_upstream.py in its own process."""

    def __init__(self, version: str, port: int | None = None) -> None:
        self.version = version
        self.port = port or 0  # 0: the upstream binds a free port itself and says which
        self.process: subprocess.Popen[str] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Upstream:
        deadline = time.monotonic() + 10
        while True:
            process = subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "fake_upstream.py"),
                    "--port",
                    str(self.port),
                    "--version",
                    self.version,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert process.stdout is not None
            line = process.stdout.readline()
            if line.startswith("READY"):
                self.port = int(line.split()[1])
                self.process = process
                return self
            process.wait(5)
            if time.monotonic() > deadline:  # the port is still held by a dying process
                raise RuntimeError(
                    f"upstream {self.version} did not start: {process.stderr.read()}"
                )
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no goodbye, exactly like a crashed sidecar."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        self.process = None

    def control(self, **changes: Any) -> dict[str, Any]:
        return request("POST", self.address, "/_control", changes)[2]

    def count(self, what: str = "count") -> Any:
        """Infer requests served ("count"), readiness checks ("ready"), last paths ("paths")."""
        return request("GET", self.address, "/_control")[2][what]


def request(
    method: str,
    address: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, dict[str, str], Any]:
    """One request on a fresh connection: (status, headers lower-cased, JSON or text)."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    payload = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    try:
        conn.request(method, path, body=payload, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    hdrs = {k.lower(): v for k, v in response.getheaders()}
    try:
        data: Any = json.loads(raw)
    except ValueError:
        data = raw.decode(errors="replace")
    return response.status, hdrs, data


class Client:
    """A keep-alive HTTP/1.1 client for one thread (load loops).

    Like urllib3 (requests), it checks a pooled connection before reusing it: a reload closes
    idle keep-alive connections, and a well-behaved client reconnects instead of writing into
    a connection the server already closed.
    """

    def __init__(self, address: str, timeout: float = 10) -> None:
        host, port = address.rsplit(":", 1)
        self.host, self.port, self.timeout = host, int(port), timeout
        self.conn: http.client.HTTPConnection | None = None

    def post(
        self, path: str, body: bytes = b"{}", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        if self.conn is not None and self.conn.sock is not None:
            readable, _, _ = select.select([self.conn.sock], [], [], 0)
            if readable:  # EOF (or stray bytes) on an idle connection: it is gone
                self.close()
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.conn.request("POST", path, body=body, headers=headers or {})
            response = self.conn.getresponse()
            data = response.read()
        except Exception:
            self.close()
            raise
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class EdgeHarness:
    """A running edge for one test: its release, addresses and helpers."""

    runtime: RuntimeDir
    tmp: Path
    listen: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    admin: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    edge: Edge | None = None
    revision: int = 0

    def release(self, models: dict[str, Any], **edge: Any) -> dict[str, Any]:
        self.revision += 1
        return {
            "revision": self.revision,
            "edge": {"listen": self.listen, "admin_listen": self.admin, "workers": 2, **edge},
            "sidecars": {"devices": "cpu"},
            "models": models,
        }

    def write(self, release: dict[str, Any], name: str | None = None) -> Path:
        path = self.tmp / (name or f"release-{release['revision']}.yaml")
        path.write_text(yaml.safe_dump(release, sort_keys=False))
        return path

    def start(self, models: dict[str, Any], **edge: Any) -> EdgeHarness:
        """Start the edge; when another process took one of its free ports between free_port()
        and nginx's bind(), start afresh (a new runtime directory) on new ports."""
        fresh = not self.runtime.root.exists()
        for attempt in range(5):
            path = self.write(self.release(models, **edge))
            try:
                self.edge = Edge(self.runtime).start(path)
                return self
            except DeployError as exc:
                if not fresh or attempt == 4 or "Address already in use" not in str(exc):
                    raise
            shutil.rmtree(self.runtime.root)
            self.revision -= 1
            self.listen, self.admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        raise AssertionError("unreachable")

    def restart(self) -> None:
        assert self.edge is not None
        self.edge.stop()
        self.edge = Edge(self.runtime).start()

    def stop(self) -> None:
        if self.edge is not None:
            self.edge.stop()
            self.edge = None

    def infer(
        self,
        model: str,
        version: str | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> tuple[int, dict[str, str], Any]:
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
        return request("POST", self.listen, path, body if body is not None else {}, headers)

    def admin_call(
        self, method: str, path: str, body: Any = None, token: str | None = TOKEN
    ) -> tuple[int, dict[str, str], Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return request(method, self.admin, path, body, headers)

    def status(self) -> dict[str, Any]:
        status, _, data = self.admin_call("GET", "/admin/status")
        assert status == 200, data
        return data

    def breaker(self, model: str, version: str) -> str:
        return self.status()["models"][model]["versions"][version]["breaker"]["state"]

    def workers(self, expected: int = 2) -> list[int]:
        """The edge's worker PIDs, once all `expected` workers are up."""
        assert self.edge is not None
        deadline = time.monotonic() + 5
        while len(pids := self.edge.worker_pids()) != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return pids

    def metrics(self, *expected: str) -> str:
        """The edge's Prometheus text, once it holds every `expected` piece: workers flush
        their counters to the shared dict every 0.5 s. Bounded: after 10 s the text as it is
        (the caller's assertion then shows it)."""
        deadline = time.monotonic() + 10
        while True:
            status, _, data = self.admin_call("GET", "/metrics")
            assert status == 200
            if all(piece in data for piece in expected) or time.monotonic() > deadline:
                return data
            time.sleep(0.05)


@pytest.fixture
def socket_sidecar(harness: EdgeHarness) -> Iterator[subprocess.Popen[bytes]]:
    """A real `weir sidecar` (one worker) on the sample models, listening on the unix socket
    the runtime directory names for the CPU; SIGINT at teardown, SIGKILL if it lingers."""
    harness.runtime.ensure()
    log = (harness.tmp / "sidecar.log").open("wb")
    socket = harness.runtime.sidecar_socket("cpu")
    models = HERE.parents[2] / "models"
    process = subprocess.Popen(
        [*SIDECAR, "--models", str(models), "--socket", str(socket), "--workers", "1"],
        cwd=HERE.parents[2],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield process
    if process.poll() is None:
        os.kill(process.pid, signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(5)
    log.close()


@pytest.fixture
def upstreams() -> Iterator[dict[str, Upstream]]:
    """Start with `upstreams["2"] = Upstream("2").start()`; all are killed at teardown."""
    started: dict[str, Upstream] = {}
    yield started
    for upstream in started.values():
        upstream.kill()


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EdgeHarness]:
    monkeypatch.setenv("WEIR_ADMIN_TOKEN", TOKEN)
    runtime = RuntimeDir(tmp_path / "rt")
    h = EdgeHarness(runtime=runtime, tmp=tmp_path)
    yield h
    h.stop()


def two_versions(ups: dict[str, Upstream], **overrides: Any) -> dict[str, Any]:
    """A `digits` model with versions 1 and 2 on their own upstreams."""
    for version in ("1", "2"):
        if version not in ups:
            ups[version] = Upstream(version).start()
    model: dict[str, Any] = {
        "versions": {
            "1": {"upstreams": [ups["1"].address]},
            "2": {"upstreams": [ups["2"].address]},
        },
        "release": {
            "split": {"1": 50, "2": 50},
            "sticky_key": "header:X-User-Id",
            "force_header": "X-Weir-Version",
        },
        "breaker": {
            "failures": 3,
            "window": "10s",
            "open_for": "1s",
            "max_open_for": "4s",
            "probes": 2,
        },
        "fallback": {"version": "1"},
        "timeout": "1s",
    }
    model.update(overrides)
    return {"digits": model}


class Tools:
    """The helpers above, for test modules (importlib mode cannot import conftest)."""

    Upstream = Upstream
    Client = Client
    request = staticmethod(request)
    free_port = staticmethod(free_port)
    two_versions = staticmethod(two_versions)
    TOKEN = TOKEN


@pytest.fixture
def tools() -> type[Tools]:
    return Tools
