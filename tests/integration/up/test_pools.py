"""Sidecar pools under a real `weir up`: digits in pool `light`, cnn in pool `heavy`, each pinned
to a CPU of its own, heavy with a memory limit in a real cgroup. Under bounded concurrent load
on both models through the edge (127.0.0.1 only), the heavy pool is SIGKILLed, then pushed past
its memory limit: digits' clients see no error at all, cnn's see answers or the edge's marked
fallbacks (never a hang), and the pool comes back and serves. Tests run in file order on one
stack; the last one stops it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import requests

from scripts.fleet.pools import pool_sidecars
from scripts.release import load_release
from scripts.stack.isolation import PoolCgroup, cgroup_name
from tests.processes import alive, descendants
from tests.weir_up import READY_BANNER, ROOT, WeirUp, free_port, link_samples

CPUS = sorted(os.sched_getaffinity(0))
HEAVY_MEMORY_MIB = 400  # idle: about 90 MiB (master and one worker with cnn); 16 rows: ~100
BIG_ROWS = 300  # one such request needs over 400 MiB in the worker: the kernel kills it

pytestmark = pytest.mark.skipif(
    len(CPUS) < 2, reason=f"two pools on CPUs of their own need 2 CPUs; this process has {CPUS}"
)


class PoolStack(WeirUp):
    def __init__(self, tmp: Path) -> None:
        self.port, self.admin_port = free_port(), free_port()
        self.runtime = tmp / "runtime"
        text = (ROOT / "release.yaml").read_text()
        text = re.sub(r"listen: 8080", f"listen: 127.0.0.1:{self.port}", text)
        text = text.replace("127.0.0.1:9901", f"127.0.0.1:{self.admin_port}")
        pools = (
            "sidecars:\n  pools:\n"
            f"    light: {{workers: 1, cpus: [{CPUS[0]}], memory: 1g}}\n"
            f"    heavy: {{workers: 1, cpus: [{CPUS[1]}], memory: {HEAVY_MEMORY_MIB}m}}\n"
        )
        text = text.replace("sidecars:\n", pools, 1).replace("devices: auto", "devices: cpu")
        text = text.replace("    timeout: 2s\n", "    timeout: 2s\n    pool: light\n", 1)
        text = text.replace("    timeout: 5s\n", "    timeout: 5s\n    pool: heavy\n", 1)
        text = text.replace("    timeout: 4s\n", "    timeout: 4s\n    pool: light\n", 1)
        self.models = tmp / "models"
        link_samples(self.models)
        self.release = tmp / "release.yaml"
        self.release.write_text(text)
        self.launch(str(self.release))

    def command(self, *release: str) -> list[str]:
        return super().command(
            *release, "--runtime-dir", str(self.runtime), "--models", str(self.models)
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin(self, path: str) -> requests.Response:
        token = (self.runtime / "edge" / "admin.token").read_text().strip()
        return requests.get(
            f"http://127.0.0.1:{self.admin_port}{path}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )

    def master(self, name: str) -> int:
        """The gunicorn master (the `weir sidecar` process, its group's leader) of `name`."""
        for line in reversed(self.lines):
            match = re.search(rf"\[{name}\] .*\[(\d+)\] \[INFO\] Starting gunicorn", line)
            if match:
                return int(match.group(1))
        raise AssertionError(f"no {name} start in the log")

    def cgroup(self) -> PoolCgroup:
        """The heavy pool's cgroup, where `weir up` says it put the pools' cgroups."""
        match = re.search(r"memory limits enforced by cgroup v(\d) .* under (\S+)", self.log())
        assert match, self.log()[-3000:]
        release = load_release(self.release).release
        (heavy,) = [s for s in pool_sidecars(release, ["cpu"]) if s.pool == "heavy"]
        return PoolCgroup(Path(match[2]) / cgroup_name(self.runtime, heavy), int(match[1]))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PoolStack]:
    stack = PoolStack(tmp_path_factory.mktemp("pools"))
    try:
        stack.wait_for_log(READY_BANNER)
        yield stack
    finally:
        if stack.process.poll() is None:
            for pid in descendants(stack.process.pid):  # its guardian too: clean up after it
                os.kill(pid, signal.SIGKILL)
            stack.process.kill()
            stack.process.wait()
            if "memory limits enforced by cgroup" in stack.log():
                cgroup = stack.cgroup()
                for path in (
                    cgroup.path,
                    cgroup.path.with_name(cgroup.path.name[:9] + "light-cpu"),
                ):
                    PoolCgroup(path, cgroup.version).remove()


