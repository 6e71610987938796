"""`weir apply / rollback / history`: reloads under load lose nothing; failures change nothing."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time

import pytest

from scripts.deploy.commands import apply_main, history_main, rollback_main, validate_main
from scripts.deploy.history import History
from scripts.deploy.pipeline import apply_release
from scripts.edge.errors import DeployError
from scripts.edge.nginx import find_nginx
from scripts.edge.process import nginx_test
from scripts.edge.revisions import current_revision, render_revision
from scripts.release import LoadedRelease, parse_release
from scripts.runtime import RuntimeDir
from scripts.stack.edge import Edge
from tests.processes import alive


class Load:
    """Keep-alive clients posting until stopped; every answer that is not a 200 is a failure."""

    def __init__(self, harness, tools, threads: int = 3, retry_unsent: bool = False) -> None:
        self.harness, self.tools = harness, tools
        self.retry_unsent = retry_unsent
        self.retried = 0
        self.stop_flag = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, index: int) -> None:
        client = self.tools.Client(self.harness.listen)
        n = 0
        while not self.stop_flag.is_set():
            n += 1
            headers = {"X-User-Id": f"{index}-{n}"}
            try:
                try:
                    status, hdrs, _ = client.post("/v2/models/digits/infer", headers=headers)
                except (ConnectionError, http.client.RemoteDisconnected):
                    if not self.retry_unsent:
                        raise
                    with self.lock:
                        self.retried += 1
                    status, hdrs, _ = client.post("/v2/models/digits/infer", headers=headers)
                outcome = None if status == 200 and "x-weir-fallback" not in hdrs else status
            except Exception as exc:  # a reset or a hang-up is a failed request too
                outcome = repr(exc)
            with self.lock:
                if outcome is None:
                    self.ok += 1
                else:
                    self.failures.append(str(outcome))
        client.close()

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_flag.set()
        for thread in self.threads:
            thread.join()


def _rt(harness) -> list[str]:
    return ["--runtime-dir", str(harness.runtime.root)]


def test_ten_applies_under_load_fail_no_request(harness, upstreams, tools, capsys) -> None:
    """Grey-release steps and breaker/fallback changes: new Lua settings, no reload."""
    harness.start(tools.two_versions(upstreams))
    workers = harness.workers()
    with Load(harness, tools) as load:
        for i in range(10):
            models = tools.two_versions(upstreams)
            models["digits"]["release"]["split"] = {"1": 100 - 10 * i, "2": 10 * i}
            models["digits"]["breaker"]["failures"] = 3 + i
            path = harness.write(harness.release(models))
            assert apply_main([str(path), *_rt(harness)]) == 0, capsys.readouterr().err
            time.sleep(0.1)
    assert load.failures == [] and load.ok > 100
    assert harness.status()["revision"] == 11
    assert harness.status()["models"]["digits"]["weights"]["release"] == {"1": 10, "2": 90}
    assert harness.workers() == workers
    assert "without a reload" in capsys.readouterr().out
    assert history_main(_rt(harness)) == 0
    assert capsys.readouterr().out.count("revision") >= 11


def test_ten_reloading_applies_under_load(harness, upstreams, tools, capsys) -> None:
    """Wiring changes (timeouts here) reload nginx: in-flight requests finish on the old workers.

    A reload closes idle keep-alive connections; a request written into one at that very
    instant is reset before nginx reads it. Clients retry those (nothing was processed), as
    browsers and Go do: this load does too, once, and counts anything else as a failure.
    """
    harness.start(tools.two_versions(upstreams))
    workers = harness.workers()
    with Load(harness, tools, retry_unsent=True) as load:
        for i in range(10):
            models = tools.two_versions(upstreams, timeout=f"{2 + i}s")
            path = harness.write(harness.release(models))
            assert apply_main([str(path), *_rt(harness)]) == 0, capsys.readouterr().err
            time.sleep(0.1)
    assert load.failures == [] and load.ok > 100
    assert "reloaded and verified" in capsys.readouterr().out
    assert set(harness.workers()).isdisjoint(workers)


def test_invalid_release_changes_nothing(harness, upstreams, tools, capsys) -> None:
    harness.start(tools.two_versions(upstreams))
    before = harness.status()["checksum"]
    bad = harness.tmp / "bad.yaml"
    bad.write_text("revision: 5\nmodels:\n  digits:\n    versions: {1: {}}\n    timeout: forever\n")
    assert validate_main([str(bad)]) == 2
    assert apply_main([str(bad), *_rt(harness)]) == 2
    err = capsys.readouterr().err
    assert "nothing changed" in err and "bad.yaml:5: models.digits.timeout: 'forever'" in err
    assert harness.status()["checksum"] == before


def test_config_failing_nginx_t_changes_nothing(harness, upstreams, tools, capsys) -> None:
    harness.start(tools.two_versions(upstreams))
    before = current_revision(harness.runtime)
    models = tools.two_versions(upstreams)
    models["digits"]["versions"]["2"]["upstreams"] = ["no-such-host.invalid:9000"]
    path = harness.write(harness.release(models))
    assert apply_main([str(path), *_rt(harness)]) == 1
    err = capsys.readouterr().err
    assert "nginx -t rejected" in err and "no-such-host.invalid" in err
    assert current_revision(harness.runtime) == before
    assert harness.status()["checksum"] == before.checksum
    assert harness.infer("digits")[0] == 200


def test_reload_that_nginx_refuses_is_reported_and_undone(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    before = current_revision(harness.runtime)
    # nginx -t passes, but the reload cannot bind the new port: only verification sees it.
    import socket

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    try:
        harness.listen = f"127.0.0.1:{blocker.getsockname()[1]}"
        path = harness.write(harness.release(tools.two_versions(upstreams)))
        with pytest.raises(DeployError, match="still serving"):
            apply_release(path, harness.runtime)
    finally:
        blocker.close()
    assert current_revision(harness.runtime) == before
    assert harness.status()["checksum"] == before.checksum


def test_revision_must_increase(harness, upstreams, tools, capsys) -> None:
    harness.start(tools.two_versions(upstreams))
    harness.revision = 0  # the next release reuses revision 1
    path = harness.write(harness.release(tools.two_versions(upstreams)), "same.yaml")
    assert apply_main([str(path), *_rt(harness)]) == 1
    assert "not newer than revision 1" in capsys.readouterr().err


def test_rollback_restores_the_previous_revision_quickly(harness, upstreams, tools, capsys) -> None:
    harness.start(tools.two_versions(upstreams))
    first = harness.status()["checksum"]
    models = tools.two_versions(upstreams)
    models["digits"]["release"]["split"] = {"2": 100}
    assert apply_main([str(harness.write(harness.release(models))), *_rt(harness)]) == 0
    assert harness.status()["revision"] == 2
    started = time.monotonic()
    assert rollback_main(_rt(harness)) == 0
    print(f"rollback took {time.monotonic() - started:.2f}s")  # reported, never asserted
    status = harness.status()
    assert status["revision"] == 1 and status["checksum"] == first
    assert rollback_main([*_rt(harness), "--to", "2"]) == 0
    assert harness.status()["revision"] == 2
    assert rollback_main([*_rt(harness), "--to", "9"]) == 1
    assert "never applied" in capsys.readouterr().err


def test_settings_only_release_takes_effect_without_reload(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams))
    workers = harness.workers()
    models = tools.two_versions(upstreams)
    models["digits"]["breaker"]["failures"] = 1
    models["digits"]["fallback"] = {"status": 200, "body": {"outputs": [], "placeholder": True}}
    assert "without a reload" in apply_release(
        harness.write(harness.release(models)), harness.runtime
    )
    upstreams["2"].control(status=500, marked=True)
    status, headers, body = harness.infer("digits", version="2")
    assert status == 200 and body == {"outputs": [], "placeholder": True}
    assert headers["x-weir-fallback"] == "upstream-error"
    assert harness.breaker("digits", "2") == "open"  # one failure is enough now
    assert harness.workers() == workers


def test_changing_a_rate_limit_key_reloads_cleanly(harness, upstreams, tools) -> None:
    limit = {"rate": "1r/s", "burst": 1, "key": "global"}
    harness.start(tools.two_versions(upstreams, rate_limit=limit))
    limit = {**limit, "key": "header:X-Api-Key"}
    models = tools.two_versions(upstreams, rate_limit=limit)
    assert "reloaded and verified" in apply_release(
        harness.write(harness.release(models)), harness.runtime
    )
    codes = [harness.infer("digits", headers={"X-Api-Key": key})[0] for key in "abcd"]
    assert codes == [200, 200, 200, 200]  # one bucket per key now, not one for everybody


def test_a_reload_lets_a_slow_request_finish(harness, upstreams, tools) -> None:
    harness.start(tools.two_versions(upstreams, timeout="3s"))
    upstreams["1"].control(delay=1.0)
    result: dict = {}

    def slow() -> None:
        result["answer"] = harness.infer("digits", version="1")

    thread = threading.Thread(target=slow)
    thread.start()
    deadline = time.monotonic() + 10
    while upstreams["1"].count() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert upstreams["1"].count() == 1  # the request is inside the upstream now
    models = tools.two_versions(upstreams, timeout="4s")  # wiring change: a real reload
    assert "reloaded" in apply_release(harness.write(harness.release(models)), harness.runtime)
    thread.join()
    status, headers, body = result["answer"]
    assert status == 200 and "x-weir-fallback" not in headers and body["model_version"] == "1"


def test_a_restart_serves_the_revision_that_was_live_never_a_file(
    harness, upstreams, tools
) -> None:
    harness.start(tools.two_versions(upstreams))  # revision 1, from release-1.yaml
    first = harness.status()["checksum"]
    models = tools.two_versions(upstreams)
    models["digits"]["release"]["split"] = {"2": 100}
    assert apply_main([str(harness.write(harness.release(models))), *_rt(harness)]) == 0
    assert rollback_main(_rt(harness)) == 0  # back on revision 1
    harness.restart()  # no file, as `weir up` restarts a crashed edge
    assert harness.status()["revision"] == 1 and harness.status()["checksum"] == first
    harness.stop()
    # A file not newer than what was applied here is refused, saying what to do instead.
    with pytest.raises(DeployError, match=r"revision 2 is not newer .* without a file"):
        Edge(harness.runtime).start(harness.tmp / "release-2.yaml")
    assert harness.runtime.edge_pid() is None
    # The file the live revision was rendered from is served as it is: no new history entry.
    entries = len(History(harness.runtime.history).entries())
    harness.edge = Edge(harness.runtime).start(harness.tmp / "release-1.yaml")
    assert harness.status()["checksum"] == first
    assert len(History(harness.runtime.history).entries()) == entries


def test_a_restart_after_a_sigkilled_master_clears_its_orphaned_workers(
    harness, upstreams, tools
) -> None:
    harness.start(tools.two_versions(upstreams))
    workers = harness.workers()
    master = harness.edge.process
    os.kill(master.pid, signal.SIGKILL)
    master.process.wait(5)
    assert harness.infer("digits")[0] == 200  # orphans serve on, with nobody to reload them
    harness.edge = Edge(harness.runtime).start()
    assert not [pid for pid in workers if alive(pid)]
    assert harness.infer("digits")[0] == 200
    assert set(harness.workers()).isdisjoint(workers)


@pytest.mark.parametrize(
    "timeout", ["1s", "1000ms", "59s", "2m", "1h", "7", "500ms", "1500ms", "1001ms", "1ms"]
)
def test_every_timeout_that_validates_passes_nginx_t(tmp_path, timeout) -> None:
    """What the schema accepts, the rendered nginx.conf states as nginx accepts it: a fractional
    timeout in whole milliseconds (`2.5s` would fail `nginx -t`)."""
    text = (
        "revision: 1\nedge: {listen: 127.0.0.1:1, admin_listen: 127.0.0.1:2, admin_auth: open}\n"
        "sidecars: {devices: cpu}\nmodels:\n  m:\n    versions: {1: {}}\n"
        f"    timeout: {timeout}\n    fallback: {{status: 503, body: {{error: resting}}}}\n"
    )
    runtime = RuntimeDir(tmp_path / "rt")
    nginx = find_nginx()
    loaded = LoadedRelease(parse_release(text), tmp_path / "r.yaml", text)
    nginx_test(nginx, runtime, render_revision(loaded, runtime, nginx).conf)
