"""`weir k8s FILE`: Kubernetes manifests from the same release YAML that `weir apply` takes.

One pod holds the edge and one sidecar per pool and device of the release, sharing an emptyDir
for the sidecars' unix sockets; Kubernetes' GPU device plugin hands each sidecar container one
GPU, which that container sees as device 0. Rate limits are enforced by each edge replica on its
own: a limit keyed `global` is divided by the replica count here so the fleet keeps the total.
Every container names its command (`command: [weir]`, the image's ENTRYPOINT too) and its `args`
are a `weir` command line, checked by a test against the CLI's own parsers. The release is an
immutable ConfigMap named after its revision and text (`release_configmap_name`), named by the
pod template: a release changes by rolling out a new ReplicaSet, never under a pod.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from typing import Any

import yaml

from scripts.args import add_release_file
from scripts.fleet.pools import pool_sidecars
from scripts.k8s.pod import (
    APP,
    LABELS,
    edge_container,
    metrics_port,
    sidecar_container,
    view_container,
)
from scripts.k8s.pod import RELEASE_DIR as RELEASE_DIR  # the ConfigMap's mount, for callers
from scripts.k8s.scaling import AUTOSCALERS, PROMETHEUS, autoscaling
from scripts.release import LoadedRelease, Release, ReleaseError, load_release

DRAIN_S = 10  # preStop pause: endpoints controllers drop the pod before the edge stops accepting


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the release in the ConfigMap) as readable `|` blocks, and no YAML
    anchors: the documents share dicts (the labels), which PyYAML would print as `&id001` /
    `*id001`; every manifest is written out in full instead."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def per_replica_rate(per_second: float, replicas: int) -> str:
    """A global limit divided across replicas, in requests a minute (never below one)."""
    return f"{max(1, math.floor(per_second * 60 / replicas))}r/m"


def fleet_release(loaded: LoadedRelease, replicas: int, gpus_per_pod: int) -> str:
    """The release text each replica applies.

    Global rate limits are split across the replicas, and `devices: auto` becomes the pod's
    GPU list: the edge container sees no GPU, yet must find the sidecars' sockets.
    """
    raw = yaml.safe_load(loaded.text)
    changed = False
    if loaded.release.sidecars.devices == "auto":
        raw.setdefault("sidecars", {})["devices"] = list(range(gpus_per_pod))
        changed = True
    for name, model in loaded.release.models.items():
        limit = model.rate_limit
        if limit and limit.key == "global" and replicas > 1:
            raw["models"][name]["rate_limit"]["rate"] = per_replica_rate(limit.per_second, replicas)
            changed = True
    return yaml.safe_dump(raw, sort_keys=False) if changed else loaded.text


def release_configmap_name(revision: int, text: str) -> str:
    """`weir-release-<revision>-<sha8>`: the ConfigMap holding exactly this release text.

    The ConfigMap is immutable and the pod template names it, so a new release is a new pod
    template (a new ReplicaSet, rolled out with the Deployment's strategy), a running pod never
    sees its release file change, and `kubectl rollout undo` goes back to the previous release.
    """
    return f"{APP}-release-{revision}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def pod_annotations(release: Release, configmap: str) -> dict[str, str]:
    """The pod template's annotations: the release, and where Prometheus scrapes the pod.

    `prometheus.io/*` rather than a PodMonitor: the annotations need no operator or CRD and are
    what the common `kubernetes-pods` scrape job reads, for the edge's /metrics. They name one
    path, so the sidecars' relayed /metrics/sidecars/<sidecar> are scraped by the shipped
    Kubernetes scrape config's `weir-sidecars` job (scripts/observability/prometheus.py).
    """
    annotations = {"weir/revision": str(release.revision), "weir/release-configmap": configmap}
    port = metrics_port(release)
    if port is not None:
        annotations.update(
            {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(port),
                "prometheus.io/path": "/metrics",
            }
        )
    return annotations


def check_scrapeable(release: Release) -> None:
    """Pressure autoscaling reads the sidecars' metrics from Prometheus: refuse a release whose
    pods could not be scraped (no metrics listener) rather than render an autoscaler that never
    gets data."""
    scaling = release.scaling
    if scaling and scaling.metric != "cpu" and release.edge.metrics_listen is None:
        raise ReleaseError(
            f"scaling.metric {scaling.metric} needs the pods' metrics in Prometheus: set "
            'edge.metrics_listen (e.g. "0.0.0.0:9100"), the listener the pods expose for '
            "scraping, or use scaling.metric cpu"
        )


def device_labels(release: Release, gpus_per_pod: int) -> list[str]:
    devices = release.sidecars.devices
    if devices == "cpu":
        return ["cpu"]
    if devices == "auto":
        return [str(i) for i in range(gpus_per_pod)]
    return [str(d) for d in devices]


def manifests(
    release: Release,
    release_text: str,
    image: str,
    replicas: int,
    max_replicas: int,
    gpus_per_pod: int = 1,
    autoscaler: str = "keda",
    prometheus: str = PROMETHEUS,
) -> list[dict[str, Any]]:
    meta = {"name": APP, "labels": LABELS}
    configmap = release_configmap_name(release.revision, release_text)
    selector = {"matchLabels": LABELS}
    grace = math.ceil(release.longest_timeout) + DRAIN_S + 30
    containers = [edge_container(release, image, DRAIN_S)] + [
        sidecar_container(sidecar, image, DRAIN_S, release.edge.max_body)
        for sidecar in pool_sidecars(release, device_labels(release, gpus_per_pod))
    ]
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": configmap, "labels": LABELS},
            # Never edited in place: kubelet would swap the file under a running edge.
            "immutable": True,
            "data": {"release.yaml": release_text},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": replicas,
                "selector": selector,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
                },
                "template": {
                    "metadata": {
                        "labels": LABELS,
                        "annotations": pod_annotations(release, configmap),
                    },
                    "spec": {
                        "terminationGracePeriodSeconds": grace,
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                        "initContainers": [view_container(image)],
                        "containers": containers,
                        "volumes": [
                            {"name": "runtime", "emptyDir": {}},
                            {"name": "release", "configMap": {"name": configmap}},
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "selector": LABELS,
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta,
            "spec": {"maxUnavailable": 1, "selector": selector},
        },
        *autoscaling(release, replicas, max_replicas, autoscaler, prometheus),
    ]


def render_manifests(
    loaded: LoadedRelease,
    image: str,
    replicas: int,
    max_replicas: int,
    gpus: int,
    autoscaler: str = "keda",
    prometheus: str = PROMETHEUS,
) -> str:
    text = fleet_release(loaded, replicas, gpus)
    docs = manifests(
        loaded.release, text, image, replicas, max_replicas, gpus, autoscaler, prometheus
    )
    header = (
        f"# Weir manifests for {loaded.path.name}, revision {loaded.release.revision}, "
        f"{replicas} replica(s).\n# Rate limits hold per edge replica; `global` limits were "
        "divided by the replica count.\n# The release is the immutable ConfigMap "
        f"{release_configmap_name(loaded.release.revision, text)}, named by the pod template: "
        "keep old ones for `kubectl rollout undo`.\n# Create the admin token first: "
        "kubectl create secret generic weir-admin --from-literal=token=$(openssl rand -hex 32)\n"
    )
    return header + yaml.dump_all(docs, Dumper=_BlockDumper, sort_keys=False)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="weir k8s", description=__doc__.split("\n\n")[0])
    add_release_file(parser)
    parser.add_argument("--image", default="weir:latest", help="image built from the Dockerfile")
    parser.add_argument(
        "--replicas",
        type=int,
        help="edge+sidecar pods, the autoscaler's minimum (default: the release's scaling.min, "
        "else 2)",
    )
    parser.add_argument(
        "--max-replicas", type=int, help="autoscaler maximum (default: scaling.max, else 8)"
    )
    parser.add_argument(
        "--autoscaler",
        choices=AUTOSCALERS,
        default="keda",
        help="for scaling.metric queue or inflight: a KEDA ScaledObject (Prometheus trigger), "
        "or an HPA on a custom metric plus the prometheus-adapter rule it needs",
    )
    parser.add_argument(
        "--prometheus", default=PROMETHEUS, help="Prometheus URL KEDA queries (serverAddress)"
    )
    parser.add_argument(
        "--gpus-per-pod", type=int, default=1, help="sidecars per pod when devices is auto"
    )
    return parser


def main(argv: list[str]) -> int:
    parser_ = parser()
    args = parser_.parse_args(argv)
    try:
        loaded = load_release(args.file)
        check_scrapeable(loaded.release)
    except ReleaseError as exc:
        print(f"weir k8s: {exc}", file=sys.stderr)
        return 2  # the input is wrong (scripts/args.py EXIT_CODES)
    scaling = loaded.release.scaling
    replicas = args.replicas or (scaling.min if scaling else 2)
    max_replicas = args.max_replicas or (scaling.max if scaling else 8)
    if replicas < 1 or args.gpus_per_pod < 1:
        parser_.error("--replicas and --gpus-per-pod must be at least 1")
    sys.stdout.write(
        render_manifests(
            loaded,
            args.image,
            replicas,
            max_replicas,
            args.gpus_per_pod,
            args.autoscaler,
            args.prometheus,
        )
    )
    return 0
