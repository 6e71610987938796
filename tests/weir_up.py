"""A `weir up` a test starts on free ports: its command line's log lines collected as they come,
waited on, the process itself for the test to stop by its PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.processes import descendants

ROOT = Path(__file__).resolve().parents[1]
READY_BANNER = "Weir is up."


def link_samples(models: Path) -> None:
    """A repository of links to the sample models: each version folder, and each model
    folder's own files (config.yaml, a model class, handwriting's sample image), so that tests
    may add versions without touching the samples."""
    for version in (ROOT / "models").glob("*/[0-9]*"):
        (models / version.parent.name).mkdir(parents=True, exist_ok=True)
        (models / version.parent.name / version.name).symlink_to(version)
    for source in (ROOT / "models").glob("*/*"):
        if source.is_file() and (models / source.parent.name).is_dir():
            (models / source.parent.name / source.name).symlink_to(source)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WeirUp:
    """One `weir up` process at a time; `launch` again after it stopped starts the next."""

    lines: list[str]
    process: subprocess.Popen[str]

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "scripts.cli", "up", *args]

    def launch(self, *args: str) -> None:
        """Start `self.command(ARGS)` from the project root, without the shell's admin token
        (the stack uses its runtime directory's token file)."""
        self.lines = []
        env = {k: v for k, v in os.environ.items() if k != "WEIR_ADMIN_TOKEN"}
        self.process = subprocess.Popen(
            self.command(*args),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:
            self.lines.append(line)

    def log(self) -> str:
        return "".join(self.lines)

    def wait_for_log(self, text: str, timeout_s: float = 180, after: int = 0) -> None:
        """Until `text` is among the log lines from line `after` on; fail if `weir up` exits."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in "".join(self.lines[after:]):
                return
            if self.process.poll() is not None:
                pytest.fail(f"weir up exited {self.process.returncode}:\n{self.log()[-4000:]}")
            time.sleep(0.1)
        pytest.fail(f"{text!r} not in the log after {timeout_s}s:\n{self.log()[-4000:]}")

    def kill_tree(self) -> None:
        """SIGKILL `weir up` and every process below it: a test's teardown, whatever state the
        test left it in (a process that exits meanwhile is fine)."""
        if self.process.poll() is None:
            for pid in descendants(self.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.kill()
            self.process.wait()
