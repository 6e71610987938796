"""`weir rollout start ...` run by a test in the background, its output lines collected as
they come, waited on (bounded), stopped by its PID; and a loop of client traffic on a thread."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

import pytest

ROOT = Path(__file__).resolve().parents[1]


class Background:
    """`_run` (until `self.stop` is set) on a thread of its own, while in a `with` block."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(15)


class ControllerProcess:
    def __init__(self, args: list[str], env: dict[str, str], wait_s: float) -> None:
        self.wait_s = wait_s
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "rollout", "start", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def text(self) -> str:
        return "".join(self.lines)

    def _read(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:
            self.lines.append(line)

    def finished(self, timeout_s: float | None = None) -> int:
        try:
            return self.process.wait(timeout_s or self.wait_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail("the controller did not finish:\n" + "".join(self.lines)[-4000:])

    def wait_for(self, text: str, timeout_s: float | None = None) -> None:
        deadline = time.monotonic() + (timeout_s or self.wait_s)
        while time.monotonic() < deadline:
            if text in "".join(self.lines):
                return
            if self.process.poll() is not None:
                pytest.fail(f"the controller exited before {text!r}:\n" + "".join(self.lines))
            time.sleep(0.1)
        pytest.fail(f"{text!r} not printed:\n" + "".join(self.lines)[-4000:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(30)
