"""`weir k8s` with sidecar pools: one sidecar container per pool and device, each with its
pool's limits and view, passing strict offline validation; the edge routes to their sockets."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import yaml

from scripts.k8s import manifests as k8s
from scripts.k8s.pod import POD_RUNTIME
from scripts.release import load_release
from tests.unit.k8s.test_k8s import K8S_VERSION, by_kind, parses

POOLS = """
  pools:
    light: {workers: 1, cpus: [0], memory: 512m}
    heavy: {workers: 2, cpus: [1, 2, 3, 4], memory: 3g}
"""


def docs(tmp_path: Path, devices: str = "cpu", gpus: int = 1) -> list[dict]:
    text = Path("release.yaml").read_text().replace("devices: auto", f"devices: {devices}")
    text = text.replace("sidecars:\n", "sidecars:" + POOLS, 1)
    text = text.replace("    timeout: 5s\n", "    timeout: 5s\n    pool: heavy\n", 1)
    text = text.replace("    timeout: 2s\n", "    timeout: 2s\n    pool: light\n", 1)
    text = text.replace("    timeout: 4s\n", "    timeout: 4s\n    pool: light\n", 1)  # handwriting
    path = tmp_path / "release.yaml"
    path.write_text(text)
    out = k8s.render_manifests(load_release(path), "weir:test", 1, 2, gpus)
    return list(yaml.safe_load_all(out))


def sidecars(documents: list[dict]) -> dict[str, dict]:
    pod = by_kind(documents, "Deployment")["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["containers"] if c["name"].startswith("sidecar-")}


def test_one_container_per_pool_with_its_limits_view_workers_and_threads(tmp_path: Path) -> None:
    documents = docs(tmp_path)
    for doc in documents:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    containers = sidecars(documents)
    assert list(containers) == ["sidecar-light-cpu", "sidecar-heavy-cpu"]  # no model in default
    light, heavy = containers["sidecar-light-cpu"], containers["sidecar-heavy-cpu"]
    assert light["resources"] == {
        "requests": {"cpu": "1", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    assert heavy["resources"] == {
        "requests": {"cpu": "4", "memory": "3Gi"},
        "limits": {"cpu": "4", "memory": "3Gi"},
    }
    for container, pool, workers, threads in ((light, "light", 1, 1), (heavy, "heavy", 2, 2)):
        args = parses(container["command"] + container["args"])
        assert args.models == str(POD_RUNTIME.root / f"repository-{pool}")
        assert args.socket == str(POD_RUNTIME.sidecar_socket(f"{pool}-cpu"))
        assert (int(args.workers), int(args.intra_op_threads)) == (workers, threads)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert args.socket in container[probe]["exec"]["command"]


def test_gpu_pools_get_one_gpu_per_container_named_by_pool_and_device(tmp_path: Path) -> None:
    containers = sidecars(docs(tmp_path, devices="auto", gpus=2))
    assert list(containers) == [
        "sidecar-light-0",
        "sidecar-light-1",
        "sidecar-heavy-0",
        "sidecar-heavy-1",
    ]
    for container in containers.values():
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert parses(container["command"] + container["args"]).device == "0"


def test_the_init_container_builds_every_pools_view(tmp_path: Path) -> None:
    pod = by_kind(docs(tmp_path), "Deployment")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert parses(init["command"] + init["args"]).file == "/etc/weir/release.yaml"


def test_without_pools_the_sidecar_is_as_before(tmp_path: Path) -> None:
    text = Path("release.yaml").read_text().replace("devices: auto", "devices: cpu")
    path = tmp_path / "release.yaml"
    path.write_text(text)
    documents = list(yaml.safe_load_all(k8s.render_manifests(load_release(path), "w:1", 1, 2, 1)))
    (container,) = sidecars(documents).values()
    assert container["name"] == "sidecar-cpu"
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"memory": "4Gi"},
    }
    args = parses(container["command"] + container["args"])
    assert args.models == str(POD_RUNTIME.repository)
    assert args.workers is None and args.intra_op_threads is None
