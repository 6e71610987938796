"""`weir k8s` output, run for real with `podman kube play`: probes, inferences, a restart.

The test's copy of the manifests differs from `weir k8s` output in two podman-only places: each
containerPort gets a hostPort on a free port (podman 4.3 has no --publish for kube play), and
the pod waits for its init container through a podman annotation (podman's default removes
the init container while it still runs) under restartPolicy OnFailure (podman would rerun an
"always" init container forever under Always). The admin token is a podman secret
(../shared/CONTAINERS.md).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
import yaml

from scripts.k8s import scaling
from scripts.observability import prometheus
from tests.image import podman as pm
from tests.image.test_image import DIGITS, cnn_binary

SECRET = "weir-admin"
INIT_TYPE = (
    "io.podman.annotations.init.container.type"  # the name the manifests' secretKeyRef gives
)


METRICS_PORT = 9100  # the pod's metrics listener (edge.metrics_listen), inside the pod


def render(tmp: Path, port: int, metrics_port: int, edit=lambda text: text) -> Path:
    """The test's copy of `weir k8s` output for release.yaml on the CPU (`edit`ed first)."""
    release = (pm.ROOT / "release.yaml").read_text().replace("devices: auto", "devices: cpu")
    release = edit(release)
    release = release.replace("edge:\n", f"edge:\n  metrics_listen: 0.0.0.0:{METRICS_PORT}\n", 1)
    (tmp / "release.yaml").write_text(release)
    rendered = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "k8s", str(tmp / "release.yaml"),
         "--image", pm.IMAGE, "--replicas", "1"],
        cwd=pm.ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    docs = list(yaml.safe_load_all(rendered))
    for doc in docs:
        if doc["kind"] == "Deployment":
            # podman 4.3 removes a default ("once") init container before it has exited and
            # fails the pod; "always" init containers are waited for as a kubelet does.
            doc["metadata"].setdefault("annotations", {})[INIT_TYPE] = "always"
            # ...but podman gives "always" init containers the pod's restart policy: under
            # Always it reruns `weir view` forever. OnFailure still restarts a crashed sidecar.
            doc["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
            for container in doc["spec"]["template"]["spec"]["containers"]:
                for p in container.get("ports", []):
                    p["hostPort"] = {"http": port, "metrics": metrics_port}[p["name"]]
    path = tmp / "manifests.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def pod(tmp_path_factory):
    pm.skip_without_podman()
    if pm.podman("image", "exists", pm.IMAGE, check=False).returncode != 0:
        pm.build()
    tmp = tmp_path_factory.mktemp("kube")
    port, metrics_port = pm.free_port(), pm.free_port()
    manifests = render(tmp, port, metrics_port)
    token = secrets.token_hex(16)
    pm.podman("secret", "rm", SECRET, check=False)
    payload = json.dumps({"token": base64.b64encode(token.encode()).decode()})
    pm.podman("secret", "create", SECRET, "-", input=payload)
    started = time.monotonic()
    played = pm.podman("kube", "play", str(manifests), timeout=300, check=False)
    try:
        assert played.returncode == 0, played.stdout + played.stderr
        pod_id = played.stdout.split("Pod:")[1].split()[0]
        yield {"url": f"http://127.0.0.1:{port}", "pod": pod_id, "started": started,
               "token": token, "metrics": f"http://127.0.0.1:{metrics_port}",
               "manifests": manifests}  # fmt: skip
    finally:
        pm.podman("kube", "down", str(manifests), check=False, timeout=180)
        pm.podman("secret", "rm", SECRET, check=False)


def containers(pod: dict) -> dict[str, dict]:
    """The pod's containers by their manifest name (podman names them <pod>-<name>)."""
    info = json.loads(pm.podman("pod", "inspect", pod["pod"]).stdout)
    info = info[0] if isinstance(info, list) else info
    out = {}
    for c in info["Containers"]:
        if c["Name"].endswith("-infra"):
            continue
        out[c["Name"].removeprefix(info["Name"] + "-")] = pm.inspect(c["Id"])
    return out


def logs(pod: dict) -> str:
    text = []
    for name, c in containers(pod).items():
        done = pm.podman("logs", "--tail", "30", c["Id"], check=False)
        text.append(f"--- {name}\n{done.stdout}{done.stderr}")
    return "\n".join(text)[-6000:]


def ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/v2/health/ready", timeout=3).status_code == 200
    except requests.ConnectionError:
        return False


def test_the_pod_starts_its_containers_as_the_manifests_say(pod):
    deadline = pod["started"] + 300
    while not ready(pod["url"]):
        assert time.monotonic() < deadline, f"the edge was never ready:\n{logs(pod)}"
        time.sleep(1)
    print(f"\npod ready {time.monotonic() - pod['started']:.1f}s after `podman kube play`")
    found = containers(pod)
    assert {"edge", "sidecar-cpu"} <= set(found), sorted(found)
    for name in ("edge", "sidecar-cpu"):
        c = found[name]
        assert c["State"]["Running"], name
        assert c["Config"]["User"] in ("10001", "10001:10001", ""), c["Config"]["User"]
        assert c["Config"]["Entrypoint"][:1] == ["weir"] or c["Path"] == "weir", name
    # The init container (`weir view`) ran to completion before the sidecar started.
    view = [n for n in found if "model-view" in n]
    if view:
        assert found[view[0]]["State"]["ExitCode"] == 0


def test_the_pods_probes_pass(pod):
    # podman turns each livenessProbe into the container's healthcheck: run them as a kubelet.
    for name, c in containers(pod).items():
        if not c["Config"].get("Healthcheck"):
            continue
        done = pm.podman("healthcheck", "run", c["Id"], check=False, timeout=60)
        assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}\n{logs(pod)}"
        print(f"\n{name}: probe {c['Config']['Healthcheck']['Test']} passed")


