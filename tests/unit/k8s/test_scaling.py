"""`scaling:` in the release picks the autoscaler `weir k8s` renders; each is validated offline:
HPAs and ConfigMaps with kubernetes-validate --strict, KEDA's ScaledObject and the
prometheus-adapter rules with JSON schemas written from their documented specs (KEDA's CRDs are
not in kubernetes-validate), and every PromQL query with `promtool check rules`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from scripts.k8s import manifests as k8s
from scripts.k8s import scaling
from scripts.release import ReleaseError, load_release

SCHEMAS = Path(__file__).with_name("schemas")
ROOT = Path(__file__).resolve().parents[3]
K8S_VERSION = "1.30.0"


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text())


METRICS_LISTEN = "  metrics_listen: 0.0.0.0:9100\n"


def with_metrics_listen(text: str) -> str:
    """release.yaml with a metrics listener (what pressure autoscaling needs in a pod)."""
    return text.replace("edge:\n", "edge:\n" + METRICS_LISTEN, 1)


def render(tmp_path: Path, scaling_yaml: str | None, *flags: str) -> list[dict]:
    text = (ROOT / "release.yaml").read_text()
    if scaling_yaml:
        text = with_metrics_listen(text) + f"scaling: {scaling_yaml}\n"
    path = tmp_path / "release.yaml"
    path.write_text(text)
    out = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "k8s", str(path), *flags],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    return list(yaml.safe_load_all(out))


def kinds(docs: list[dict]) -> list[str]:
    return [d["kind"] for d in docs]


def validate_core(docs: list[dict]) -> None:
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(doc, schema("keda-scaledobject.json"))
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_without_scaling_it_is_the_cpu_hpa(tmp_path):
    docs = render(tmp_path, None)
    (hpa,) = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    validate_core(docs)


def test_cpu_scaling_takes_the_releases_target_and_bounds(tmp_path):
    docs = render(tmp_path, "{metric: cpu, target: 60, min: 3, max: 5}")
    (hpa,) = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 5)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 3
    validate_core(docs)


@pytest.mark.parametrize("metric", ["queue", "inflight"])
def test_keda_scales_on_a_prometheus_trigger(tmp_path, metric):
    docs = render(tmp_path, f"{{metric: {metric}, target: 2.5, min: 2, max: 10}}")
    assert "HorizontalPodAutoscaler" not in kinds(docs)  # KEDA makes its own
    (so,) = [d for d in docs if d["kind"] == "ScaledObject"]
    validate_core(docs)
    trigger = so["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["threshold"] == "2.5"
    assert trigger["metricType"] == ("Value" if metric == "queue" else "AverageValue")
    assert trigger["metadata"]["query"] == scaling.pressure_query(metric)
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (2, 10)
    assert so["spec"]["scaleTargetRef"]["name"] == "weir"


@pytest.mark.parametrize("metric", ["queue", "inflight"])
def test_prometheus_adapter_gets_an_hpa_on_a_custom_metric_and_its_rule(tmp_path, metric):
    docs = render(
        tmp_path, f"{{metric: {metric}, target: 1.5, min: 1, max: 4}}",
        "--autoscaler", "prometheus-adapter",
    )  # fmt: skip
    validate_core(docs)
    (hpa,) = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    pods = hpa["spec"]["metrics"][0]["pods"]
    assert pods["target"] == {"type": "AverageValue", "averageValue": "1500m"}
    (rules_cm,) = [d for d in docs if d["metadata"]["name"] == "weir-prometheus-adapter-rules"]
    rules = yaml.safe_load(rules_cm["data"]["config.yaml"])
    jsonschema.validate(rules, schema("prometheus-adapter-rules.json"))
    (rule,) = rules["rules"]
    assert rule["name"]["as"] == pods["metric"]["name"]


def test_the_schemas_refuse_what_keda_would(tmp_path):
    docs = render(tmp_path, "{metric: queue, target: 2, min: 1, max: 4}")
    (so,) = [d for d in docs if d["kind"] == "ScaledObject"]
    del so["spec"]["triggers"][0]["metadata"]["serverAddress"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(so, schema("keda-scaledobject.json"))


def test_scaling_bounds_are_checked_by_the_release_schema(tmp_path):
    path = tmp_path / "release.yaml"
    path.write_text((ROOT / "release.yaml").read_text() + "scaling: {metric: queue, target: 2, "
                    "min: 5, max: 2}\n")  # fmt: skip
    with pytest.raises(ReleaseError, match=r"scaling\.max"):
        load_release(path)
    assert k8s.main([str(path)]) == 2


@pytest.mark.skipif(shutil.which("promtool") is None, reason="apt-get install -y prometheus")
def test_every_scaling_query_is_valid_promql(tmp_path):
    exprs = [scaling.pressure_query(m) for m in ("queue", "inflight")]
    for metric in ("queue", "inflight"):
        rule = scaling.adapter_rule(metric)["metricsQuery"]
        exprs.append(rule.replace("<<.LabelMatchers>>", 'namespace="x"').replace(
            "<<.GroupBy>>", "namespace, pod"))  # fmt: skip
    groups = {"groups": [{"name": "check", "rules": [
        {"record": f"weir:check_{i}", "expr": e} for i, e in enumerate(exprs)]}]}  # fmt: skip
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(groups))
    checked = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("metric", ["queue", "inflight"])
def test_pressure_scaling_without_a_metrics_listener_is_refused(tmp_path, capsys, metric):
    path = tmp_path / "release.yaml"
    path.write_text((ROOT / "release.yaml").read_text() + f"scaling: {{metric: {metric}, "
                    "target: 2}\n")  # fmt: skip
    assert k8s.main([str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "edge.metrics_listen" in captured.err


@pytest.mark.parametrize("metric", ["queue", "inflight"])
def test_the_autoscaler_queries_read_the_scraped_sidecars_job(tmp_path, metric):
    keda = render(tmp_path, f"{{metric: {metric}, target: 2}}")
    (so,) = [d for d in keda if d["kind"] == "ScaledObject"]
    assert scaling.SIDECARS_JOB in so["spec"]["triggers"][0]["metadata"]["query"]
    rule = scaling.adapter_rule(metric)
    assert scaling.SIDECARS_JOB in rule["seriesQuery"]
    assert f"{scaling.SIDECARS_JOB},<<.LabelMatchers>>" in rule["metricsQuery"]
