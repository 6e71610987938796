"""`weir rollout` against a real `weir up` (nginx + Lua edge, a CPU sidecar, real ONNX models)
with 2-second windows: a healthy canary promoted through every step, a canary failing 5% of
its requests rolled back on its error ratio, one that never predicts a class rolled back on
the class distribution alone, and one that gets no traffic held, never promoted; a kill
switch or a manual split during a rollout pauses it."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import rollout_models
from tests.rollout_process import Background, ControllerProcess
from tests.weir_up import READY_BANNER, ROOT, WeirUp, free_port

CANARIES = {"3": "healthy", "4": "failing", "5": "no_three", "6": "healthy"}
WAIT_S = 120


class Stack(WeirUp):
    canaries = CANARIES  # version -> how it is built from digits v1

    def __init__(self, tmp: Path) -> None:
        self.port, self.admin_port = free_port(), free_port()
        self.runtime = tmp / "runtime"
        self.models = tmp / "models"
        digits = self.models / "digits"
        digits.mkdir(parents=True)
        source = ROOT / "models" / "digits" / "1"
        (digits / "1").symlink_to(source)
        for version, kind in self.canaries.items():
            if kind == "healthy":  # without v1's reference: a promotion captures its own
                ignore = shutil.ignore_patterns("reference.json")
                shutil.copytree(source, digits / version, ignore=ignore)
            else:
                build = getattr(rollout_models, kind)
                rollout_models.write(build(source / "model.onnx"), digits / version)
        self.tmp = tmp
        self.revision = 1
        self.canary = ""
        self.launch(str(self.release_file(None)))

    def release_file(self, rollout: str | None) -> Path:
        versions = ", ".join(f'"{v}": {{}}' for v in ["1", *self.canaries])
        text = f"""\
revision: {self.revision}
edge: {{listen: 127.0.0.1:{self.port}, admin_listen: 127.0.0.1:{self.admin_port}}}
sidecars: {{devices: cpu}}
models:
  digits:
    versions: {{{versions}}}
    release: {{split: {{"1": 100}}, sticky_key: header:X-User-Id, force_header: X-Weir-Version}}
    breaker: {{failures: 10000, window: 10s}}
    fallback: {{version: "1"}}
