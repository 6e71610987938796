"""A real Prometheus (Debian's) scrapes a running `weir up` with the shipped scrape config and
alert rules; after traffic, every query of the Grafana dashboard returns data.

Part of `make test` (about 25 s: it scrapes every second); `make test-prometheus` runs it alone.
It skips where `prometheus` is not installed (apt-get install -y prometheus).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from scripts.k8s import scaling
from scripts.observability import dashboard

ROOT = Path(__file__).resolve().parents[3]
OBS = ROOT / "scripts" / "observability"
SCRAPE = "1s"
DIGITS = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]}

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("promtool") is None,
    reason="no Prometheus here: apt-get install -y prometheus (Debian's 2.42, with promtool)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(what: str, check, timeout_s: float, log=lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    pytest.fail(f"{what} after {timeout_s:.0f}s\n{log()[-4000:]}")


def write_release(tmp: Path, port: int, admin_port: int) -> Path:
    text = (ROOT / "release.yaml").read_text()
    text = text.replace("listen: 8080", f"listen: 127.0.0.1:{port}")
    text = text.replace("127.0.0.1:9901", f"127.0.0.1:{admin_port}")
    text = text.replace("devices: auto", "devices: cpu")
    # cnn: one request a second, so that a short burst is rate-limited (429s have a panel).
    text = text.replace(
        "rate: 500r/s, burst: 100, key: global", "rate: 60r/m, burst: 1, key: global"
    )
    # digits: every request version 1 answers is shadowed on version 2 (the shadow panel).
    text = text.replace(
        '    fallback: {version: "1"}\n',
        '    fallback: {version: "1"}\n    shadow: {version: "2", sample: 100%}\n',
        1,
    )
    assert "shadow:" in text
    path = tmp / "release.yaml"
    path.write_text(text)
    return path


class Procs:
    def __init__(self) -> None:
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, argv: list[str], log: Path, **kw) -> subprocess.Popen:
        handle = log.open("w")
        proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, **kw)
        self.procs.append((proc, log))
        return proc

    def stop(self) -> None:
        for proc, _ in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture(scope="module")
def scraped(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prom")
    port, admin_port, prom_port = free_port(), free_port(), free_port()
    runtime = tmp / "runtime"
    release = write_release(tmp, port, admin_port)
    procs = Procs()
    env = {k: v for k, v in os.environ.items() if k != "WEIR_ADMIN_TOKEN"}
    up_log = tmp / "up.log"
    up = procs.start(
        [sys.executable, "-m", "scripts.cli", "up", str(release), "--runtime-dir", str(runtime)],
        up_log, cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        wait(
            "weir up was not ready",
            lambda: "Weir is up." in up_log.read_text() or up.poll() is not None,
            240,
            up_log.read_text,
        )
        assert up.poll() is None, up_log.read_text()[-4000:]
        config = tmp / "prometheus.yml"
        config.write_text(
            subprocess.run(
                [sys.executable, "-m", "scripts.observability.prometheus", str(release),
                 "--runtime-dir", str(runtime), "--scrape-interval", SCRAPE,
                 "--rules", str(OBS / "alerts.yml")],
                cwd=ROOT, capture_output=True, text=True, check=True,
            ).stdout
        )  # fmt: skip
        checked = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        prom_log = tmp / "prometheus.log"
        procs.start(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            prom_log,
        )  # fmt: skip
        api = f"http://127.0.0.1:{prom_port}/api/v1"

        def targets_up() -> bool:
            try:
                active = requests.get(f"{api}/targets", timeout=2).json()["data"]["activeTargets"]
            except (requests.ConnectionError, ValueError):
                return False
            return len(active) == 2 and all(t["health"] == "up" for t in active)

        wait("Prometheus never scraped both targets", targets_up, 60, prom_log.read_text)
        traffic(f"http://127.0.0.1:{port}", runtime, admin_port)
        yield {"api": api, "log": prom_log, "runtime": runtime, "env": env, "tmp": tmp}
    finally:
        procs.stop()


def traffic(url: str, runtime: Path, admin_port: int) -> None:
    """Answers over a few scrapes (rates need two), 429s, and a fallback answer."""
    token = (runtime / "edge" / "admin.token").read_text().strip()
    admin = f"http://127.0.0.1:{admin_port}"
    auth = {"Authorization": f"Bearer {token}"}
    cnn = {"inputs": [{"name": "input", "shape": [1, 3, 64, 64], "datatype": "FP32",
                       "data": [0.1] * (3 * 64 * 64)}]}  # fmt: skip
    limited = 0
    for second in range(8):
        for user in range(10):
            r = requests.post(f"{url}/v2/models/digits/infer", json=DIGITS,
                              headers={"X-User-Id": f"u{second}-{user}"}, timeout=10)  # fmt: skip
            assert r.status_code == 200, r.text
        for _ in range(3):  # one a second passes, the rest are limited
            r = requests.post(f"{url}/v2/models/cnn/infer", json=cnn, timeout=10)
            limited += r.status_code == 429
        time.sleep(0.5)
    assert limited > 0
    requests.post(f"{admin}/admin/models/cnn/kill", headers=auth, timeout=5).raise_for_status()
    time.sleep(1.1)
    killed = requests.post(f"{url}/v2/models/cnn/infer", json=cnn, timeout=10)
    assert killed.headers.get("X-Weir-Fallback") == "killed", killed.status_code
    requests.delete(f"{admin}/admin/models/cnn/kill", headers=auth, timeout=5).raise_for_status()
    time.sleep(3)  # a few more scrapes: every increase is seen twice


def queries() -> list:
    out = []
    for panel in dashboard.dashboard()["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            # No xfail: counters with known labels start at 0 (the breaker transitions too).
            out.append(pytest.param(expr, id=f"{panel['title']} [{target['refId']}]"))
    return out


@pytest.mark.parametrize("expr", queries())
def test_every_dashboard_query_returns_data(scraped, expr):
    query = expr.replace("$model", ".+")
    r = requests.get(f"{scraped['api']}/query", params={"query": query}, timeout=10)
    assert r.status_code == 200, r.text
    result = r.json()["data"]["result"]
    assert result, f"no data for {query}"


def test_the_alert_rules_load_and_evaluate_cleanly(scraped):
    groups = requests.get(f"{scraped['api']}/rules", timeout=10).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 9
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] not in ("ok", "unknown")]
    assert not bad, bad
    firing = requests.get(f"{scraped['api']}/alerts", timeout=10).json()["data"]["alerts"]
    assert not [a for a in firing if a["state"] == "firing"], json.dumps(firing)[:2000]


@pytest.mark.parametrize("metric", ["queue", "inflight"])
def test_the_autoscaling_queries_weir_k8s_renders_return_data(scraped, metric):
    """KEDA's trigger query and the prometheus-adapter rule's, on the real metrics."""
    queries = [scaling.pressure_query(metric)]
    rule = scaling.adapter_rule(metric)["metricsQuery"]
    queries.append(rule.replace("<<.LabelMatchers>>", 'job="weir-sidecars"').replace(
        "<<.GroupBy>>", "instance"))  # fmt: skip
    for query in queries:
        r = requests.get(f"{scraped['api']}/query", params={"query": query}, timeout=10)
        result = r.json()["data"]["result"]
        assert result, f"no data for {query}"
        value = float(result[0]["value"][1])
        assert value == value and value >= 0, (query, value)  # a number, not NaN


def test_the_rollout_reads_a_window_of_the_fleet_from_prometheus(scraped):
    """`weir rollout start --prometheus URL`: its queries (sums over every edge replica and
    sidecar Prometheus scrapes) give each version's requests, latency, confidence and classes."""
    from scripts.rollout.signals import PrometheusSignals

    url = scraped["api"].removesuffix("/api/v1")
    signals = PrometheusSignals(url).window("digits", 60)
    assert signals, "no version of digits in the window"
    total = sum(s.requests for s in signals.values())
    assert total > 0
    for version, s in signals.items():
        if s.requests:
            assert s.latency is not None and s.latency.total > 0, version
            assert s.confidence is not None and s.confidence.total > 0, version
            assert sum(s.classes.values()) > 0, version
            assert s.server_failures == 0


