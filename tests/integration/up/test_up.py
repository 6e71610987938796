"""`weir up` end to end: real sidecar, real nginx, the sample models.

One stack serves the whole module; tests run in file order and the last one stops it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from scripts.deploy.history import History
from scripts.observability import dashboard
from scripts.runtime import RuntimeDir
from tests.processes import alive, descendants, parent
from tests.weir_up import READY_BANNER, ROOT, WeirUp, free_port, link_samples


class Stack(WeirUp):
    def __init__(self, tmp: Path) -> None:
        self.port, self.admin_port = free_port(), free_port()
        self.runtime = tmp / "runtime"
        text = (ROOT / "release.yaml").read_text()
        text = re.sub(r"listen: 8080", f"listen: 127.0.0.1:{self.port}", text)
        text = text.replace("127.0.0.1:9901", f"127.0.0.1:{self.admin_port}")
        text = text.replace("devices: auto", "devices: cpu")
        # Above the sidecars' own default (16m): `weir up` must raise theirs to match.
        text = text.replace("max_body: 16m", "max_body: 24m")
        assert "max_body: 24m" in text
        # Its own repository (links to the samples) that tests may add versions to.
        self.models = tmp / "models"
        link_samples(self.models)
        self.release = tmp / "release.yaml"
        self.release.write_text(text)
        self.launch(str(self.release))

    def command(self, *release: str) -> list[str]:
        """`weir up` on this stack's runtime directory and model repository."""
        return super().command(
            *release, "--runtime-dir", str(self.runtime), "--models", str(self.models)
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin(self, method: str, path: str) -> requests.Response:
        token = (self.runtime / "edge" / "admin.token").read_text().strip()
        return requests.request(
            method,
            f"http://127.0.0.1:{self.admin_port}{path}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )

    def sidecar_master(self) -> int:
        for line in reversed(self.lines):
            match = re.search(r"\[sidecar-cpu\] .*\[(\d+)\] \[INFO\] Starting gunicorn", line)
            if match:
                return int(match.group(1))
        raise AssertionError("no sidecar start in the log")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    stack = Stack(tmp_path_factory.mktemp("up"))
    try:
        stack.wait_for_log(READY_BANNER)
        yield stack
    finally:
        stack.kill_tree()


def infer(stack: Stack, user: str = "alice") -> requests.Response:
    body = (stack.runtime / "examples" / "digits.json").read_bytes()
    return requests.post(
        f"{stack.url}/v2/models/digits/infer", data=body, headers={"X-User-Id": user}, timeout=10
    )


def test_up_prints_where_to_send_requests_and_a_private_token(stack):
    log = stack.log()
    assert f"Send V2 inference requests to {stack.url}" in log
    assert "/admin/models/digits/versions/2/kill" in log
    token_file = stack.runtime / "edge" / "admin.token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert "[sidecar-cpu]" in log and "[edge]" in log
    # The release's batching reaches the sidecar (cnn: 16 rows, 5 ms in release.yaml).
    assert re.search(r"loaded model cnn version 1 .*max_batch_size=16, max_queue_delay=0.005", log)


def test_the_pasted_inference_answers_through_the_edge(stack):
    response = infer(stack)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "digits"
    assert body["id"] == "example-1"
    assert body["model_version"] == response.headers["X-Weir-Model-Version"]
    (output,) = body["outputs"]
    assert output["shape"] == [1, 10]
    assert sum(output["data"]) == pytest.approx(1.0, rel=1e-4)


def test_the_pasted_image_upload_answers_the_label_with_its_confidence(stack):
    """The banner's `curl -F image=@...` line, run as printed: handwriting's sample 7."""
    (line,) = [line for line in stack.lines if "curl -s -F image=@" in line]
    command = line[line.index("curl") :].strip()
    assert command.endswith(f"{stack.url}/v2/models/handwriting/infer")
    answer = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, timeout=30)
    assert answer.returncode == 0, answer.stderr
    outputs = {o["name"]: o["data"] for o in json.loads(answer.stdout)["outputs"]}
    assert outputs["label"] == ["7"] and outputs["confidence"][0] > 0.9


def test_a_body_the_edge_accepts_is_accepted_by_the_sidecar_too(stack):
    """20 MiB: over the sidecar's default limit (16 MiB, and meinheld's 17), under the edge's
    24m. Before `weir up` passed max_body on, the sidecar cut it off: a broken pipe, a 503."""
    body = (stack.runtime / "examples" / "digits.json").read_bytes()
    padded = body.replace(b'"inputs"', b" " * (20 * 1024**2) + b'"inputs"', 1)
    assert len(padded) > 20 * 1024**2
    response = requests.post(
        f"{stack.url}/v2/models/digits/infer", data=padded, headers={"X-User-Id": "a"}, timeout=60
    )
    assert response.status_code == 200, response.text[:500]
    assert "X-Weir-Fallback" not in response.headers
    assert response.json()["id"] == "example-1"
    too_big = requests.post(
        f"{stack.url}/v2/models/digits/infer", data=b" " * (25 * 1024**2), timeout=60
    )
    assert too_big.status_code == 413


def test_every_metric_the_dashboard_queries_is_exported(stack):
    for user in range(30):
        assert infer(stack, f"user-{user}").status_code == 200
    # The edge flushes its per-worker counts into shared memory every half second.
    deadline = time.monotonic() + 10
    while True:
        edge = stack.admin("GET", "/metrics")
        assert edge.status_code == 200
        if "weir_edge_upstream_response_seconds_bucket" in edge.text:
            break
        assert time.monotonic() < deadline, "the edge never counted the requests"
        time.sleep(0.25)
    # The sidecar's metrics, relayed by the admin listener as the Prometheus config scrapes them.
    sidecar = stack.admin("GET", "/metrics/sidecars/cpu")
    assert sidecar.status_code == 200
    assert (
        requests.get(f"http://127.0.0.1:{stack.admin_port}/metrics/sidecars/cpu").status_code == 401
    )
    text = edge.text + sidecar.text
    # A family counts once declared: counters of events that did not happen yet have no sample.
    exported = set(re.findall(r"^([a-z_]+)(?:\{| )", text, re.M))
    for name, kind in re.findall(r"^# TYPE ([a-z_]+) ([a-z]+)$", text, re.M):
        suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
        exported |= {name + suffix for suffix in suffixes}
    assert re.search(r'^weir_edge_requests_total\{model="digits".*status="200"\} [1-9]', text, re.M)
    queried = set()
    for panel in dashboard.dashboard()["panels"]:
        for target in panel["targets"]:
            queried |= set(re.findall(r"\b(weir_[a-z_]+)\b", target["expr"]))
    assert queried, "the dashboard queries no Weir metric"
    # Shadow families exist once a release shadows (release.yaml does not; the Prometheus
    # test's stack does, and its panel returns data there).
    queried -= {"weir_shadow_agreements_total", "weir_shadow_comparisons_total"}
    assert queried <= exported, f"queried but not exported: {sorted(queried - exported)}"


def release_file(stack: Stack, revision: int, extra_version: str, edit=lambda t: t) -> Path:
    """The stack's release as revision `revision`, digits gaining `extra_version`."""
    text = stack.release.read_text().replace("revision: 1 ", f"revision: {revision} ", 1)
    text = text.replace('      "1": {}\n', f'      "1": {{}}\n      "{extra_version}": {{}}\n', 1)
    path = stack.release.with_name(f"release-{revision}.yaml")
    path.write_text(edit(text))
    return path


def apply(
    stack: Stack, revision: int, extra_version: str, edit=lambda t: t
) -> subprocess.CompletedProcess[str]:
    """`weir apply` of the stack's release with digits gaining `extra_version`."""
    path = release_file(stack, revision, extra_version, edit)
    return subprocess.run(
        [sys.executable, "-m", "scripts.cli", "apply", str(path)],
        cwd=ROOT,
        env={**os.environ, "WEIR_RUNTIME_DIR": str(stack.runtime)},
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_apply_loads_a_new_version_in_every_sidecar_worker_before_the_edge_routes_to_it(stack):
    shutil.copytree(ROOT / "models" / "digits" / "2", stack.models / "digits" / "3")
    done = apply(stack, 2, "3")
    assert done.returncode == 0, done.stderr
    assert "revision 2 is live" in done.stdout and "loaded repository generation" in done.stdout
    body = (stack.runtime / "examples" / "digits.json").read_bytes()
    base = f"{stack.url}/v2/models/digits/versions"
    expected = requests.post(f"{base}/2/infer", data=body, timeout=10)
    # Fresh connections spread over the sidecar's workers: each must already hold version 3.
    for _ in range(20):
        response = requests.post(f"{base}/3/infer", data=body, timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["X-Weir-Model-Version"] == "3"
        assert "X-Weir-Fallback" not in response.headers
        assert response.json()["outputs"] == expected.json()["outputs"]


def test_apply_of_a_version_that_cannot_load_says_why_and_changes_nothing(stack):
    (stack.models / "digits" / "4").mkdir()
    (stack.models / "digits" / "4" / "model.onnx").write_bytes(b"these are not onnx weights")
    done = apply(stack, 3, "4")
    assert done.returncode != 0
    assert "digits/4" in done.stderr and "failed to load" in done.stderr, done.stderr
    assert "the edge was not changed" in done.stderr
    status = stack.admin("GET", "/admin/status").json()
    assert status["revision"] == 2, status
    assert infer(stack).status_code == 200
    base = f"{stack.url}/v2/models/digits/versions"
    refused = requests.post(f"{base}/4/infer", data=b"{}", timeout=10)
    assert refused.status_code == 404, refused.text


def test_an_apply_raising_max_body_above_the_sidecars_limit_asks_for_a_restart(stack):
    done = apply(stack, 3, "3", lambda t: t.replace("max_body: 24m", "max_body: 64m"))
    assert done.returncode != 0
    assert "is above the 25165824 bytes `weir up`" in done.stderr, done.stderr
    assert "Restart `weir up` with this release" in done.stderr
    assert "the edge was not changed" in done.stderr
    assert stack.admin("GET", "/admin/status").json()["revision"] == 2


def weir(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.cli", *args],
        cwd=ROOT,
        env={**os.environ, "WEIR_RUNTIME_DIR": str(stack.runtime)},
        capture_output=True,
        text=True,
        timeout=240,
    )


def edge_master(stack: Stack) -> int:
    return int((stack.runtime / "run" / "edge.pid").read_text())


def nginx_workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def serves_again(stack: Stack, dead_master: int, revision: int, timeout_s: float = 60) -> float:
    """Seconds until a new edge master answers inferences, on `revision` (orphaned workers of
    the dead one may answer meanwhile: they do not count)."""
    started = time.monotonic()
    seen = None
    while time.monotonic() < started + timeout_s:
        try:
            if edge_master(stack) == dead_master:
                raise ValueError("not restarted yet")
            status = stack.admin("GET", "/admin/status")
            seen = status.json().get("revision") if status.status_code == 200 else None
            if seen == revision and infer(stack).status_code == 200:
                return time.monotonic() - started
        except (requests.RequestException, ValueError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(
        f"not serving revision {revision} after {timeout_s}s (saw {seen}):\n" + stack.log()[-3000:]
    )


def test_a_sigkilled_nginx_master_comes_back_on_the_rolled_back_revision(stack):
    done = weir(stack, "rollback")
    assert done.returncode == 0, done.stderr
    assert "revision 1 is live" in done.stdout and "loaded repository generation" in done.stdout
    assert stack.admin("GET", "/admin/status").json()["revision"] == 1
    master = edge_master(stack)
    workers = nginx_workers(master)
    mark = len(stack.lines)
    os.kill(master, signal.SIGKILL)
    print(f"served again after {serves_again(stack, master, 1):.1f}s")  # reported only
    assert "[edge] exited with" in "".join(stack.lines[mark:])
    # The orphaned workers held the ports: the restart cleared them, and said so. `weir edge`
    # says it once its pipeline verified the new master, which serves before that, and the
    # line reaches us through the supervisor's copy thread: wait for it, bounded.
    stack.wait_for_log("left by the crashed edge", timeout_s=30, after=mark)
    assert not [pid for pid in workers if alive(pid)]


def test_a_sigkilled_edge_process_comes_back_on_the_revision_rolled_forward_to(stack):
    done = weir(stack, "rollback", "--to", "2")
    assert done.returncode == 0, done.stderr
    master = edge_master(stack)
    os.kill(parent(master), signal.SIGKILL)  # the supervised `weir edge`, nginx's parent
    serves_again(stack, master, 2)
    assert not alive(master)


def test_a_sigkilled_sidecar_comes_back_while_clients_get_answers_or_marked_fallbacks(stack):
    old_master = stack.sidecar_master()
    mark = len(stack.lines)
    outcomes: Counter[str] = Counter()
    os.kill(old_master, signal.SIGKILL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        response = infer(stack)
        fallback = response.headers.get("X-Weir-Fallback")
        outcomes[f"{response.status_code} {fallback or 'model'}"] += 1
        assert response.status_code == 200 or fallback, (response.status_code, response.text)
        # Recovered: a new sidecar answers and the breaker lets the model itself answer again.
        if stack.sidecar_master() != old_master and response.status_code == 200 and not fallback:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the model did not answer again within 90s: {outcomes}\n{stack.log()[-3000:]}")
    assert "[sidecar-cpu] exited with" in "".join(stack.lines[mark:])
    assert sum(n for k, n in outcomes.items() if not k.endswith("model")) > 0, outcomes


def test_a_sigkilled_master_and_its_workers_come_back(stack):
    master = edge_master(stack)
    workers = nginx_workers(master)
    assert workers
    for pid in (*workers, master):
        os.kill(pid, signal.SIGKILL)
    serves_again(stack, master, 2)
    assert not [pid for pid in (*workers, master) if alive(pid)]


def test_sigkilled_workers_are_respawned_by_their_master_and_serve(stack):
    master = edge_master(stack)
    workers = nginx_workers(master)
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        fresh = [pid for pid in nginx_workers(master) if pid not in workers]
        if len(fresh) == len(workers):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"nginx did not respawn its workers: {nginx_workers(master)}")
    assert infer(stack).status_code == 200
    assert stack.admin("GET", "/admin/status").json()["revision"] == 2
    assert edge_master(stack) == master  # nothing restarted: the master did its job


def test_an_apply_killed_before_it_recorded_leaves_restarts_on_the_recorded_revision(stack):
    live = (stack.runtime / "edge" / "current").resolve()
    shutil.copytree(ROOT / "models" / "digits" / "2", stack.models / "digits" / "5")
    path = release_file(stack, 4, "5")
    applying = subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", "apply", str(path)],
        cwd=ROOT,
        env={**os.environ, "WEIR_RUNTIME_DIR": str(stack.runtime)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Killed once it rendered revision 4: it is then testing it, or waiting for the sidecars.
    deadline = time.monotonic() + 60
    while not list((stack.runtime / "edge" / "revisions").glob("r4-*/nginx.conf")):
        assert applying.poll() is None and time.monotonic() < deadline, "the apply ended early"
        time.sleep(0.01)
    applying.kill()
    applying.wait()
    (rendered,) = (stack.runtime / "edge" / "revisions").glob("r4-*")
    assert (stack.runtime / "edge" / "current").resolve() == live  # killed before the switch
    # What an apply killed just after the switch leaves: `current` on an unrecorded revision.
    link = stack.runtime / "edge" / "current"
    tmp = link.with_name("current.test")
    tmp.symlink_to(os.path.relpath(rendered, link.parent))
    os.replace(tmp, link)
    master = edge_master(stack)
    os.kill(master, signal.SIGKILL)
    serves_again(stack, master, 2)
    assert (stack.runtime / "edge" / "current").resolve() == live
    entries = History(RuntimeDir(stack.runtime).history).entries()
    assert entries[-1].revision == 2 and 4 not in {e.revision for e in entries}


def test_a_sigkilled_weir_up_leaves_no_process_and_starts_again(stack):
    tree = descendants(stack.process.pid)
    master = edge_master(stack)
    assert master in tree and stack.sidecar_master() in tree
    stack.process.kill()
    stack.process.wait(timeout=10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(alive(pid) for pid in tree):
        time.sleep(0.1)
    assert not [pid for pid in tree if alive(pid)], stack.log()[-2000:]
    stack.launch()  # no file: the last applied revision
    stack.wait_for_log(READY_BANNER)
    assert stack.admin("GET", "/admin/status").json()["revision"] == 2
    assert infer(stack).status_code == 200


def test_sigterm_stops_everything_and_leaves_no_process_behind(stack):
    tree = descendants(stack.process.pid)
    assert tree, "weir up has no children to stop"
    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(timeout=60) == 0
    assert "[up] stopped" in stack.log()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in tree):
        time.sleep(0.1)
    assert not [pid for pid in tree if alive(pid)]


def test_weir_up_again_serves_the_applied_revision_and_refuses_its_older_file(stack):
    """The previous test stopped the stack; revision 2 is the live one of its runtime dir."""
    older = subprocess.run(
        stack.command(str(stack.release)), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert older.returncode == 1
    assert "revision 1 is not newer than revision 2" in older.stderr, older.stderr
    assert "without a file to serve the live one" in older.stderr
    stack.launch()  # no file: the last applied revision
    try:
        stack.wait_for_log(READY_BANNER)
        assert stack.admin("GET", "/admin/status").json()["revision"] == 2
        assert infer(stack).status_code == 200
    finally:
        stack.process.send_signal(signal.SIGTERM)
        assert stack.process.wait(timeout=60) == 0
