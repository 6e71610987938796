"""Foreground supervision of Weir's processes for `weir up`.

Each child runs in its own session (process group), so stopping it stops everything it forked
(gunicorn workers, nginx workers). Its output is copied to our stdout line by line behind a
`[name]` prefix. A child that dies while we are not stopping is restarted with exponential
backoff, reset once it has stayed up for a while.

Should the supervisor itself be SIGKILLed, its children go too: each is told by the kernel
(PR_SET_PDEATHSIG: SIGTERM, a graceful stop), and the guardian (`guardian.py`, a process that
outlives us) SIGKILLs the process groups we started, gunicorn's workers and `weir edge` with
them (`weir edge`'s nginx has its own PDEATHSIG, and nginx's workers exit with their master).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0  # up this long: the next crash starts the backoff afresh
PR_SET_PDEATHSIG = 1
GUARDIAN = Path(__file__).with_name("guardian.py")

_print_lock = threading.Lock()


def say(name: str, line: str) -> None:
    with _print_lock:
        sys.stdout.write(f"[{name}] {line.rstrip()}\n")
        sys.stdout.flush()


def _term_with_parent() -> None:
    """In the child before exec: SIGTERM when the supervisor dies."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Guardian:
    """The process that kills our children's groups once we are gone (see `guardian.py`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            [sys.executable, str(GUARDIAN)], stdin=subprocess.PIPE, text=True
        )

    def _say(self, line: str) -> None:
        with self._lock, contextlib.suppress(OSError, ValueError):
            assert self.process.stdin
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()

    def watch(self, pgid: int) -> None:
        self._say(f"+{pgid}")

    def release(self, pgid: int) -> None:
        self._say(f"-{pgid}")

    def remove_when_gone(self, cgroup: Path) -> None:
        """A cgroup to remove once this supervisor is gone (its own stop removes it too)."""
        self._say(f"@{cgroup}")

    def close(self) -> None:
        with self._lock, contextlib.suppress(OSError, ValueError):
            assert self.process.stdin
            self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


@dataclass
class Child:
    """One supervised command. `stop_signal` asks it to drain; SIGKILL follows after `grace_s`."""

    name: str
    argv: Sequence[str]
    env: dict[str, str] | None = None
    stop_signal: int = signal.SIGTERM
    grace_s: float = 30.0
    on_start: Callable[[Child], None] | None = None
    # Run in the child before it execs, after its session is made (a CPU set, a cgroup).
    preexec: Callable[[], None] | None = field(default=None, repr=False)
    guardian: Guardian | None = field(default=None, repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_at: float = 0.0
    backoff_s: float = field(init=False)
    restart_at: float | None = None

    def __post_init__(self) -> None:
        self.backoff_s = BACKOFF_FIRST_S

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        self.process = subprocess.Popen(
            list(self.argv),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=self._preexec,
        )
        if self.guardian is not None:
            self.guardian.watch(self.process.pid)  # its own session: pgid == pid
        self.started_at = time.monotonic()
        self.restart_at = None
        threading.Thread(target=self._copy_output, daemon=True).start()
        if self.on_start:
            self.on_start(self)

    def _preexec(self) -> None:
        _term_with_parent()
        if self.preexec is not None:
            self.preexec()

    def _copy_output(self) -> None:
        assert self.process and self.process.stdout
        for raw in self.process.stdout:
            say(self.name, raw.decode("utf-8", "replace"))

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self, signum: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def stop(self) -> None:
        """Ask the child to drain, wait up to its grace period, then kill its whole group."""
        if self.process is None:
            return
        if self.running():
            self.signal_group(self.stop_signal)
            try:
                self.process.wait(timeout=self.grace_s)
            except subprocess.TimeoutExpired:
                say(self.name, f"still running after {self.grace_s:.0f}s: killing it")
        # Workers that outlived their master (or a master that ignored us) go too.
        self.signal_group(signal.SIGKILL)
        self.process.wait()
        self.forget_group()

    def forget_group(self) -> None:
        """The group is gone (killed, its leader reaped): the guardian no longer guards it."""
        if self.guardian is not None and self.process is not None:
            self.guardian.release(self.process.pid)


class Supervisor:
    """Keeps a set of children alive until `stop()`; restarts crashed ones with backoff."""

    def __init__(self, guardian: Guardian | None = None) -> None:
        self.children: list[Child] = []
        self.stopping = threading.Event()
        self.guardian = guardian

    def add(self, child: Child) -> Child:
        self.children.append(child)
        if child.guardian is None:
            child.guardian = self.guardian
        child.start()
        return child

    def check(self) -> None:
        """One supervision pass: schedule restarts of children that died, run those that are due."""
        now = time.monotonic()
        for child in self.children:
            if self.stopping.is_set() or child.running():
                continue
            if child.restart_at is None:
                code = child.process.returncode if child.process else None
                # Its orphans (workers of a SIGKILLed master) would keep serving stale state.
                child.signal_group(signal.SIGKILL)
                child.forget_group()
                if now - child.started_at > HEALTHY_AFTER_S:
                    child.backoff_s = BACKOFF_FIRST_S
                say(child.name, f"exited with {code}; restarting in {child.backoff_s:.0f}s")
                child.restart_at = now + child.backoff_s
                child.backoff_s = min(child.backoff_s * 2, BACKOFF_MAX_S)
            elif now >= child.restart_at:
                say(child.name, "restarting")
                child.start()

    def run_until_stopped(self, poll_s: float = 0.5) -> None:
        while not self.stopping.wait(poll_s):
            self.check()

    def stop(self, order: Sequence[Child] | None = None) -> None:
        """Stop children in the given order (default: reverse start order)."""
        self.stopping.set()
        for child in order or list(reversed(self.children)):
            child.stop()
        if self.guardian is not None:
            self.guardian.close()
