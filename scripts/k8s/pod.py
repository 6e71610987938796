"""The pod's containers as `weir k8s` renders them: the edge, one sidecar per pool and device,
and the `weir view` init container, with their probes, volumes and the paths they share.

A pool's sidecar container is named as `weir up` names its process (`sidecar-<device>` in the
default pool, `sidecar-<pool>-<device>` in others: `scripts/fleet/pools.py`), serves its pool's
view, and gets the pool's limits: `memory` as its memory limit and request, the number of
`cpus` as its CPU limit and request (Kubernetes places a container on CPUs itself: the indexes
only count; the CPU manager's static policy gives whole CPUs to such Guaranteed containers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scripts.fleet.pools import PoolSidecar, view_link
from scripts.release import Release
from scripts.runtime import RuntimeDir

APP = "weir"
RUNTIME_DIR = "/var/lib/weir"
RELEASE_DIR = "/etc/weir"
MODELS_DIR = "/opt/weir/models"
POD_RUNTIME = RuntimeDir(Path(RUNTIME_DIR))  # `weir view` writes each pool's view in it
LABELS = {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": "inference-edge"}
METRICS_PORT = "metrics"  # the edge's containerPort for edge.metrics_listen, by this name


def metrics_port(release: Release) -> int | None:
    """The port of the release's metrics listener, or None when it has none."""
    listen = release.edge.metrics_listen
    return int(listen.rsplit(":", 1)[-1]) if listen else None


def _http_probe(path: str, port: int, period: int, failures: int) -> dict[str, Any]:
    # The port by number: runtimes that turn probes into healthchecks (podman kube play)
    # do not resolve a port's name.
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 2,
    }


def _socket_probe(socket: str, path: str, period: int, failures: int) -> dict[str, Any]:
    # Sidecars listen on a unix socket only: the probe asks through it from inside the container.
    return {
        "exec": {"command": ["weir", "probe", "--socket", socket, "--path", path]},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 3,
    }


def view_container(image: str) -> dict[str, Any]:
    """Builds the release's view of the image's models in the pod's runtime volume before the
    sidecars start: their batching is the release's, as under `weir up`."""
    return {
        "name": "model-view",
        "image": image,
        "command": ["weir"],
        "args": [
            *("view", f"{RELEASE_DIR}/release.yaml"),
            *("--models", MODELS_DIR, "--runtime-dir", RUNTIME_DIR),
        ],
        "volumeMounts": [
            {"name": "runtime", "mountPath": RUNTIME_DIR},
            {"name": "release", "mountPath": RELEASE_DIR, "readOnly": True},
        ],
    }


def _quantity(size: int) -> str:
    """Bytes as a Kubernetes quantity, in the largest binary unit that divides them."""
    for unit, factor in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _resources(sidecar: PoolSidecar) -> dict[str, Any]:
    """The pool's limits; where it sets none, what a sidecar got before pools."""
    spec = sidecar.spec
    memory = _quantity(spec.memory) if spec.memory is not None else None
    cpu = str(len(spec.cpus)) if spec.cpus is not None else None
    requests = {"cpu": cpu or "1", "memory": memory or "1Gi"}
    limits: dict[str, Any] = {"memory": memory or "4Gi"}
    if cpu is not None:
        limits["cpu"] = cpu
    if sidecar.device != "cpu":
        limits["nvidia.com/gpu"] = 1
    return {"requests": requests, "limits": limits}


def sidecar_container(
    sidecar: PoolSidecar, image: str, drain_s: int, max_body: int
) -> dict[str, Any]:
    """One pool's sidecar on one device; `max_body` is the release's `edge.max_body`, the
    sidecar's body limit too (its `--max-body-bytes`, `WEIR_MAX_BODY_BYTES`), so both refuse
    the same requests."""
    socket = str(sidecar.socket(POD_RUNTIME))
    device = "0" if sidecar.device != "cpu" else "cpu"  # the device plugin's one GPU: index 0
    args = [
        *("sidecar", "--models", str(view_link(POD_RUNTIME, sidecar.pool))),
        *("--device", device, "--socket", socket),
        *("--max-body-bytes", str(max_body)),
    ]
    if sidecar.spec.workers is not None:
        args += ["--workers", str(sidecar.spec.workers)]
    if sidecar.spec.intra_op_threads is not None:
        args += ["--intra-op-threads", str(sidecar.spec.intra_op_threads)]
    return {
        "name": sidecar.name,
        "image": image,
        "command": ["weir"],
        "args": args,
        "env": [{"name": "WEIR_RUNTIME_DIR", "value": RUNTIME_DIR}],
        "volumeMounts": [{"name": "runtime", "mountPath": RUNTIME_DIR}],
        # Sidecars outlive the edge's drain so the edge's in-flight requests still get answers.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(drain_s + 5)]}}},
        "startupProbe": _socket_probe(socket, "/v2/health/ready", 5, 60),
        "readinessProbe": _socket_probe(socket, "/v2/health/ready", 5, 2),
        "livenessProbe": _socket_probe(socket, "/v2/health/live", 10, 3),
        "resources": _resources(sidecar),
    }


def edge_container(release: Release, image: str, drain_s: int) -> dict[str, Any]:
    port = int(release.edge.listen.rsplit(":", 1)[-1])
    ports = [{"name": "http", "containerPort": port}]
    metrics = metrics_port(release)
    if metrics is not None:
        # GET /metrics and /metrics/sidecars/<sidecar>, no token: what the cluster scrapes.
        ports.append({"name": METRICS_PORT, "containerPort": metrics})
    return {
        "name": "edge",
        "image": image,
        "command": ["weir"],
        "args": ["edge", f"{RELEASE_DIR}/release.yaml"],
        "ports": ports,
        "env": [
            {"name": "WEIR_RUNTIME_DIR", "value": RUNTIME_DIR},
            {
                "name": "WEIR_ADMIN_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": "weir-admin", "key": "token"}},
            },
        ],
        "volumeMounts": [
            {"name": "runtime", "mountPath": RUNTIME_DIR},
            {"name": "release", "mountPath": RELEASE_DIR, "readOnly": True},
        ],
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(drain_s)]}}},
        "startupProbe": _http_probe("/v2/health/ready", port, 5, 60),
        "readinessProbe": _http_probe("/v2/health/ready", port, 5, 2),
        "livenessProbe": _http_probe("/v2/health/live", port, 10, 3),
        "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}},
    }