def digits_body() -> bytes:
    return json.dumps(
        {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]}
    ).encode()


def cnn_request(rows: int) -> tuple[bytes, dict[str, str]]:
    """A binary-extension cnn request of `rows` images."""
    data = np.random.default_rng(rows).random((rows, 3, 64, 64), dtype=np.float32).tobytes()
    tensor = {"name": "input", "shape": [rows, 3, 64, 64], "datatype": "FP32"}
    head = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": len(data)}}]})
    headers = {"Inference-Header-Content-Length": str(len(head.encode()))}
    return head.encode() + data, headers


CUT = "cut"  # a 200 whose body stopped: the worker died after its headers went out


def outcome(session: requests.Session, url: str, body: bytes, headers: dict[str, str]) -> str:
    """`<status> <X-Weir-Fallback or model>`, `cut`, or the name of what went wrong."""
    try:
        r = session.post(url, data=body, headers=headers, timeout=15)
    except requests.exceptions.ChunkedEncodingError:
        # nginx had relayed the sidecar's headers when the sidecar died: it cannot answer with
        # a fallback any more, so it closes the connection before the end of the chunked body.
        # The client sees an error, never a truncated answer that looks whole.
        return CUT
    except requests.RequestException as exc:
        return type(exc).__name__  # a timeout (a hang) or a refused connection: never allowed
    return f"{r.status_code} {r.headers.get('X-Weir-Fallback') or 'model'}"


@dataclass
class Load:
    """Bounded concurrent clients on digits and cnn through the edge, each request with a
    client timeout (a hang is an error); at most `max_s` seconds and `max_each` requests a
    client. Outcomes: `<status> <X-Weir-Fallback or model>`, or the exception's name."""

    url: str
    max_s: float = 120.0
    max_each: int = 20_000
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def client(self, name: str, body: bytes, headers: dict[str, str], pause_s: float) -> None:
        seen = self.outcomes[name]
        model = name.split("-")[0]
        deadline = time.monotonic() + self.max_s
        with requests.Session() as session:
            for _ in range(self.max_each):
                if self.stop.is_set() or time.monotonic() > deadline:
                    return
                seen[outcome(session, f"{self.url}/v2/models/{model}/infer", body, headers)] += 1
                time.sleep(pause_s)

    def __enter__(self) -> Load:
        cnn, cnn_headers = cnn_request(8)
        for model, body, headers, pause in (
            *[("digits", digits_body(), {}, 0.005)] * 3,
            *[("cnn", cnn, cnn_headers, 0.01)] * 2,
        ):
            name = f"{model}-{len(self.threads)}"
            self.outcomes[name] = Counter()
            thread = threading.Thread(target=self.client, args=(name, body, headers, pause))
            self.threads.append(thread)
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def total(self, model: str) -> Counter[str]:
        total: Counter[str] = Counter()
        for name, seen in self.outcomes.items():
            if name.startswith(model + "-"):
                total += seen
        return total


def assert_isolated(load: Load) -> None:
    """digits: every request answered by the model itself; cnn: answers or marked fallbacks."""
    digits, cnn = load.total("digits"), load.total("cnn")
    print(f"digits: {dict(digits)}; cnn: {dict(cnn)}")  # shown with -s
    assert digits and set(digits) == {"200 model"}, digits
    assert cnn and set(cnn) <= {"200 model", "503 upstream-error", "503 breaker-open", CUT}, cnn


def serves_again(stack: PoolStack, timeout_s: float = 90) -> None:
    body, headers = cnn_request(4)
    deadline = time.monotonic() + timeout_s
    with requests.Session() as session:
        while time.monotonic() < deadline:
            if outcome(session, f"{stack.url}/v2/models/cnn/infer", body, headers) == "200 model":
                return
            time.sleep(0.2)
    pytest.fail(f"cnn did not answer again within {timeout_s}s\n{stack.log()[-3000:]}")