def test_inferences_answer_through_the_pod(pod):
    for user in range(10):
        r = requests.post(
            f"{pod['url']}/v2/models/digits/infer", json=DIGITS,
            headers={"X-User-Id": f"user-{user}"}, timeout=10,
        )  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["shape"] == [1, 10]
    body, headers = cnn_binary(2)
    r = requests.post(f"{pod['url']}/v2/models/cnn/infer", data=body, headers=headers, timeout=10)
    assert r.status_code == 200, r.text


def test_the_release_is_an_immutable_configmap_the_pod_template_names(pod):
    docs = list(yaml.safe_load_all(pod["manifests"].read_text()))
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert configmap["immutable"] is True
    assert configmap["metadata"]["name"].startswith("weir-release-1-")
    edge = containers(pod)["edge"]
    mounted = pm.podman("exec", edge["Id"], "cat", "/etc/weir/release.yaml").stdout
    assert mounted == configmap["data"]["release.yaml"]


def test_the_metrics_port_is_scraped_from_the_host_without_a_token(pod):
    # Traffic first, so the sidecar has inference series to relay.
    for _ in range(3):
        requests.post(f"{pod['url']}/v2/models/digits/infer", json=DIGITS, timeout=10)
    edge = requests.get(f"{pod['metrics']}/metrics", timeout=5)
    assert edge.status_code == 200, edge.text
    assert "weir_edge_config_info" in edge.text and "weir_edge_requests_total" in edge.text
    sidecar = requests.get(f"{pod['metrics']}/metrics/sidecars/cpu", timeout=5)
    assert sidecar.status_code == 200, sidecar.text
    assert "weir_queue_duration_seconds" in sidecar.text, sidecar.text[:2000]
    for path in ("/admin/status", "/admin/metrics", "/v2/health/ready"):
        denied = requests.get(
            f"{pod['metrics']}{path}", headers={"Authorization": f"Bearer {pod['token']}"},
            timeout=5,
        )  # fmt: skip
        assert denied.status_code == 404, (path, denied.status_code, denied.text)
        assert "error" in denied.json()
    print(f"\nmetrics port: /metrics {len(edge.text)} B, /metrics/sidecars/cpu "
          f"{len(sidecar.text)} B, /admin/status 404")  # fmt: skip


def test_the_admin_token_comes_from_the_secret(pod):
    edge = containers(pod)["edge"]
    checked = pm.podman(
        "exec", edge["Id"], "sh", "-c",
        'curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $WEIR_ADMIN_TOKEN" '
        "http://127.0.0.1:9901/admin/status || weir status",
        check=False,
    )  # fmt: skip
    assert checked.returncode == 0 or "200" in checked.stdout, checked.stdout + checked.stderr
    env = pm.podman("exec", edge["Id"], "printenv", "WEIR_ADMIN_TOKEN").stdout.strip()
    assert env == pod["token"]


