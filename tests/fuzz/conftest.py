"""One real `weir up` (real nginx, real sidecars, the sample models) on free ports with its own
runtime directory, shared by the HTTP fuzz and the barrage; started and stopped by PID.

The release is the sample one with digits limited per `X-Api-Key` header (so a request without
it is a case of its own) and `edge.max_body: 24m`, above the sidecars' default 16m (bodies
between the two limits are a case too).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import requests

from tests.processes import alive, descendants
from tests.weir_up import READY_BANNER, ROOT, WeirUp, free_port

LONG = os.environ.get("WEIR_FUZZ") == "long"
MODELS = ("cnn", "digits")
# Growth allowed over a fuzz or barrage run, per group of processes (all workers together).
# A sidecar worker reads a body of up to max_body and parses it; Python and numpy keep some of
# what they freed, so a warm worker may end a few body-sized buffers larger and then stays
# flat; nginx buffers bodies in files past its memory buffers. A leak per request would be
# hundreds of requests times a body (the barrage sends 17 MB ones), far past these.
RSS_GROWTH_MIB = {"edge": 32, "sidecar": 96}


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Stack(WeirUp):
    def __init__(self, tmp: Path) -> None:
        self.port, self.admin_port = free_port(), free_port()
        self.runtime = tmp / "runtime"
        text = (ROOT / "release.yaml").read_text()
        text = text.replace("listen: 8080", f"listen: 127.0.0.1:{self.port}")
        text = text.replace("127.0.0.1:9901", f"127.0.0.1:{self.admin_port}")
        text = text.replace("devices: auto", "devices: cpu")
        text = text.replace("max_body: 16m", "max_body: 24m")
        text = text.replace(
            "rate_limit: {rate: 2000r/s, burst: 200, key: remote_addr}",
            "rate_limit: {rate: 2000r/s, burst: 400, key: header:X-Api-Key}",
        )
        assert "max_body: 24m" in text and "header:X-Api-Key" in text
        self.release = tmp / "release.yaml"
        self.release.write_text(text)
        self._examples: dict[str, bytes] = {}
        self.launch(str(self.release), "--runtime-dir", str(self.runtime))

    def wait_ready(self, timeout_s: float = 240) -> None:
        self.wait_for_log(READY_BANNER, timeout_s)

    def stop(self) -> None:
        self.kill_tree()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def token(self) -> str:
        return (self.runtime / "edge" / "admin.token").read_text().strip()

    @property
    def state_file(self) -> Path:
        return self.runtime / "edge" / "state.json"

    def admin(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(
            method,
            self.admin_url + path,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
            **kwargs,
        )

    def status(self) -> dict:
        response = self.admin("GET", "/admin/status")
        assert response.status_code == 200, response.text
        return response.json()

    def example(self, model: str) -> bytes:
        """An ordinary request for `model`, from its metadata (zeros of its input shapes)."""
        if model not in self._examples:
            meta = requests.get(f"{self.url}/v2/models/{model}", timeout=10).json()
            inputs = []
            for spec in meta["inputs"]:
                shape = [1 if d < 0 else d for d in spec["shape"]]
                size = 1
                for d in shape:
                    size *= d
                inputs.append(
                    {"name": spec["name"], "shape": shape, "datatype": spec["datatype"]}
                    | {"data": [0] * size}
                )
            self._examples[model] = json.dumps({"id": "ordinary", "inputs": inputs}).encode()
        return self._examples[model]

    def processes(self) -> dict[str, list[int]]:
        """The edge's nginx processes and the sidecars' gunicorn processes, by PID."""
        found: dict[str, list[int]] = {"edge": [], "sidecar": []}
        for pid in sorted(descendants(self.process.pid)):
            line = cmdline(pid)
            if "nginx" in line:
                found["edge"].append(pid)
            elif "gunicorn" in line or "sidecar" in line:
                found["sidecar"].append(pid)
        return found

    def rss_mib(self) -> dict[str, float]:
        return {
            group: sum(rss_kib(pid) for pid in pids if alive(pid)) / 1024
            for group, pids in self.processes().items()
        }


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory):
    stack = Stack(tmp_path_factory.mktemp("fuzz-up"))
    try:
        stack.wait_ready()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def prepared(stack: Stack):
    """The tests' own changes before any hostile traffic: digits 2 killed, a live split on
    digits. What must still hold afterwards (assert_healthy_after)."""
    assert stack.admin("POST", "/admin/models/digits/versions/2/kill").status_code == 200
    assert stack.admin("PUT", "/admin/models/digits/split", json={"1": 70, "2": 30}).ok
    time.sleep(0.2)
    return stack


def infer(stack: Stack, model: str, path: str = "", **headers: str) -> requests.Response:
    headers.setdefault("X-Api-Key", "ordinary")
    return requests.post(
        f"{stack.url}/v2/models/{model}{path}/infer",
        data=stack.example(model),
        headers={"Content-Type": "application/json", **headers},
        timeout=10,
    )


def assert_healthy_after(stack: Stack, killed_before: dict[str, object]) -> None:
    """Every breaker closed, the kill switches set before still in force, and ordinary requests
    answered by their own version."""
    status = stack.status()
    for name, model in status["models"].items():
        for version, v in model["versions"].items():
            assert v["breaker"]["state"] == "closed", (name, version, v)
    assert killed(status) == killed_before
    # digits 2 is killed by the tests: pinned to 1 it answers 1, pinned to 2 its fallback (1).
    for model, path, version, fallback in (
        ("digits", "/versions/1", "1", ""),
        ("digits", "", "1", ""),
        ("cnn", "", "1", ""),
        ("cnn", "/versions/1", "1", ""),
        ("digits", "/versions/2", "1", "killed"),
    ):
        response = infer(stack, model, path)
        assert response.status_code == 200, (model, path, response.text)
        assert response.headers["X-Weir-Model-Version"] == version, (model, path)
        assert response.headers.get("X-Weir-Fallback", "") == fallback, (model, path)
        assert response.json()["model_name"] == model


def killed(status: dict) -> dict[str, object]:
    return {
        name: (model["killed"], sorted(v for v, s in model["versions"].items() if s["killed"]))
        for name, model in status["models"].items()
    }


def is_html(content_type: str, body: bytes) -> bool:
    head = body.lstrip()[:64].lower()
    return "html" in content_type.lower() or head.startswith((b"<html", b"<!doctype", b"<"))