def test_each_pool_serves_only_its_models_on_its_cpus_in_its_cgroup(stack: PoolStack) -> None:
    log = stack.log()
    assert "[sidecar-light-cpu]" in log and "[sidecar-heavy-cpu]" in log
    assert "[sidecar-cpu]" not in log  # no model is in the default pool: it does not run
    assert "isolation: CPU sets enforced by sched_setaffinity" in log
    for name, cpu, model, other in (
        ("light", CPUS[0], "digits", "cnn"),
        ("heavy", CPUS[1], "cnn", "digits"),
    ):
        metrics = stack.admin(f"/metrics/sidecars/{name}-cpu")
        assert metrics.status_code == 200
        assert f'weir_model_ready{{model="{model}",version="1"}} 1.0' in metrics.text
        assert f'model="{other}"' not in metrics.text
        master = stack.master(f"sidecar-{name}-cpu")
        group = [master, *descendants(master)]
        assert len(group) >= 2  # the master and its worker
        for pid in group:
            assert os.sched_getaffinity(pid) == {cpu}, (name, pid)
        argv = Path(f"/proc/{master}/cmdline").read_bytes().split(b"\0")
        assert argv[argv.index(b"--intra-op-threads") + 1] == b"1"
        assert argv[argv.index(b"--workers") + 1] == b"1"
    if "memory limits enforced by cgroup" in log:
        cgroup = stack.cgroup()
        procs = {int(p) for p in (cgroup.path / "cgroup.procs").read_text().split()}
        heavy = stack.master("sidecar-heavy-cpu")
        assert {heavy, *descendants(heavy)} <= procs
        limit = "memory.limit_in_bytes" if cgroup.version == 1 else "memory.max"
        assert int((cgroup.path / limit).read_text()) == HEAVY_MEMORY_MIB * 2**20
    for model in ("digits", "cnn"):
        body, headers = (digits_body(), {}) if model == "digits" else cnn_request(2)
        r = requests.post(f"{stack.url}/v2/models/{model}/infer", data=body, headers=headers)
        assert r.status_code == 200 and "X-Weir-Fallback" not in r.headers, r.text


def test_a_sigkilled_pool_takes_only_its_models_down_and_comes_back(stack: PoolStack) -> None:
    master = stack.master("sidecar-heavy-cpu")
    assert master in descendants(stack.process.pid) and os.getpgid(master) == master
    group = [master, *descendants(master)]
    mark = len(stack.lines)
    with Load(stack.url) as load:
        time.sleep(2)
        os.killpg(master, signal.SIGKILL)  # the heavy pool's whole process group
        stack.wait_for_log("[sidecar-heavy-cpu] exited with -9", after=mark, timeout_s=30)
        stack.wait_for_log("[sidecar-heavy-cpu] restarting", after=mark, timeout_s=60)
        serves_again(stack)
        time.sleep(2)  # and keeps serving under the load
    assert not [pid for pid in group if alive(pid)]
    assert stack.master("sidecar-heavy-cpu") != master
    assert_isolated(load)
    cnn = load.total("cnn")
    assert sum(n for k, n in cnn.items() if not k.endswith(" model")) > 0, cnn  # it was down
    assert stack.master("sidecar-light-cpu") in descendants(stack.process.pid)


