"""`weir rollout start --edge A --edge B --prometheus URL`: one controller steps the weights of
two real edges (nginx + Lua, each in its own runtime directory, in front of the edge tests'
real upstream processes) and judges on a real Prometheus scraping both. Every step reaches
both; a hand on one edge's split pauses it, naming the edge; an edge that stops answering
pauses it; a rollback is retried on the edge that was down until it lands."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from scripts.edge.nginx import NginxNotFound, find_nginx
from scripts.runtime import RuntimeDir
from scripts.stack.edge import Edge
from tests.rollout_process import Background, ControllerProcess
from tests.weir_up import ROOT, free_port

TOKEN = "several-edges-token-0123456789"
UPSTREAM = ROOT / "tests" / "integration" / "edge" / "fake_upstream.py"
WAIT_S = 90

try:
    find_nginx()
except NginxNotFound as exc:  # pragma: no cover - depends on the machine
    pytest.skip(str(exc), allow_module_level=True)
pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="no Prometheus here: apt-get install -y prometheus (--edge judges from one)",
)


def start_upstream(version: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, str(UPSTREAM), "--port", "0", "--version", version],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("READY"), line
    return process, f"127.0.0.1:{line.split()[1]}"


@dataclass
class EdgeUnderTest:
    runtime: RuntimeDir
    listen: str
    admin: str
    edge: Edge | None = None

    def admin_call(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(
            method,
            f"http://{self.admin}{path}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            json=body,
            timeout=5,
        )

    def override(self) -> dict[str, float] | None:
        weights = self.admin_call("GET", "/admin/models/digits").json()["weights"]["override"]
        return None if weights is None else {v: float(w) for v, w in weights.items()}

    def effective(self) -> dict[str, float]:
        weights = self.admin_call("GET", "/admin/models/digits").json()["weights"]["effective"]
        return {v: float(w) for v, w in weights.items()}


class Fleet:
    """Two edges on one release (each its own ports), the upstreams, and a Prometheus."""

    def __init__(self, tmp: Path, rollout: str) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[Any]] = []
        self.upstreams = {}
        for version in ("1", "2"):
            process, address = start_upstream(version)
            self.procs.append(process)
            self.upstreams[version] = address
        self.edges = []
        for name in ("a", "b"):
            edge = EdgeUnderTest(
                RuntimeDir(tmp / f"edge-{name}"),
                f"127.0.0.1:{free_port()}",
                f"127.0.0.1:{free_port()}",
            )
            path = tmp / f"release-{name}.yaml"
            path.write_text(self.release(edge, rollout))
            edge.edge = Edge(edge.runtime).start(path)
            self.edges.append(edge)
        self.token_file = tmp / "token"
        self.token_file.write_text(TOKEN + "\n")
        self.token_file.chmod(0o600)
        self.prometheus = self.start_prometheus()

    def release(self, edge: EdgeUnderTest, rollout: str) -> str:
        return f"""\
revision: 1
edge: {{listen: "{edge.listen}", admin_listen: "{edge.admin}", workers: 2}}
sidecars: {{devices: cpu}}
models:
  digits:
    versions:
      "1": {{upstreams: ["{self.upstreams["1"]}"]}}
      "2": {{upstreams: ["{self.upstreams["2"]}"]}}
    release: {{split: {{"1": 100}}, sticky_key: header:X-User-Id}}
    breaker: {{failures: 10000, window: 10s}}
    fallback: {{version: "1"}}
    rollout: {{canary: "2", {rollout}}}