def test_a_sigkilled_sidecar_container_is_restarted_while_the_edge_answers_fallbacks(pod):
    sidecar = containers(pod)["sidecar-cpu"]
    restarts = sidecar.get("RestartCount", 0)
    # A crash, as a kubelet sees one: the process dies under the runtime. (`podman kill` would
    # count as stopped by the user, which podman's restart policy never restarts.)
    pid = sidecar["State"]["Pid"]
    os.kill(pid, signal.SIGKILL)
    # Gone before the first request: else a request sent at once may still reach the dying
    # sidecar, and one that restarts fast enough leaves no fallback to see.
    gone = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < gone:
        time.sleep(0.01)
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + 180
    recovered = False
    while time.monotonic() < deadline:
        r = requests.post(f"{pod['url']}/v2/models/digits/infer", json=DIGITS, timeout=10)
        fallback = r.headers.get("X-Weir-Fallback")
        outcomes[f"{r.status_code} {fallback or 'model'}"] += 1
        assert r.status_code == 200 or fallback, (r.status_code, r.text)
        now = containers(pod)["sidecar-cpu"]
        if now.get("RestartCount", 0) > restarts and r.status_code == 200 and not fallback:
            recovered = True
            break
        time.sleep(0.2)
    print(f"\nafter SIGKILL of the sidecar container: {dict(outcomes)}")
    assert recovered, f"the sidecar did not come back within 180s: {outcomes}\n{logs(pod)}"
    assert sum(n for k, n in outcomes.items() if not k.endswith("model")) > 0, outcomes


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="apt-get install -y prometheus")
def test_the_shipped_kubernetes_scrape_config_scrapes_the_pod(pod, tmp_path):
    """A real Prometheus with the shipped Kubernetes scrape config, pod discovery replaced by
    file discovery listing the targets a kubelet's pod would give (Debian's Prometheus has no
    Kubernetes discovery): the edge's `metrics` port and the port-free `sidecar-cpu` container,
    the pod's IP and metrics port being the host's loopback and the metrics hostPort here. Its
    relabelling finds both, and the KEDA query `weir k8s` renders returns data."""
    host_port = pod["metrics"].rsplit(":", 1)[1]
    meta = {
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "weir",
        "__meta_kubernetes_namespace": "default",
        "__meta_kubernetes_pod_name": "weir-pod",
        "__meta_kubernetes_pod_annotation_prometheus_io_port": host_port,
    }
    discovered = [
        {"targets": [f"127.0.0.1:{host_port}"], "labels": {
            **meta, "__meta_kubernetes_pod_container_name": "edge",
            "__meta_kubernetes_pod_container_port_name": "metrics"}},
        {"targets": ["127.0.0.1"], "labels": {
            **meta, "__meta_kubernetes_pod_container_name": "sidecar-cpu"}},
        {"targets": ["127.0.0.1"], "labels": {  # an init container: not scraped
            **meta, "__meta_kubernetes_pod_container_name": "model-view"}},
    ]  # fmt: skip
    (tmp_path / "targets.json").write_text(json.dumps(discovered))
    config = yaml.safe_load(prometheus.COMMITTED_KUBERNETES.read_text())
    config.pop("rule_files")
    config["global"]["scrape_interval"] = "1s"
    for job in config["scrape_configs"]:
        del job["kubernetes_sd_configs"]
        job["file_sd_configs"] = [{"files": [str(tmp_path / "targets.json")]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom_port = pm.free_port()
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    api = f"http://127.0.0.1:{prom_port}/api/v1"
    try:
        targets: list = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                targets = requests.get(f"{api}/targets", timeout=2).json()["data"]["activeTargets"]
            except (requests.ConnectionError, ValueError):
                targets = []
            if len(targets) == 2 and all(t["health"] == "up" for t in targets):
                break
            time.sleep(0.5)
        seen = {(t["labels"]["job"], t["scrapeUrl"], t["health"]) for t in targets}
        assert seen == {
            ("weir-edge", f"{pod['metrics']}/metrics", "up"),
            ("weir-sidecars", f"{pod['metrics']}/metrics/sidecars/cpu", "up"),
        }, (seen, (tmp_path / "prometheus.log").read_text()[-3000:])
        sidecar = next(t for t in targets if t["labels"]["job"] == "weir-sidecars")
        assert sidecar["labels"]["device"] == "cpu"
        assert (sidecar["labels"]["namespace"], sidecar["labels"]["pod"]) == ("default", "weir-pod")
        query = scaling.pressure_query("inflight")
        result: list = []
        deadline = time.monotonic() + 30
        while not result and time.monotonic() < deadline:
            requests.post(f"{pod['url']}/v2/models/digits/infer", json=DIGITS, timeout=10)
            result = requests.get(f"{api}/query", params={"query": query}, timeout=5).json()[
                "data"
            ]["result"]
            time.sleep(0.5)
        assert result, f"no data for {query}"
        print(f"\nPrometheus (shipped Kubernetes config): {sorted(seen)}; inflight {result}")
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_a_sigkilled_edge_container_comes_back_on_the_same_release(pod):
    """The edge restarted in place finds its history in the pod's emptyDir and the same,
    immutable release file: it serves again (no revision conflict, no crash loop)."""
    edge = containers(pod)["edge"]
    restarts = edge.get("RestartCount", 0)
    os.kill(edge["State"]["Pid"], signal.SIGKILL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = containers(pod)["edge"]
        if now.get("RestartCount", 0) > restarts and ready(pod["url"]):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the edge did not come back within 120s\n{logs(pod)}")
    r = requests.post(f"{pod['url']}/v2/models/digits/infer", json=DIGITS, timeout=10)
    assert r.status_code == 200, r.text
    assert containers(pod)["edge"]["State"]["Running"]
    print(f"\nedge SIGKILLed: restarted ({now.get('RestartCount')}) and serving the same release")