def test_a_pool_past_its_memory_limit_is_killed_by_the_kernel_and_nobody_else_notices(
    stack: PoolStack,
) -> None:
    if "memory limits NOT enforced" in stack.log():
        line = next(x for x in stack.lines if "memory limits NOT enforced" in x)
        pytest.skip(f"no writable cgroup on this machine: {line.strip()}")
    cgroup = stack.cgroup()
    kills = cgroup.oom_kills()
    body, headers = cnn_request(BIG_ROWS)
    big: Counter[str] = Counter()
    mark = len(stack.lines)
    with Load(stack.url) as load:
        time.sleep(2)
        with requests.Session() as session:
            for _ in range(5):  # bounded: the first one should do
                big[outcome(session, f"{stack.url}/v2/models/cnn/infer", body, headers)] += 1
                if cgroup.oom_kills() > kills:
                    break
        serves_again(stack)
        time.sleep(2)
    assert cgroup.oom_kills() > kills, (big, stack.log()[-3000:])
    print(f"oom_kill {kills} -> {cgroup.oom_kills()}; the big requests: {dict(big)}")
    usage = "memory.max_usage_in_bytes" if cgroup.version == 1 else "memory.peak"
    if (cgroup.path / usage).exists():
        assert int((cgroup.path / usage).read_text()) >= 0.95 * HEAVY_MEMORY_MIB * 2**20
    assert "Perhaps out of memory?" in "".join(stack.lines[mark:])  # gunicorn saw the kill
    # The request the kernel killed the worker under got the marked fallback (or, killed while
    # its answer was on the way, a cut connection); one before it may have fitted (what the
    # kernel could reclaim varies).
    assert set(big) <= {"200 model", "503 upstream-error", "503 breaker-open", CUT}, big
    assert sum(n for k, n in big.items() if k != "200 model") >= 1, big
    assert_isolated(load)


def test_apply_adds_a_model_to_a_running_pool_and_refuses_a_new_layout(stack: PoolStack) -> None:
    (stack.models / "digits-b").mkdir()
    (stack.models / "digits-b" / "1").symlink_to(ROOT / "models" / "digits" / "1")
    text = stack.release.read_text().replace("revision: 1 ", "revision: 2 ", 1)
    text += '  digits-b:\n    versions: {"1": {}}\n    pool: light\n'
    added = stack.release.with_name("release-2.yaml")
    added.write_text(text)
    done = apply(stack, added)
    assert done.returncode == 0, done.stderr
    assert "pool light sidecars on cpu loaded repository generation" in done.stdout
    assert "pool heavy sidecars on cpu loaded repository generation" in done.stdout
    r = requests.post(f"{stack.url}/v2/models/digits-b/infer", data=digits_body(), timeout=10)
    assert r.status_code == 200 and "X-Weir-Fallback" not in r.headers, r.text
    heavy = stack.admin("/metrics/sidecars/heavy-cpu").text
    assert 'model="digits-b"' not in heavy
    moved = stack.release.with_name("release-3.yaml")
    moved.write_text(
        text.replace("revision: 2 ", "revision: 3 ", 1).replace("pool: light\n", "pool: heavy\n", 1)
    )
    refused = apply(stack, moved)
    assert refused.returncode == 1
    assert "it moves digits to heavy (it runs in light)" in refused.stderr, refused.stderr
    assert "restart `weir up` with this release" in refused.stderr
    assert stack.admin("/admin/status").json()["revision"] == 2


def apply(stack: PoolStack, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.cli", "apply", str(path)],
        cwd=ROOT,
        env={**os.environ, "WEIR_RUNTIME_DIR": str(stack.runtime)},
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_a_sigkilled_weir_up_leaves_no_process_nor_cgroup_and_starts_again(
    stack: PoolStack,
) -> None:
    cgroup = stack.cgroup() if "memory limits enforced by cgroup" in stack.log() else None
    tree = descendants(stack.process.pid)
    stack.process.kill()  # `weir up` alone: its guardian stops the rest
    stack.process.wait(timeout=10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (
        any(alive(pid) for pid in tree) or (cgroup is not None and cgroup.path.exists())
    ):
        time.sleep(0.1)
    assert not [pid for pid in tree if alive(pid)], stack.log()[-2000:]
    assert cgroup is None or not cgroup.path.exists()  # the guardian removed it
    stack.launch()  # no file: the last applied revision, with its pools
    stack.wait_for_log(READY_BANNER)
    r = requests.post(f"{stack.url}/v2/models/digits-b/infer", data=digits_body(), timeout=10)
    assert r.status_code == 200 and "X-Weir-Fallback" not in r.headers, r.text


def test_stopping_removes_the_pools_cgroups(stack: PoolStack) -> None:
    cgroup = stack.cgroup() if "memory limits enforced by cgroup" in stack.log() else None
    tree = descendants(stack.process.pid)
    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(timeout=60) == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in tree):
        time.sleep(0.1)
    assert not [pid for pid in tree if alive(pid)]
    if cgroup is not None:
        assert not cgroup.path.exists()
