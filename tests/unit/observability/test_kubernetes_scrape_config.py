"""The shipped scrape config for Kubernetes finds `weir k8s` pods and scrapes their metrics
listener: the edge's /metrics on the `metrics` port, each sidecar container's relayed metrics
at /metrics/sidecars/<device>, with namespace and pod labels; no token (the listener has none)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scripts.observability import prometheus

OBS = Path(prometheus.__file__).resolve().parent
ROOT = OBS.parents[1]


def jobs() -> dict[str, dict]:
    config = yaml.safe_load(prometheus.COMMITTED_KUBERNETES.read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_committed_kubernetes_config_matches_the_generator():
    assert prometheus.COMMITTED_KUBERNETES.read_text() == prometheus.committed_kubernetes()
    printed = subprocess.run(
        [sys.executable, "-m", "scripts.observability.prometheus", "release.yaml",
         "--kubernetes", "--scrape-interval", "15s", "--rules", "alerts.yml"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert printed == prometheus.committed_kubernetes()


def test_both_jobs_scrape_the_metrics_listener_without_a_token():
    found = jobs()
    assert set(found) == {"weir-edge", "weir-sidecars"}  # the one-machine config's job names
    for job in found.values():
        assert "authorization" not in job
        assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
        relabel = job["relabel_configs"]
        labels = {r["target_label"]: r["source_labels"] for r in relabel if "target_label" in r}
        assert labels["namespace"] == ["__meta_kubernetes_namespace"]
        assert labels["pod"] == ["__meta_kubernetes_pod_name"]
    edge = found["weir-edge"]
    assert edge["metrics_path"] == "/metrics"
    assert {
        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
        "regex": "metrics",  # scripts/k8s/pod.py's METRICS_PORT
        "action": "keep",
    } in edge["relabel_configs"]
    paths = [r for r in found["weir-sidecars"]["relabel_configs"] if r.get("target_label") == (
        "__metrics_path__")]  # fmt: skip
    assert paths[0]["replacement"] == "/metrics/sidecars/$1"


def test_the_metrics_port_name_is_the_one_weir_k8s_renders():
    from scripts.k8s.pod import METRICS_PORT

    assert METRICS_PORT == "metrics"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="apt-get install -y prometheus")
def test_promtool_checks_the_kubernetes_config(tmp_path):
    """Debian's Prometheus is built without Kubernetes discovery: there, the same config with
    file discovery in its place is checked (every relabel rule and regex)."""
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus.COMMITTED_KUBERNETES.read_text())
    (tmp_path / "alerts.yml").write_text((OBS / "alerts.yml").read_text())
    checked = subprocess.run(
        ["promtool", "check", "config", str(config)], capture_output=True, text=True
    )
    if "kubernetes_sd_configs not found" in checked.stdout + checked.stderr:
        doc = yaml.safe_load(config.read_text())
        for job in doc["scrape_configs"]:
            del job["kubernetes_sd_configs"]
            job["file_sd_configs"] = [{"files": [str(tmp_path / "targets.json")]}]
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
        checked = subprocess.run(
            ["promtool", "check", "config", str(config)], capture_output=True, text=True
        )
    assert checked.returncode == 0, checked.stdout + checked.stderr
