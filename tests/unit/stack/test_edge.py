"""`weir edge`'s serving loop: a SIGHUP goes through the pipeline, never a raw reload."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from scripts.deploy import pipeline
from scripts.edge.errors import DeployError
from scripts.runtime import RuntimeDir
from scripts.stack import edge


class FakePopen:
    """Exits after `polls` waits; each wait runs `during` first (a signal arriving)."""

    def __init__(self, polls: int, during: list[object]) -> None:
        self.polls, self.during, self.pid = polls, during, 4242

    def wait(self, timeout: float | None = None) -> int:
        if self.during:
            hook = self.during.pop(0)
            assert callable(hook)
            hook()
        self.polls -= 1
        if self.polls > 0:
            raise subprocess.TimeoutExpired("nginx", timeout or 0)
        return 0


class FakeProcess:
    def __init__(self, popen: FakePopen) -> None:
        self.process, self.pid = popen, popen.pid


def test_sighup_reserves_current_through_the_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = RuntimeDir(tmp_path)
    calls: list[int] = []
    outcomes: list[object] = ["revision 3 reloaded and verified", DeployError("nginx -t: bad")]

    def reload_current(rt: RuntimeDir, pid: int) -> str:
        assert rt == runtime
        calls.append(pid)
        answer = outcomes.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    monkeypatch.setattr(pipeline, "reload_current", reload_current)
    raw: list[tuple[int, int]] = []
    monkeypatch.setattr(edge.os, "kill", lambda pid, sig: raw.append((pid, sig)))
    asked: list[int] = []
    hup = lambda: asked.append(signal.SIGHUP)  # noqa: E731
    popen = FakePopen(polls=4, during=[hup, lambda: None, hup])
    assert edge.serve(runtime, FakeProcess(popen), asked, poll_s=0.0) == 0  # type: ignore[arg-type]
    assert calls == [4242, 4242] and raw == []
    err = capsys.readouterr().err
    assert "SIGHUP: revision 3 reloaded and verified" in err
    assert "reload refused, nothing changed: nginx -t: bad" in err
