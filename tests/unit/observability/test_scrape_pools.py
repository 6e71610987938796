"""Both scrape configs find every pool's sidecars, labelled sidecar, pool and device."""

from __future__ import annotations

import re

from scripts.fleet.pools import pool_sidecars
from scripts.observability.prometheus import kubernetes_scrape_config, scrape_config
from scripts.release import parse_release

RELEASE = """
revision: 1
sidecars:
  devices: cpu
  pools: {heavy-2: {cpus: [1]}}
models:
  digits: {versions: {"1": {}}}
  cnn: {versions: {"1": {}}, pool: heavy-2}
"""


def test_the_local_config_has_a_target_per_pool_sidecar() -> None:
    release = parse_release(RELEASE)
    config = scrape_config(release, "/t", pool_sidecars(release))
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "weir-sidecars"]
    assert [s["labels"] for s in job["static_configs"]] == [
        {"sidecar": "cpu", "pool": "default", "device": "cpu"},
        {"sidecar": "heavy-2-cpu", "pool": "heavy-2", "device": "cpu"},
    ]
    assert job["relabel_configs"][0]["source_labels"] == ["sidecar"]


def relabel(rules: list[dict], container: str) -> dict[str, str]:
    """Prometheus' `replace` relabelling (anchored regex, $N replacement) on a container name."""
    labels: dict[str, str] = {}
    for rule in rules:
        if rule.get("source_labels") != ["__meta_kubernetes_pod_container_name"]:
            continue
        match = re.fullmatch(rule["regex"], container)
        if rule.get("action") == "keep":
            if not match:
                return {}
            continue
        if match:
            value = rule.get("replacement", "$1")
            labels[rule["target_label"]] = match.expand(value.replace("$", "\\"))
    return labels


def test_the_kubernetes_config_reads_pool_and_device_from_the_container_name() -> None:
    (job,) = [
        j for j in kubernetes_scrape_config()["scrape_configs"] if j["job_name"] == "weir-sidecars"
    ]
    rules = job["relabel_configs"]
    assert relabel(rules, "sidecar-cpu") == {
        "sidecar": "cpu",
        "device": "cpu",
        "pool": "default",
        "__metrics_path__": "/metrics/sidecars/cpu",
    }
    assert relabel(rules, "sidecar-heavy-2-0") == {
        "sidecar": "heavy-2-0",
        "device": "0",
        "pool": "heavy-2",
        "__metrics_path__": "/metrics/sidecars/heavy-2-0",
    }
    assert relabel(rules, "edge") == {}
