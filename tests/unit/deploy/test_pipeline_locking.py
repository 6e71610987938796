"""What the pipeline decides holding the change lock: a restart serves what is live then, a
failed go-live leaves no revision directory behind, pruning removes unreferenced ones."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from scripts.deploy import pipeline
from scripts.deploy.changes import plan_current, plan_file
from scripts.deploy.history import History
from scripts.deploy.lock import change_lock
from scripts.edge.errors import DeployError
from scripts.edge.nginx import NginxBinary
from scripts.edge.revisions import Revision, current_revision, switch_current
from scripts.release import load_release
from scripts.runtime import RuntimeDir
from tests.revisions import RELEASE
from tests.revisions import kept_revision as kept

NGINX = NginxBinary("/bin/false")


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RuntimeDir:
    monkeypatch.setenv("WEIR_ADMIN_TOKEN", "mine")
    monkeypatch.setattr(pipeline, "nginx_test", lambda *_a: None)
    monkeypatch.setattr(pipeline, "clear_leftovers", lambda _rt: None)
    rt = RuntimeDir(tmp_path / "rt")
    rt.ensure()
    return rt


class FakeProcess:
    pid = 4242

    def stop(self, _timeout: float = 10.0) -> None:
        pass


@pytest.mark.parametrize("from_file", [False, True])
def test_a_restart_during_an_apply_serves_the_applied_revision(
    runtime: RuntimeDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, from_file: bool
) -> None:
    """The edge crashed while `weir apply 2` held the lock: its restart, planned on revision 1,
    must serve 2 once the apply is done, not switch `current` back to 1."""
    first = kept(runtime, 1)
    switch_current(runtime, first.dir)
    served: list[Path] = []

    def spawn(*_args: Any, **_kwargs: Any) -> FakeProcess:
        served.append(runtime.current.resolve())
        return FakeProcess()

    monkeypatch.setattr(pipeline.NginxProcess, "spawn", spawn)
    monkeypatch.setattr(pipeline, "wait_for_checksum", lambda *_a: None)
    release_file = tmp_path / "release-1.yaml"
    release_file.write_text(RELEASE.format(n=1))
    outcome: list[Any] = []
    with change_lock(runtime):  # `weir apply 2`, in the middle of its sidecar sync
        if from_file:  # `weir edge FILE` on the file revision 1 was applied from
            change = plan_file(runtime, release_file, serve_same=True)
        else:  # `weir edge`: a restart
            change = plan_current(runtime)
        assert change.revision == first
        restart = threading.Thread(
            target=lambda: outcome.append(
                pipeline.run(runtime, change, NGINX, pipeline.Spawn()).revision
                if not from_file
                else _refused(runtime, change)
            )
        )
        restart.start()
        time.sleep(0.2)  # the restart now waits for the lock
        second = kept(runtime, 2)  # the apply switches and records: "no edge running"
        switch_current(runtime, second.dir)
    restart.join(10)
    assert not restart.is_alive()
    assert current_revision(runtime) == second
    assert [e.revision for e in History(runtime.history).entries()] == [1, 2]
    if not from_file:
        assert outcome == [second] and served == [second.dir]
    else:  # the file is no longer what is live: applying it (revision 1) is refused
        assert outcome == ["refused"] and served == []


def _refused(runtime: RuntimeDir, change: Any) -> str:
    try:
        pipeline.run(runtime, change, NGINX, pipeline.Spawn())
    except DeployError as exc:
        assert "is not newer than revision 2" in str(exc)
        return "refused"
    return "served"


def test_a_failed_go_live_removes_its_fresh_revision(
    runtime: RuntimeDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = kept(runtime, 1)
    switch_current(runtime, first.dir)
    fresh = runtime.revisions / "r2-fresh"

    def render(loaded: Any, rt: RuntimeDir, _nginx: NginxBinary) -> Revision:
        fresh.mkdir()
        (fresh / "settings.json").write_text(
            json.dumps({"revision": 2, "checksum": "c2", "wiring": "w", "admin_listen": "x"})
        )
        return Revision.at(fresh)

    def go_live(*_args: Any) -> Any:
        raise DeployError("the edge refused it; revision 1 is still serving")

    monkeypatch.setattr(pipeline, "render_revision", render)
    monkeypatch.setattr(pipeline, "go_live", go_live)
    path = tmp_path / "release-2.yaml"
    path.write_text(RELEASE.format(n=2))
    with pytest.raises(DeployError):
        pipeline.apply_release(path, runtime, NGINX)
    assert not fresh.exists()
    assert first.dir.exists() and current_revision(runtime) == first
    assert load_release(path).release.revision == 2


def test_pruning_removes_old_unreferenced_revisions(runtime: RuntimeDir) -> None:
    first = kept(runtime, 1)
    live = kept(runtime, 2, record=False)  # `current`, though unrecorded: kept
    switch_current(runtime, live.dir)
    old = kept(runtime, 3, record=False)
    recent = kept(runtime, 4, record=False)
    long_ago = time.time() - pipeline.UNREFERENCED_GRACE_S - 60
    for directory in (old.dir, live.dir, first.dir):
        os.utime(directory, (long_ago, long_ago))
    pipeline.prune_revisions(runtime)
    assert first.dir.exists() and live.dir.exists() and recent.dir.exists()
    assert not old.dir.exists()


def test_reloading_current_tests_reloads_and_verifies_it(
    runtime: RuntimeDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = kept(runtime, 1)
    switch_current(runtime, live.dir)
    steps: list[tuple[str, Any]] = []
    monkeypatch.setattr(pipeline, "nginx_test", lambda _n, _rt, conf: steps.append(("-t", conf)))
    monkeypatch.setattr(
        pipeline, "reload_and_verify", lambda _rt, pid, rev: steps.append(("hup", (pid, rev)))
    )
    message = pipeline.reload_current(runtime, 4242, NGINX)
    assert steps == [("-t", live.conf), ("hup", (4242, live))]
    assert "revision 1 reloaded and verified" in message
