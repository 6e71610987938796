"""The image, really built and run: limits, health, a V2 inference, a kill switch, the drain.

Tests run in file order on one container; the last one stops it with SIGTERM.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import numpy as np
import pytest
import requests

from tests.image import podman as pm

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MEMORY, CPUS = "2g", "1"
DIGITS = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]}


def cnn_binary(rows: int) -> tuple[bytes, dict[str, str]]:
    """A cnn infer request with `rows` images as one binary tensor (a few hundred ms of CPU)."""
    x = np.random.default_rng(rows).random((rows, 3, 64, 64), dtype=np.float32)
    tensor = {"name": "input", "shape": list(x.shape), "datatype": "FP32"}
    tensor["parameters"] = {"binary_data_size": x.nbytes}
    head = json.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}}).encode()
    headers = {
        "Inference-Header-Content-Length": str(len(head)),
        "Content-Type": "application/octet-stream",
    }
    return head + x.tobytes(), headers


class Container:
    def __init__(self) -> None:
        self.name = f"weir-test-{uuid.uuid4().hex[:8]}"
        self.port = pm.free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def exec(self, *argv: str, check: bool = True):
        return pm.podman("exec", self.name, *argv, check=check, timeout=60)

    def logs(self) -> str:
        done = pm.podman("logs", self.name, check=False)
        return (done.stdout + done.stderr)[-4000:]


@pytest.fixture(scope="module")
def built() -> dict[str, float]:
    pm.skip_without_podman()
    seconds, size = pm.build()
    print(f"\nimage {pm.IMAGE}: built in {seconds:.0f}s, {size / 1e6:.0f} MB")
    return {"seconds": seconds, "size": size}


@pytest.fixture(scope="module")
def container(built):
    c = Container()
    # The image's own default command (`weir up /opt/weir/release.yaml`), its port published.
    pm.podman(
        "run", "-d", "--name", c.name, "--memory", MEMORY, "--cpus", CPUS,
        "-p", f"127.0.0.1:{c.port}:8080", pm.IMAGE,
    )  # fmt: skip
    c.started = time.monotonic()
    try:
        yield c
    finally:
        pm.podman("rm", "-f", "-t", "0", c.name, check=False)


def test_the_container_runs_non_root_under_its_memory_and_cpu_limits(container):
    host = pm.inspect(container.name)["HostConfig"]
    assert host["Memory"] == 2 * 1024**3
    assert host["NanoCpus"] == 1_000_000_000
    assert container.exec("id", "-u").stdout.strip() == "10001"
    # The kernel enforces them: the container's own cgroup says so (v1 or v2).
    limits = container.exec(
        "sh", "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
        "/sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null || cat /sys/fs/cgroup/memory.max "
        "/sys/fs/cgroup/cpu.max",
    ).stdout.split()  # fmt: skip
    assert limits[0] == str(2 * 1024**3)
    assert int(limits[1]) / int(limits[2]) == pytest.approx(1.0)


def test_the_healthcheck_turns_healthy(container):
    deadline = container.started + 240
    while time.monotonic() < deadline:
        done = pm.podman("healthcheck", "run", container.name, check=False, timeout=30)
        if done.returncode == 0:
            break
        state = pm.inspect(container.name)["State"]
        assert state["Running"], f"the container exited:\n{container.logs()}"
        time.sleep(1)
    else:
        pytest.fail(f"not healthy after 240s:\n{container.logs()}")
    healthy_s = time.monotonic() - container.started
    print(f"\nhealthy {healthy_s:.1f}s after `podman run`")
    assert pm.inspect(container.name)["State"]["Health"]["Status"] == "healthy"
    assert "Weir is up." in container.logs()


def test_a_v2_inference_answers_through_the_published_port(container):
    r = requests.post(f"{container.url}/v2/models/digits/infer", json=DIGITS, timeout=10)
    assert r.status_code == 200, r.text
    (output,) = r.json()["outputs"]
    assert output["shape"] == [1, 10]
    assert sum(output["data"]) == pytest.approx(1.0, rel=1e-4)


def test_a_kill_switch_through_docker_exec_answers_with_the_fallback_then_revives(container):
    body, headers = cnn_binary(1)
    url = f"{container.url}/v2/models/cnn/infer"
    assert requests.post(url, data=body, headers=headers, timeout=10).status_code == 200
    assert "cnn" in container.exec("weir", "kill", "cnn").stdout
    killed = requests.post(url, data=body, headers=headers, timeout=10)
    assert killed.status_code == 503
    assert killed.headers.get("X-Weir-Fallback") == "killed"
    assert "resting" in killed.text
    container.exec("weir", "revive", "cnn")
    assert requests.post(url, data=body, headers=headers, timeout=10).status_code == 200


def test_sigterm_drains_the_in_flight_request_then_exits_0_within_the_grace(container):
    body, headers = cnn_binary(300)
    slow: dict[str, object] = {}

    def in_flight() -> None:
        start = time.monotonic()
        r = requests.post(
            f"{container.url}/v2/models/cnn/infer", data=body, headers=headers, timeout=60
        )
        slow.update(status=r.status_code, seconds=time.monotonic() - start)

    thread = threading.Thread(target=in_flight)
    thread.start()
    time.sleep(0.3)
    sent = time.monotonic()
    pm.podman("kill", "--signal", "TERM", container.name)
    readiness: list[object] = []
    while time.monotonic() - sent < 20:
        try:
            readiness.append(
                requests.get(f"{container.url}/v2/health/ready", timeout=5).status_code
            )
        except requests.ConnectionError:
            readiness.append("refused")
        if readiness[-1] != 200:
            break
        time.sleep(0.05)
    thread.join(60)
    code = int(pm.podman("wait", container.name, timeout=90).stdout.strip())
    took = time.monotonic() - sent
    print(f"\ndrain: in-flight {slow}, readiness after SIGTERM {readiness[-3:]}, exit {code} "
          f"{took:.1f}s after SIGTERM")  # fmt: skip
    assert slow.get("status") == 200, (slow, container.logs())
    assert readiness and readiness[-1] in (503, "refused")
    assert code == 0, container.logs()
    grace = 5 + 15  # release.yaml's longest timeout (cnn, 5s) plus `weir up`'s 15s
    assert took < grace
    assert "[up] stopped" in container.logs()
