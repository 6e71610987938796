"""The nginx master of a runtime directory as a process: test a config, start, stop, find its
workers, and clear what a crashed edge left behind.

A master started here leads its own session (a Ctrl-C meant for `weir edge` must not reach
nginx as a fast shutdown), so its workers share its process group: that group is how workers
orphaned by a SIGKILLed master are found again, by the master's pid kept in `run/edge.pid`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path

from scripts.edge.errors import DeployError
from scripts.edge.nginx import NginxBinary
from scripts.runtime import RuntimeDir

START_SECONDS = 10.0
PR_SET_PDEATHSIG = 1


def nginx_test(nginx: NginxBinary, runtime: RuntimeDir, conf: Path) -> None:
    result = subprocess.run(
        [nginx.path, "-t", "-q", "-p", str(runtime.edge), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().replace("\n", "\n    ")
        raise DeployError(f"nginx -t rejected the rendered config {conf}:\n    {detail}")


def log_offset(runtime: RuntimeDir) -> int:
    """Where the error log ends now: what nginx writes after this answers the next action."""
    try:
        return runtime.error_log.stat().st_size
    except FileNotFoundError:
        return 0


def log_since(log: Path, offset: int) -> str | None:
    """What nginx wrote to its error log after offset (None: no log to read)."""
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except OSError:
        return None


def new_errors(log: Path, offset: int) -> list[str]:
    """The `[emerg]` lines written after offset: nginx refusing a config (an `[alert]` is not a
    refusal: nginx logs those for e.g. a worker it had to kill, and carries on)."""
    return [line for line in (log_since(log, offset) or "").splitlines() if "[emerg]" in line]


def log_tail(path: Path, offset: int, lines: int = 8) -> list[str]:
    text = log_since(path, offset)
    if text is None:
        return [f"(no error log at {path})"]
    return text.strip().splitlines()[-lines:] or ["(nothing in the error log)"]


def proc_stat(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: state, ppid, pgrp, session, ..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def nginx_group(pgid: int) -> list[int]:
    """Live nginx processes (master, workers, cache helpers) of process group pgid."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fields = proc_stat(pid)
        in_group = fields is not None and fields[0] != "Z" and fields[2] == str(pgid)
        if in_group and _cmdline(pid).startswith(b"nginx: "):
            found.append(pid)
    return sorted(found)


def clear_leftovers(runtime: RuntimeDir) -> str | None:
    """Stop the nginx processes a crashed edge of this runtime directory left holding its ports.

    Workers of a SIGKILLed master serve on with no master to reload or stop them; a master
    whose parent died and that nobody supervises is the same. Only processes of the process
    group of the master named in `run/edge.pid` whose command line is nginx's are touched; a
    master that still has its parent is a running edge and is refused. Returns what it did.
    """
    try:
        master = int(runtime.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    live = runtime.edge_pid()
    if live is not None:
        fields = proc_stat(live)
        if fields is None or fields[1] != "1" or os.getpid() == 1:
            raise DeployError(
                f"an edge already runs for {runtime.root} (pid {live}): "
                "use `weir apply` to change it, or stop it first"
            )
    victims = nginx_group(master)
    if not victims:
        return None
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while nginx_group(master) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(FileNotFoundError):
        runtime.pid_file.unlink()
    return f"stopped {len(victims)} nginx process(es) left by the crashed edge (pid {master})"


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies, so a SIGKILLed
    `weir edge` takes its nginx (and nginx its workers) with it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class NginxProcess:
    """One nginx master serving `current` of a runtime directory, started by this process."""

    def __init__(self, process: subprocess.Popen[bytes], runtime: RuntimeDir) -> None:
        self.process = process
        self.runtime = runtime

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def spawn(
        cls,
        nginx: NginxBinary,
        runtime: RuntimeDir,
        stderr: int | None,
        *,
        die_with_parent: bool = False,
    ) -> NginxProcess:
        """Start nginx on `current` and return once its master wrote the pid file (call
        `clear_leftovers` first: a crashed edge's workers would hold the ports)."""
        offset = log_offset(runtime)
        process = subprocess.Popen(
            [nginx.path, "-p", str(runtime.edge), "-c", str(runtime.current / "nginx.conf")],
            stdin=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,
        )
        started = cls(process, runtime)
        deadline = time.monotonic() + START_SECONDS
        while runtime.edge_pid() != process.pid:
            if process.poll() is not None:
                raise DeployError(
                    f"nginx exited at start (code {process.returncode}):\n    "
                    + "\n    ".join(log_tail(runtime.error_log, offset))
                )
            if time.monotonic() > deadline:
                started.stop()
                raise DeployError(f"nginx wrote no pid file within {START_SECONDS:g}s")
            time.sleep(0.02)
        return started

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (QUIT: finish in-flight requests), then TERM, then KILL."""
        process = self.process
        for sig, wait in ((signal.SIGQUIT, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(wait)

    def worker_pids(self) -> list[int]:
        """The master's live workers (a reload replaces them; admin changes do not)."""
        return worker_pids(self.pid)


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children")
    try:
        pids = [int(p) for p in children.read_text().split()]
    except OSError:
        return []
    return sorted(
        child
        for child in pids
        if b"worker process" in (cmdline := _cmdline(child)) and b"shutting down" not in cmdline
    )
