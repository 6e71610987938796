"""The pipeline's go-live step: what the admin API and the error log say, and undoing a failed
switch (the whole pipeline through real nginx: tests/integration/edge/test_apply.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scripts.deploy import pipeline
from scripts.deploy.commands import _fail
from scripts.edge import live
from scripts.edge.errors import DeployError, LiveChangeError
from scripts.edge.nginx import NginxBinary
from scripts.edge.revisions import Revision, current_revision, switch_current
from scripts.runtime import RuntimeDir

NGINX = NginxBinary("/bin/false")


def _revision(runtime: RuntimeDir, name: str, checksum: str, wiring: str = "w") -> Revision:
    directory = runtime.revisions / name
    directory.mkdir(parents=True)
    settings = {
        "revision": int(name[1:]),
        "checksum": checksum,
        "wiring": wiring,
        "admin_listen": "127.0.0.1:9",
    }
    (directory / "settings.json").write_text(json.dumps(settings))
    (directory / "nginx.conf").write_text("")
    return Revision.at(directory)


class FakeAdmin:
    """Stands in for AdminClient: `checksums` answers GET /admin/checksum in turn (the last
    repeats); `on_get` runs before each answer."""

    checksums: list[tuple[int, Any]]
    on_get: Callable[[], None] = staticmethod(lambda: None)
    gets = 0

    def __init__(self, address: str, token: str | None, timeout: float = 5.0) -> None:
        pass

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if method == "POST":
            return 200, {"ok": True}
        FakeAdmin.on_get()
        answer = FakeAdmin.checksums[min(FakeAdmin.gets, len(FakeAdmin.checksums) - 1)]
        FakeAdmin.gets += 1
        return answer


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RuntimeDir:
    monkeypatch.setattr(live, "AdminClient", FakeAdmin)
    monkeypatch.setattr(FakeAdmin, "gets", 0)
    monkeypatch.setattr(FakeAdmin, "on_get", staticmethod(lambda: None))
    monkeypatch.setenv("WEIR_ADMIN_TOKEN", "mine")
    rt = RuntimeDir(tmp_path / "rt")
    rt.ensure()
    return rt


def test_a_wrong_token_is_named_at_once(runtime: RuntimeDir) -> None:
    new = _revision(runtime, "r2", "new")
    FakeAdmin.checksums = [(403, {"error": "wrong admin token"})]
    with pytest.raises(DeployError) as info:
        live.wait_for_checksum(runtime, new, 0, timeout=2.0)
    message = str(info.value)
    assert "answered 403 wrong admin token" in message
    assert "WEIR_ADMIN_TOKEN in your shell" in message and "differs from the edge's" in message
    assert FakeAdmin.gets == 1  # no point waiting for a wrong token to become right


def test_a_missing_token_is_named_not_the_error_log(runtime: RuntimeDir) -> None:
    new = _revision(runtime, "r2", "new")
    FakeAdmin.checksums = [(401, {"error": "send the admin token"})]
    with pytest.raises(DeployError) as info:
        live.wait_for_checksum(runtime, new, 0, timeout=0.1)
    assert "answered 401 send the admin token" in str(info.value)
    assert "error.log" not in str(info.value)


def _logs(runtime: RuntimeDir, line: str) -> Any:
    """An on_get hook: nginx writes `line` to the error log while apply waits."""

    def write() -> None:
        with runtime.error_log.open("a") as log:
            log.write(f"2026/01/01 00:00:00 {line}\n")

    return staticmethod(write)


def test_old_emerg_lines_do_not_refuse_a_good_settings_change(runtime: RuntimeDir) -> None:
    new = _revision(runtime, "r2", "new")
    runtime.error_log.write_text("2026/01/01 00:00:00 [emerg] 1#1: an old failure\n")
    FakeAdmin.checksums = [(200, {"checksum": "old"}), (200, {"checksum": "new"})]
    live.publish_settings(runtime, new)


def test_an_alert_is_not_a_refusal(runtime: RuntimeDir) -> None:
    new = _revision(runtime, "r2", "new")

    FakeAdmin.on_get = _logs(runtime, "[alert] 1#1: worker process 7 exited on signal 9")
    FakeAdmin.checksums = [(200, {"checksum": "old"}), (200, {"checksum": "new"})]
    live.publish_settings(runtime, new)


def test_a_new_emerg_line_is_a_refusal(runtime: RuntimeDir) -> None:
    new = _revision(runtime, "r2", "new")

    FakeAdmin.on_get = _logs(runtime, "[emerg] 1#1: bind() failed")
    FakeAdmin.checksums = [(200, {"checksum": "old"})]
    with pytest.raises(DeployError, match=r"nginx refused the new config:\n    .*bind\(\) failed"):
        live.publish_settings(runtime, new)


def test_any_failure_after_the_switch_switches_back(
    runtime: RuntimeDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _revision(runtime, "r1", "old", wiring="a")
    new = _revision(runtime, "r2", "new", wiring="b")
    switch_current(runtime, old.dir)
    hups: list[int] = []
    monkeypatch.setattr(RuntimeDir, "edge_pid", lambda self: 4242)
    monkeypatch.setattr(pipeline.os, "kill", lambda pid, sig: hups.append(pid))

    def reload_fails(*_args: object) -> None:
        raise PermissionError("not allowed to signal 4242")

    monkeypatch.setattr(pipeline, "reload_and_verify", reload_fails)
    with pytest.raises(DeployError) as info:
        pipeline.go_live(runtime, NGINX, new, old)
    assert not isinstance(info.value, LiveChangeError)
    assert "not allowed to signal" in str(info.value)
    assert "revision 1 is still serving; nothing was changed" in str(info.value)
    assert current_revision(runtime).dir == old.dir
    assert hups == [4242]  # the old config reloaded again


def test_a_failed_switch_back_says_what_serves(
    runtime: RuntimeDir, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _revision(runtime, "r1", "old", wiring="a")
    new = _revision(runtime, "r2", "new", wiring="b")
    switch_current(runtime, old.dir)
    monkeypatch.setattr(RuntimeDir, "edge_pid", lambda self: 4242)

    def reload_fails(*_args: object) -> None:
        raise DeployError("nginx refused the new config")

    switches: list[Path] = []
    real_switch = switch_current

    def switch(rt: RuntimeDir, target: Path) -> None:
        switches.append(target)
        if len(switches) > 1:
            raise OSError("disk full")
        real_switch(rt, target)

    monkeypatch.setattr(pipeline, "reload_and_verify", reload_fails)
    monkeypatch.setattr(pipeline, "switch_current", switch)
    with pytest.raises(LiveChangeError) as info:
        pipeline.go_live(runtime, NGINX, new, old)
    assert "still points at revision 2" in str(info.value)
    assert "weir rollback --to 1" in str(info.value)
    assert _fail("apply", info.value) == 1
    err = capsys.readouterr().err
    assert "nothing changed" not in err and "FAILED after the switch" in err
