"""`weir k8s` renders manifests that pass strict offline schema validation and keep Weir's rules."""

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from scripts import cli
from scripts.k8s import manifests as k8s
from scripts.release import load_release, parse_release

K8S_VERSION = "1.30.0"


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    text = k8s.render_manifests(load_release("release.yaml"), "weir:test", 3, 8, 2)
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
    assert k8s.main([str(bad)]) == 2
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


def parses(argv: list[str]) -> object:
    """argv as the `weir` CLI's own parser reads it; fails the test where they drifted apart."""
    assert argv[0] == "weir", argv
    assert argv[1] in cli.COMMANDS, f"{argv}: no such weir command"
    try:
        return cli.parser_for(argv[1]).parse_args(argv[2:])
    except SystemExit:
        pytest.fail(f"`{' '.join(argv)}` does not parse with `weir {argv[1]}`'s parser")


def entrypoint() -> tuple[list[str], list[str]]:
    dockerfile = (Path(__file__).resolve().parents[3] / "Dockerfile").read_text()
    (entry,) = re.findall(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.M)
    (cmd,) = re.findall(r"^CMD (\[.*\])$", dockerfile, re.M)
    return json.loads(entry), json.loads(cmd)


def test_every_rendered_command_line_parses_with_the_cli_and_the_image_runs_it(docs):
    entry, _ = entrypoint()
    pod = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    containers = pod["containers"] + pod.get("initContainers", [])
    for container in containers:
        assert container["command"] == entry, container["name"]
        parses(container["command"] + container["args"])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            command = container.get(probe, {}).get("exec", {}).get("command")
            if command and command[0] == "weir":
                parses(command)
    (edge,) = [c for c in containers if c["name"] == "edge"]
    args = parses(edge["command"] + edge["args"])
    assert args.file == f"{k8s.RELEASE_DIR}/release.yaml"  # the ConfigMap's mount


def test_the_image_default_command_parses_too():
    entry, cmd = entrypoint()
    parses(entry + cmd)


def test_a_drifted_argv_fails_the_check():
    with pytest.raises(pytest.fail.Exception, match="does not parse"):
        parses(["weir", "edge", "--release", "release.yaml"])


def test_sidecars_get_the_releases_body_limit(docs):
    max_body = load_release("release.yaml").release.edge.max_body
    pod = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    for container in pod["containers"]:
        if container["name"].startswith("sidecar-"):
            args = parses(container["command"] + container["args"])
            assert int(args.max_body_bytes) == max_body


def rendered(text: str, tmp_path: Path) -> list[dict]:
    path = tmp_path / "release.yaml"
    path.write_text(text)
    return list(yaml.safe_load_all(k8s.render_manifests(load_release(path), "weir:test", 1, 2, 1)))


def release_volume(docs: list[dict]) -> str:
    pod = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "release"]
    return volume["configMap"]["name"]


def test_the_release_configmap_is_immutable_and_named_after_its_revision_and_text(docs):
    configmap = by_kind(docs, "ConfigMap")
    text = configmap["data"]["release.yaml"]
    revision = parse_release(text).revision
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    assert configmap["metadata"]["name"] == f"weir-release-{revision}-{digest}"
    assert configmap["immutable"] is True
    # The pod template names it: a new release is a new ReplicaSet, and rollout undo goes back.
    assert release_volume(docs) == configmap["metadata"]["name"]


def test_a_new_release_changes_the_pod_template_and_the_same_one_does_not(tmp_path):
    source = Path("release.yaml").read_text()
    first = rendered(source, tmp_path)
    again = rendered(source, tmp_path)
    assert by_kind(first, "Deployment") == by_kind(again, "Deployment")
    # Edited text under the same revision is another ConfigMap too: never swapped under a pod.
    edited = rendered(source.replace("timeout: 2s", "timeout: 3s", 1), tmp_path)
    assert "timeout: 3s" in by_kind(edited, "ConfigMap")["data"]["release.yaml"]
    newer = rendered(re.sub(r"^revision: \d+", "revision: 999", source, flags=re.M), tmp_path)
    names = {release_volume(d) for d in (first, edited, newer)}
    assert len(names) == 3, names
    assert release_volume(newer).startswith("weir-release-999-")
    for docs in (first, edited, newer):
        template = by_kind(docs, "Deployment")["spec"]["template"]
        assert template["metadata"]["annotations"]["weir/release-configmap"] == release_volume(docs)


def test_the_output_has_no_yaml_anchors_or_aliases():
    text = k8s.render_manifests(load_release("release.yaml"), "weir:test", 3, 8, 2)
    assert not re.search(r"[&*]id\d+", text), "YAML anchors/aliases in the output"
    docs = list(yaml.safe_load_all(text))
    assert by_kind(docs, "Deployment")["metadata"]["labels"] == k8s.LABELS


def test_a_metrics_listener_is_a_named_port_and_the_pod_says_where_to_scrape(tmp_path):
    source = Path("release.yaml").read_text()
    docs = rendered(source.replace("edge:\n", "edge:\n  metrics_listen: 9100\n", 1), tmp_path)
    template = by_kind(docs, "Deployment")["spec"]["template"]
    (edge,) = [c for c in template["spec"]["containers"] if c["name"] == "edge"]
    assert {"name": "metrics", "containerPort": 9100} in edge["ports"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9100"
    assert annotations["prometheus.io/path"] == "/metrics"
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    # Without metrics_listen: no metrics port and nothing for Prometheus to find.
    plain = by_kind(rendered(source, tmp_path), "Deployment")["spec"]["template"]
    (edge,) = [c for c in plain["spec"]["containers"] if c["name"] == "edge"]
    assert [p["name"] for p in edge["ports"]] == ["http"]
    assert not [a for a in plain["metadata"]["annotations"] if a.startswith("prometheus.io/")]