def test_weir_drift_shows_each_version_and_captures_a_reference(scraped):
    """`weir drift status` through the edge; `weir drift capture` from the edge's relays and
    from Prometheus (the samples ship a reference from held-out data: digits drifts here,
    where every request sends the same pixels)."""
    from sidecar.serving.drift import load_reference

    def weir(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "scripts.cli", "drift", *args,
             "--runtime-dir", str(scraped["runtime"])],
            cwd=ROOT, env=scraped["env"], capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    shown = weir("status", "digits")
    assert shown.returncode == 0, shown.stderr
    print(shown.stdout)
    assert "digits v1 class: PSI" in shown.stdout and "digits v1 confidence: PSI" in shown.stdout
    folder = scraped["tmp"] / "repo" / "digits" / "1"
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "models" / "digits" / "1" / "model.onnx", folder)
    refused = weir("capture", "digits", "1", "--models", str(folder.parents[1]))
    assert refused.returncode == 1 and "a reference needs at least 300" in refused.stderr
    for source in ([], ["--prometheus", scraped["api"].removesuffix("/api/v1"), "--window", "5m"]):
        done = weir("capture", "digits", "1", "--models", str(folder.parents[1]),
                    "--min-rows", "20", *source)  # fmt: skip
        assert done.returncode == 0, done.stderr
        print(done.stdout)
        reference = load_reference(folder / "reference.json")
        assert reference.rows >= 20 and set(reference.signals) == {"class", "confidence"}
