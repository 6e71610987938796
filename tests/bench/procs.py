"""Start, watch and stop the servers under test: dynamic loopback ports, readiness, tree RSS.

Every process is started by us in its own session and stopped by PID (the leader first, then
whatever is left of the tree it grew), so Ctrl-C or a failed cell never leaves a server behind
and nothing that someone else started is ever touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

PAGE_KIB = 1024


def free_port() -> int:
    """A loopback port nobody listens on now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: split after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    """PIDs of `root` and all its descendants that are alive now."""
    children = _children_map()
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_bytes(pids: list[int]) -> int:
    """Sum of VmRSS over `pids` (shared pages count once per process, as `ps` shows them)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * PAGE_KIB
                    break
        except OSError:
            continue
    return total


def pss_bytes(pids: list[int]) -> int:
    """Sum of Pss over `pids` (/proc/PID/smaps_rollup): each shared page split between the
    processes mapping it, so workers sharing libraries and forked memory are not counted twice."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * PAGE_KIB
                    break
        except OSError:
            continue
    return total


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds consumed so far by `pids` (all their threads)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / tick


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class Server:
    """One server process (and its workers) started from `argv`, ready when `ready_path` is 200."""

    label: str
    argv: list[str]
    port: int
    log_path: Path
    ready_path: str = "/v2/health/ready"
    env: dict[str, str] = field(default_factory=dict)
    cpus: frozenset[int] | None = None  # CPU affinity of the whole tree (None: inherited)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _pin(self) -> None:
        """In the child, before exec: its workers and ORT's threads inherit the affinity."""
        if self.cpus is not None:
            os.sched_setaffinity(0, self.cpus)

    def start(self, ready_timeout: float = 90.0) -> None:
        self.spawn()
        self.wait_ready(ready_timeout)

    def spawn(self) -> None:
        """Start the process, not waiting for it (`wait_ready` does): servers load together."""
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
                preexec_fn=self._pin if self.cpus is not None else None,
            )

    def wait_ready(self, ready_timeout: float = 90.0) -> None:
        assert self.proc is not None, "spawn() first"
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited with {self.proc.returncode}: {self.log_tail()}"
                )
            with contextlib.suppress(OSError):
                if http_get(self.base_url + self.ready_path, timeout=1.0)[0] == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.label} not ready after {ready_timeout:.0f}s: {self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return "(no log)"
        return f"log {self.log_path}:\n  " + "\n  ".join(text)

    def pids(self) -> list[int]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        return process_tree(self.proc.pid)

    def rss(self) -> int:
        return rss_bytes(self.pids())

    def pss(self) -> int:
        return pss_bytes(self.pids())

    def cpu(self) -> float:
        return cpu_seconds(self.pids())

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the leader (gunicorn drains its workers), SIGKILL what is left after `grace`."""
        if self.proc is None:
            return
        tree = self.pids()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace)
        self.proc = None


class RssSampler:
    """Peak RSS and peak PSS of a server's process tree, sampled in the background while a cell
    runs (PSS every `pss_every` samples: smaps_rollup walks the page tables, RSS does not)."""

    def __init__(self, server: Server, interval: float = 0.25, pss_every: int = 4) -> None:
        self._server, self._interval, self._pss_every = server, interval, pss_every
        self._stop = threading.Event()
        self.peak = 0
        self.peak_pss = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, pss: bool) -> None:
        pids = self._server.pids()
        self.peak = max(self.peak, rss_bytes(pids))
        if pss:
            self.peak_pss = max(self.peak_pss, pss_bytes(pids))

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            self._sample(n % self._pss_every == 0)
            n += 1
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(pss=True)


@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[list[Server]]:
    """Start each server in turn; stop every started one on the way out, whatever happened."""
    started: list[Server] = []
    try:
        for server in servers:
            started.append(server)
            server.start()
        yield started
    finally:
        for server in reversed(started):
            server.stop()


@contextlib.contextmanager
def running_together(servers: list[Server], ready_timeout: float = 180.0) -> Iterator[None]:
    """Start every server at once (they load their models side by side), wait until each is
    ready; stop every started one on the way out, whatever happened."""
    started: list[Server] = []
    try:
        for server in servers:
            started.append(server)
            server.spawn()
        for server in servers:
            server.wait_ready(ready_timeout)
        yield
    finally:
        # Side by side too: each stop waits for its own drain (a second or more).
        with ThreadPoolExecutor(max_workers=max(1, len(started))) as pool:
            list(pool.map(Server.stop, started))
