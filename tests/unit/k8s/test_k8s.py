"""`weir k8s` renders manifests that pass strict offline schema validation and keep Weir's rules."""

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from scripts import k8s
from scripts.release import load_release, parse_release

K8S_VERSION = "1.30.0"


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    text = k8s.render(load_release("release.yaml"), "weir:test", 3, 8, 2)
    return list(yaml.safe_load_all(text))


def by_kind(docs: list[dict], kind: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def test_every_manifest_passes_strict_validation(docs):
    assert {d["kind"] for d in docs} == {
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_each_gpu_sidecar_gets_one_gpu_and_probes_through_its_socket(docs):
    pod = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    sidecars = [c for c in pod["containers"] if c["name"].startswith("sidecar-")]
    assert [c["name"] for c in sidecars] == ["sidecar-0", "sidecar-1"]
    for container in sidecars:
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        socket = container["args"][container["args"].index("--socket") + 1]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert socket in container[probe]["exec"]["command"]


def test_grace_period_outlasts_the_longest_request_and_the_drain(docs):
    pod = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    longest = load_release("release.yaml").release.longest_timeout
    assert pod["terminationGracePeriodSeconds"] > longest + k8s.DRAIN_S
    edge = pod["containers"][0]
    assert edge["name"] == "edge"
    assert edge["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert edge["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(k8s.DRAIN_S)]


def test_the_configmap_release_is_valid_and_divides_global_limits_by_replicas(docs):
    text = by_kind(docs, "ConfigMap")["data"]["release.yaml"]
    fleet = parse_release(text)
    source = load_release("release.yaml").release
    assert fleet.sidecars.devices == [0, 1]  # `auto` pinned to the pod's GPUs
    for name, model in source.models.items():
        limit = model.rate_limit
        if limit and limit.key == "global":
            assert fleet.models[name].rate_limit.per_second == pytest.approx(
                limit.per_second / 3, rel=0.01
            )
        elif limit:
            assert fleet.models[name].rate_limit.rate == limit.rate


def test_an_invalid_release_renders_nothing(tmp_path, capsys):
    bad = tmp_path / "release.yaml"
    bad.write_text("revision: 0\nmodels: {}\n")
    assert k8s.main([str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "revision" in captured.err


def test_the_documented_pipe_into_kubernetes_validate_passes():
    rendered = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "k8s", "release.yaml"],
        capture_output=True,
        text=True,
        check=True,
    )
    validate = Path(sys.executable).with_name("kubernetes-validate")
    checked = subprocess.run(
        [str(validate), "--strict", "-"], input=rendered.stdout, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("passed for resource") == 5