"""
        if rollout:
            text += f"    rollout: {rollout}\n"
        path = self.tmp / f"release-{self.revision}.yaml"
        path.write_text(text)
        return path

    def command(self, *release: str) -> list[str]:
        return super().command(
            *release, "--runtime-dir", str(self.runtime), "--models", str(self.models)
        )

    def weir(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "scripts.cli", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "WEIR_ADMIN_TOKEN"}
        return {**env, "WEIR_RUNTIME_DIR": str(self.runtime)}

    def apply_rollout(self, canary: str, rollout: str) -> None:
        self.canary = canary
        rollout = f'{{canary: "{canary}", {rollout}}}'
        self.revision += 1
        done = self.weir("apply", str(self.release_file(rollout)))
        assert done.returncode == 0, done.stdout + done.stderr
        self.admin("DELETE", "/admin/models/digits/split")

    def admin(self, method: str, path: str, body: Any = None) -> requests.Response:
        token = (self.runtime / "edge" / "admin.token").read_text().strip()
        return requests.request(
            method,
            f"http://127.0.0.1:{self.admin_port}{path}",
            headers={"Authorization": f"Bearer {token}"},
            json=body,
            timeout=5,
        )

    def state(self) -> dict:
        """The state file of the rollout of this stack's canary, once its controller wrote it
        (the previous rollout's stays until then; bounded)."""
        path = self.runtime / "rollouts" / "digits.json"
        deadline = time.monotonic() + 30
        while True:
            data = json.loads(path.read_text()) if path.exists() else {}
            if data.get("canary") == self.canary:
                return data
            assert time.monotonic() < deadline, f"no rollout of {self.canary} in {path}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("rollout"))
    try:
        stack.wait_for_log(READY_BANNER)
        yield stack
    finally:
        stack.kill_tree()


class Traffic(Background):
    """One client sending digits requests as fast as answers come, each as a new user (so the
    sticky split spreads them), until stopped; every answer's status and version kept."""

    def __init__(self, stack: Stack, poison_every: int | None = None, force: str = "") -> None:
        self.url = f"http://127.0.0.1:{stack.port}/v2/models/digits/infer"
        self.bodies = rollout_models.digits_bodies(poison_every)
        self.headers = {"X-Weir-Version": force} if force else {}
        self.answers: list[tuple[int, str, str]] = []  # status, version, fallback
        super().__init__()

    def _run(self) -> None:
        rng = random.Random(1)
        session = requests.Session()
        i = 0
        while not self.stop.is_set():
            body = self.bodies[i % len(self.bodies)]
            i += 1
            headers = {**self.headers, "X-User-Id": f"user-{rng.getrandbits(48)}"}
            answer = session.post(self.url, data=body, headers=headers, timeout=10)
            self.answers.append(
                (
                    answer.status_code,
                    answer.headers.get("X-Weir-Model-Version", ""),
                    answer.headers.get("X-Weir-Fallback", ""),
                )
            )


class Controller(ControllerProcess):
    """`weir rollout start digits` in the background, its lines collected."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(["digits"], stack.env(), WAIT_S)


def checks(decision: dict) -> dict[str, dict]:
    return {c["name"]: c for c in decision["checks"]}


def effective(stack: Stack) -> dict[str, float]:
    weights = stack.admin("GET", "/admin/models/digits").json()["weights"]["effective"]
    return {v: float(w) for v, w in weights.items()}


def test_a_canary_failing_five_percent_is_rolled_back_on_its_error_ratio(stack: Stack) -> None:
    stack.apply_rollout("4", "steps: [10, 50, 100], interval: 2s, min_requests: 100")
    with Traffic(stack, poison_every=20) as traffic:
        controller = Controller(stack)
        code = controller.finished()
    state = stack.state()
    assert state["status"] == "rolled_back" and code == 1, "".join(controller.lines)
    judged = [d for d in state["decisions"] if d["kind"] in ("hold", "pass", "rolled_back")]
    final = judged[-1]
    assert final["kind"] == "rolled_back" and final["weight"] == 10
    errors = checks(final)["errors"]
    assert errors["verdict"] == "fail"
    assert 0.02 <= errors["figures"]["canary_ratio"] <= 0.1, errors
    assert errors["figures"]["canary_attempts"] >= 100
    # Within one interval of reaching min_requests: every earlier window had fewer.
    for hold in judged[:-1]:
        assert hold["kind"] == "hold"
        assert checks(hold)["traffic"]["figures"]["canary_attempts"] < 100
    assert "server errors canary" in final["text"] and "ROLLED BACK" in "".join(controller.lines)
    print("".join(controller.lines))
    assert effective(stack)["4"] == 0
    # The clients never saw the canary's failures: its fallback (version 1) answered them.
    statuses = {status for status, _, _ in traffic.answers}
    assert statuses == {200}, statuses
    assert any(fb == "upstream-error" for _, _, fb in traffic.answers)
    status = stack.weir("rollout", "status", "digits")
    assert "ROLLED BACK" in status.stdout and "server errors canary" in status.stdout


def test_a_canary_that_never_predicts_a_class_is_rolled_back_on_classes_alone(
    stack: Stack,
) -> None:
    stack.apply_rollout("5", "steps: [25, 50, 100], interval: 2s, min_requests: 100")
    with Traffic(stack):
        controller = Controller(stack)
        code = controller.finished()
    state = stack.state()
    assert state["status"] == "rolled_back" and code == 1, "".join(controller.lines)
    final = state["decisions"][-1]
    by_name = checks(final)
    assert by_name["classes"]["verdict"] == "fail", by_name
    assert by_name["classes"]["figures"]["psi"] > 0.2
    # Fast and error-free: the HTTP signals alone would have passed it.
    assert by_name["errors"]["verdict"] == "pass"
    assert by_name["errors"]["figures"]["canary_ratio"] == 0
    assert effective(stack)["5"] == 0
    print("".join(controller.lines))


def test_a_canary_without_traffic_stays_inconclusive_and_a_hand_on_the_controls_pauses_it(
    stack: Stack,
) -> None:
    stack.apply_rollout("6", "steps: [50, 100], interval: 2s, min_requests: 50")
    with Traffic(stack, force="1"):  # every request forced to the stable version
        controller = Controller(stack)
        try:
            deadline = time.monotonic() + WAIT_S
            while len([d for d in stack.state()["decisions"] if d["kind"] == "hold"]) < 3:
                assert time.monotonic() < deadline, stack.state()["decisions"]
                time.sleep(0.2)
            state = stack.state()
            assert state["status"] == "running" and state["step"] == 0
            hold = [d for d in state["decisions"] if d["kind"] == "hold"][-1]
            assert checks(hold)["traffic"]["figures"]["canary_attempts"] == 0
            assert "too little traffic: canary had 0 of the 50" in hold["text"]
            assert effective(stack)["6"] == 50  # held at its step, never promoted
            metrics = stack.admin("GET", "/metrics").text
            assert 'weir_edge_version_weight{model="digits",version="6"} 50' in metrics
            status = stack.weir("rollout", "status", "digits").stdout
            assert "RUNNING step 1 of 2: canary at 50%" in status and "too little" in status
            print(status)

            # The controller dies; its state says so, and a new one goes on where it stopped.
            controller.process.kill()
            controller.process.wait(10)
            status = stack.weir("rollout", "status", "digits").stdout
            assert "NO CONTROLLER RUNS" in status, status
            holds = len(stack.state()["decisions"])
            controller = Controller(stack)
            controller.wait_for("going on with the rollout of canary 6 at step 1 (50%), running")
            while len(stack.state()["decisions"]) == holds:
                assert time.monotonic() < deadline + WAIT_S, stack.state()["decisions"]
                time.sleep(0.2)
            assert stack.state()["decisions"][-1]["kind"] == "hold"
            assert effective(stack)["6"] == 50

            # A kill switch during the rollout pauses it, saying why.
            stack.admin("POST", "/admin/models/digits/versions/6/kill").raise_for_status()
            controller.wait_for("PAUSED: the kill switch of digits/6 is on")
            assert stack.state()["status"] == "paused"
            refused = stack.weir("rollout", "resume", "digits")
            assert refused.returncode == 0  # taken; the controller refuses while it is on
            controller.wait_for("resume refused: a kill switch is still on")
            stack.admin("DELETE", "/admin/models/digits/versions/6/kill").raise_for_status()
            resumed = stack.weir("rollout", "resume", "digits")
            assert resumed.returncode == 0, resumed.stderr
            controller.wait_for("resumed: canary 6 at 50%")

            # So does a manual split.
            stack.admin("PUT", "/admin/models/digits/split", {"1": 70, "6": 30}).raise_for_status()
            controller.wait_for("someone changed it by hand")
            assert "PAUSED" in stack.weir("rollout", "status", "digits").stdout

            aborted = stack.weir("rollout", "abort", "digits", "--reason", "test over")
            assert aborted.returncode == 0, aborted.stderr
            assert controller.finished() == 1
        finally:
            controller.stop()
    state = stack.state()
    assert state["status"] == "aborted" and "test over" in state["reason"]
    assert not [d for d in state["decisions"] if d["kind"] == "pass"]
    assert effective(stack)["6"] == 0


def test_a_healthy_canary_is_promoted_through_every_step_into_an_applied_revision(
    stack: Stack,
) -> None:
    steps = [10, 25, 50, 100]
    stack.apply_rollout("3", "steps: [10, 25, 50, 100], interval: 2s, min_requests: 150")
    with Traffic(stack):
        controller = Controller(stack)
        assert controller.finished() == 0, "".join(controller.lines)
    state = stack.state()
    assert state["status"] == "promoted"
    passed = [d for d in state["decisions"] if d["kind"] == "pass"]
    assert [d["weight"] for d in passed] == steps[:-1]
    for decision in passed:
        by_name = checks(decision)
        assert set(by_name) == {"errors", "p99", "confidence", "classes"}
        assert all(c["verdict"] == "pass" for c in by_name.values())
        assert by_name["errors"]["figures"]["canary_attempts"] >= 150
        assert by_name["classes"]["figures"]["psi"] is not None
    # The final split is an applied revision, and the change to commit was printed.
    revision = state["final_revision"]
    assert revision == stack.revision + 1
    history = stack.weir("history").stdout
    assert f"{revision}" in history
    status = stack.admin("GET", "/admin/models/digits").json()
    assert status["weights"]["override"] is None
    assert float(status["weights"]["effective"]["3"]) == 100
    out = "".join(controller.lines)
    assert f"revision: {revision}" in out and 'release.split: {"1": 0, "3": 100' in out
    text = stack.weir("rollout", "status", "digits").stdout
    print(out, text)
    assert "PROMOTED" in text and "steps passed: 10%, 25%, 50%" in text
    # Its drift reference: what it predicted in the windows that passed.
    reference = json.loads((stack.models / "digits" / "3" / "reference.json").read_text())
    assert reference["source"].startswith("weir rollout: canary 3's windows that passed")
    assert reference["rows"] >= 300 and set(reference["classes"]) == {str(c) for c in range(10)}
    assert "its drift reference:" in state["decisions"][-1]["reference"]