"""

    def start_prometheus(self) -> str:
        port = free_port()
        config = self.tmp / "prometheus.yml"
        targets = json.dumps([e.admin for e in self.edges])
        config.write_text(
            "global: {scrape_interval: 500ms, evaluation_interval: 500ms}\n"
            "scrape_configs:\n"
            "  - job_name: weir-edge\n"
            f"    authorization: {{credentials: {TOKEN}}}\n"
            f"    static_configs: [{{targets: {targets}}}]\n"
        )
        log = (self.tmp / "prometheus.log").open("w")
        self.procs.append(
            subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.tmp / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                targets_up = requests.get(f"{url}/api/v1/targets", timeout=2).json()
                active = targets_up["data"]["activeTargets"]
                if len(active) == 2 and all(t["health"] == "up" for t in active):
                    return url
            except (requests.ConnectionError, ValueError):
                pass
            time.sleep(0.25)
        raise AssertionError(
            "Prometheus never scraped both edges:\n"
            + (self.tmp / "prometheus.log").read_text()[-3000:]
        )

    def env(self) -> dict[str, str]:
        return {**os.environ, "WEIR_ADMIN_TOKEN": TOKEN}

    def weir(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "scripts.cli",
                *args,
                "--runtime-dir",
                str(self.edges[0].runtime.root),
            ],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def stop(self) -> None:
        for edge in self.edges:
            if edge.edge is not None:
                edge.edge.stop()
        for process in reversed(self.procs):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


class Controller(ControllerProcess):
    """`weir rollout start digits` stepping both edges, judged from the Prometheus."""

    def __init__(self, fleet: Fleet) -> None:
        a, b = fleet.edges
        super().__init__(
            [
                "digits", "--runtime-dir", str(a.runtime.root), "--edge", a.admin,
                "--edge", b.admin, "--token-file", str(fleet.token_file),
                "--prometheus", fleet.prometheus,
            ],
            fleet.env(),
            WAIT_S,
        )  # fmt: skip


class Traffic(Background):
    """Requests to both edges in turn, each from a new user, until stopped."""

    def __init__(self, fleet: Fleet) -> None:
        self.urls = [f"http://{e.listen}/v2/models/digits/infer" for e in fleet.edges]
        super().__init__()

    def _run(self) -> None:
        rng = random.Random(2)
        session = requests.Session()
        i = 0
        while not self.stop.is_set():
            url = self.urls[i % 2]
            i += 1
            try:
                session.post(
                    url, json={}, headers={"X-User-Id": f"u{rng.getrandbits(40)}"}, timeout=5
                )
            except requests.RequestException:  # an edge the test stopped
                time.sleep(0.05)


def until(what: str, check, log=lambda: "") -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"{what}\n{log()[-4000:]}"
        time.sleep(0.1)


def state(fleet: Fleet) -> dict:
    return json.loads((fleet.edges[0].runtime.root / "rollouts" / "digits.json").read_text())


@pytest.fixture
def fleet(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Fleet]:
    monkeypatch.setenv("WEIR_ADMIN_TOKEN", TOKEN)  # the edges' (started from this process)
    fleet = Fleet(tmp_path, request.param)
    try:
        yield fleet
    finally:
        fleet.stop()


HALF = {"1": 50.0, "2": 50.0}


@pytest.mark.parametrize(
    "fleet", ["steps: [50, 100], interval: 3s, min_requests: 20"], indirect=True
)
def test_every_step_reaches_both_edges_and_the_canary_is_promoted(fleet: Fleet) -> None:
    a, b = fleet.edges
    with Traffic(fleet):
        controller = Controller(fleet)
        until(
            "the first step never reached both edges",
            lambda: a.override() == HALF and b.override() == HALF,
            controller.text,
        )
        code = controller.finished()
    assert code == 0, controller.text()
    s = state(fleet)
    assert s["status"] == "promoted" and s["edges"] == [a.admin, b.admin]
    passed = [d for d in s["decisions"] if d["kind"] == "pass"]
    assert [d["weight"] for d in passed] == [50]
    errors = {c["name"]: c for c in passed[0]["checks"]}["errors"]
    # Judged on the sum of both edges' traffic, from Prometheus.
    assert errors["figures"]["canary_attempts"] >= 20
    assert a.effective()["2"] == 100 and a.override() is None  # the revision, applied on A
    assert b.override() == {"1": 0.0, "2": 100.0}  # B: live until it serves that revision
    assert f"edges {b.admin} keep canary 2 at 100%" in controller.text()
    print(controller.text())


@pytest.mark.parametrize(
    "fleet", ["steps: [50, 100], interval: 2s, min_requests: 1000000"], indirect=True
)
def test_a_hand_or_a_lost_edge_pauses_and_the_rollback_lands_on_every_edge(fleet: Fleet) -> None:
    a, b = fleet.edges
    controller = Controller(fleet)
    try:
        until(
            "the first step never reached both edges",
            lambda: a.override() == HALF and b.override() == HALF,
            controller.text,
        )
        # A manual split on one edge pauses the rollout, naming that edge.
        b.admin_call("PUT", "/admin/models/digits/split", {"1": 70, "2": 30}).raise_for_status()
        controller.wait_for(f"PAUSED: on edge {b.admin}, the live split of digits is")
        assert "someone changed it by hand" in controller.text()
        assert fleet.weir("rollout", "resume", "digits").returncode == 0
        until(
            "resume did not set both edges again",
            lambda: b.override() == HALF and a.override() == HALF,
            controller.text,
        )

        # An edge that stops answering pauses it: it can neither see nor step that edge.
        assert b.edge is not None
        b.edge.stop()
        b.edge = None
        controller.wait_for(f"PAUSED: edge {b.admin}: ")
        assert "can neither see nor step it" in controller.text()
        status = fleet.weir("rollout", "status", "digits").stdout
        assert "PAUSED" in status and b.admin in status, status

        # The abort lands on A at once and is retried on B until B is back.
        assert fleet.weir("rollout", "abort", "digits", "--reason", "test over").returncode == 0
        controller.wait_for(f"NOT YET on {b.admin}")
        assert a.effective()["2"] == 0
        assert controller.process.poll() is None  # still running: B has not taken it
        assert state(fleet)["pending_edges"] == [b.admin]
        status = fleet.weir("rollout", "status", "digits").stdout
        assert f"NOT YET at 0% on {b.admin}" in status, status
        b.edge = Edge(b.runtime).start()  # back on its last revision and live state (50%)
        controller.wait_for(f"edge {b.admin} took canary 2 at 0%")
        assert controller.finished() == 1
    finally:
        controller.stop()
    s = state(fleet)
    assert s["status"] == "aborted" and s["pending_edges"] == []
    assert [d["kind"] for d in s["decisions"]][-2:] == ["aborted", "landed"]
    assert a.effective()["2"] == 0 and b.effective()["2"] == 0
    print(controller.text())
