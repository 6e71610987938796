"""`weir k8s` output with two sidecar pools, run for real with `podman kube play`: one sidecar
container per pool, each under its pool's memory and CPU limits (the kernel's own cgroup files,
read inside each container), serving only its pool's models, behind one edge."""

from __future__ import annotations

import base64
import json
import secrets
import time

import pytest
import requests

from tests.image import podman as pm
from tests.image.test_image import DIGITS, cnn_binary
from tests.image.test_kube_play import SECRET, containers, logs, ready, render

POOLS = (
    "sidecars:\n  pools:\n"
    "    light: {workers: 1, cpus: [0], memory: 768m}\n"
    "    heavy: {workers: 1, cpus: [1], memory: 1536m}\n"
)


def with_pools(text: str) -> str:
    text = text.replace("sidecars:\n", POOLS, 1)
    text = text.replace("    timeout: 2s\n", "    timeout: 2s\n    pool: light\n", 1)
    text = text.replace("    timeout: 4s\n", "    timeout: 4s\n    pool: light\n", 1)  # handwriting
    return text.replace("    timeout: 5s\n", "    timeout: 5s\n    pool: heavy\n", 1)


@pytest.fixture(scope="module")
def pod(tmp_path_factory):
    pm.skip_without_podman()
    if pm.podman("image", "exists", pm.IMAGE, check=False).returncode != 0:
        pm.build()
    tmp = tmp_path_factory.mktemp("kube-pools")
    port, metrics_port = pm.free_port(), pm.free_port()
    manifests = render(tmp, port, metrics_port, with_pools)
    pm.podman("secret", "rm", SECRET, check=False)
    token = secrets.token_hex(16)
    payload = json.dumps({"token": base64.b64encode(token.encode()).decode()})
    pm.podman("secret", "create", SECRET, "-", input=payload)
    played = pm.podman("kube", "play", str(manifests), timeout=300, check=False)
    try:
        assert played.returncode == 0, played.stdout + played.stderr
        pod = {
            "url": f"http://127.0.0.1:{port}",
            "metrics": f"http://127.0.0.1:{metrics_port}",
            "pod": played.stdout.split("Pod:")[1].split()[0],
        }
        deadline = time.monotonic() + 300
        while not ready(pod["url"]):
            assert time.monotonic() < deadline, f"the edge was never ready:\n{logs(pod)}"
            time.sleep(1)
        yield pod
    finally:
        pm.podman("kube", "down", str(manifests), check=False, timeout=180)
        pm.podman("secret", "rm", SECRET, check=False)


def cgroup_limits(container_id: str) -> tuple[int, float]:
    """(memory limit in bytes, CPUs) as the kernel holds them for the container (v1 or v2)."""
    script = (
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
        "/sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null || cat /sys/fs/cgroup/memory.max "
        "/sys/fs/cgroup/cpu.max"
    )
    memory, quota, period = pm.podman("exec", container_id, "sh", "-c", script).stdout.split()
    return int(memory), int(quota) / int(period)


def test_each_pool_is_a_container_under_its_own_limits(pod):
    found = containers(pod)
    assert {"sidecar-light-cpu", "sidecar-heavy-cpu"} <= set(found), sorted(found)
    assert "sidecar-cpu" not in found  # no model in the default pool
    for name, memory, cpus in (("light", 768, 1.0), ("heavy", 1536, 1.0)):
        container = found[f"sidecar-{name}-cpu"]
        assert container["State"]["Running"], logs(pod)
        assert cgroup_limits(container["Id"]) == (memory * 2**20, pytest.approx(cpus))


def test_each_pool_serves_only_its_models_through_the_one_edge(pod):
    digits = requests.post(f"{pod['url']}/v2/models/digits/infer", json=DIGITS, timeout=10)
    assert digits.status_code == 200 and "X-Weir-Fallback" not in digits.headers, digits.text
    body, headers = cnn_binary(2)
    cnn = requests.post(f"{pod['url']}/v2/models/cnn/infer", data=body, headers=headers, timeout=30)
    assert cnn.status_code == 200 and "X-Weir-Fallback" not in cnn.headers, cnn.text
    for name, model, other in (("light", "digits", "cnn"), ("heavy", "cnn", "digits")):
        metrics = requests.get(f"{pod['metrics']}/metrics/sidecars/{name}-cpu", timeout=5)
        assert metrics.status_code == 200
        assert f'weir_model_ready{{model="{model}",version="1"}} 1.0' in metrics.text
        assert f'model="{other}"' not in metrics.text
