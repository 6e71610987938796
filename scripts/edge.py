"""Run the edge: `weir edge` in the foreground, or `Edge` from Python (tests, bench, `weir up`).

    from scripts.edge import Edge
    edge = Edge(RuntimeDir(tmp))          # or Edge.default()
    edge.start("release.yaml")            # render, test, switch, spawn nginx, wait until serving
    ...
    edge.stop()                           # graceful (QUIT), then TERM/KILL after a timeout

`with Edge(runtime).started(path) as edge:` does the same as a context manager.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from scripts.deploy import (
    DeployError,
    Revision,
    change_lock,
    check_token,
    current_revision,
    go_live,
    log_offset,
    log_since,
    nginx_test,
    render_revision,
    require_newer,
    wait_for_checksum,
)
from scripts.edge.render import CONF_NAME
from scripts.nginx_bin import NginxBinary, NginxNotFound, find_nginx
from scripts.release import ReleaseError, load_release
from scripts.runtime import RuntimeDir, ensure_token


class Edge:
    """One nginx master serving the `current` revision of a runtime directory."""

    def __init__(self, runtime: RuntimeDir, nginx: NginxBinary | None = None) -> None:
        self.runtime = runtime
        self.nginx = nginx or find_nginx()
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def default(cls) -> Edge:
        return cls(RuntimeDir.default())

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else self.runtime.edge_pid()

    def prepare(self, release_path: Path | str | None) -> Revision:
        """Make `current` hold release_path (or keep it when None or unchanged)."""
        runtime = self.runtime
        runtime.ensure()
        current = current_revision(runtime)
        if release_path is None:
            if current is None:
                raise DeployError(
                    f"no applied release in {runtime.root}: give a release file (weir edge FILE)"
                )
            check_token(load_release(current.dir / "release.yaml").release, runtime)
            nginx_test(self.nginx, runtime, current.conf)
            return current
        loaded = load_release(release_path)
        check_token(loaded.release, runtime)
        if current is not None and _same_text(current.dir / "release.yaml", loaded.text):
            nginx_test(self.nginx, runtime, current.conf)
            return current  # the same release again: keep the history as it is
        with change_lock(runtime):
            hint = "or run `weir edge` without a file to serve the current one"
            require_newer(loaded, release_path, runtime, hint)
            revision = render_revision(loaded, runtime, self.nginx)
            go_live(runtime, revision, "apply", source=str(Path(release_path).absolute()))
        return revision

    def _spawn(self, revision: Revision, stderr: int | None) -> subprocess.Popen[bytes]:
        running = self.runtime.edge_pid()
        if running is not None:
            raise DeployError(
                f"an edge already runs for {self.runtime.root} (pid {running}): "
                "use `weir apply` to change it, or stop it first"
            )
        conf = self.runtime.current / CONF_NAME
        offset = log_offset(self.runtime)
        process = subprocess.Popen(
            [self.nginx.path, "-p", str(self.runtime.edge), "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        self.process = process
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise DeployError(
                        f"nginx exited at start (code {process.returncode}):\n    "
                        + "\n    ".join(_tail(self.runtime.error_log, offset))
                    )
                if self.runtime.edge_pid() == process.pid:
                    break
                time.sleep(0.02)
            wait_for_checksum(self.runtime, revision, offset)
        except BaseException:
            self.stop()
            raise
        return process

    def start(self, release_path: Path | str | None = None) -> Edge:
        """Prepare the release and start nginx in the background; returns when it serves."""
        revision = self.prepare(release_path)
        log = (self.runtime.logs / "edge-stderr.log").open("ab")
        try:
            self._spawn(revision, log.fileno())
        finally:
            log.close()
        return self

    @contextlib.contextmanager
    def started(self, release_path: Path | str | None = None) -> Iterator[Edge]:
        self.start(release_path)
        try:
            yield self
        finally:
            self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (QUIT: finish in-flight requests), then TERM, then KILL."""
        process = self.process
        if process is None:
            return
        for sig, wait in ((signal.SIGQUIT, timeout), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(wait)
        self.process = None

    def worker_pids(self) -> list[int]:
        """The master's live workers (a reload replaces them; admin changes do not)."""
        pid = self.pid
        if pid is None:
            return []
        children = Path(f"/proc/{pid}/task/{pid}/children")
        try:
            pids = [int(p) for p in children.read_text().split()]
        except OSError:
            return []
        workers = []
        for child in pids:
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"worker process" in cmdline and b"shutting down" not in cmdline:
                workers.append(child)
        return sorted(workers)


def _same_text(path: Path, text: str) -> bool:
    try:
        return path.read_text() == text
    except OSError:
        return False


def _tail(path: Path, offset: int, lines: int = 8) -> list[str]:
    text = log_since(path, offset)
    if text is None:
        return [f"(no error log at {path})"]
    return text.strip().splitlines()[-lines:] or ["(nothing in the error log)"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="weir edge", description="run the edge alone in the foreground (Ctrl-C stops it)"
    )
    parser.add_argument("release", nargs="?", help="release YAML (default: the current revision)")
    parser.add_argument("--runtime-dir", help="default: $WEIR_RUNTIME_DIR or .weir")
    parser.add_argument(
        "--init-token",
        action="store_true",
        help="create a random admin token file (mode 0600) when none exists",
    )
    args = parser.parse_args(argv)
    runtime = RuntimeDir.from_arg(args.runtime_dir)
    # Handlers go in before nginx starts: a Ctrl-C that lands while nginx comes up
    # is remembered and honoured once it serves, instead of killing this process
    # with a traceback and leaving a half-started edge behind.
    serving: list[subprocess.Popen[bytes]] = []
    stop_asked: list[int] = []

    def stop_gracefully(signum: int, _frame: object) -> None:
        # Ctrl-C and SIGTERM stop gracefully (in-flight requests finish).
        stop_asked.append(signum)
        for process in serving:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGQUIT)

    def reload(_signum: int, _frame: object) -> None:
        for process in serving:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGHUP)

    signal.signal(signal.SIGINT, stop_gracefully)
    signal.signal(signal.SIGTERM, stop_gracefully)
    signal.signal(signal.SIGHUP, reload)
    try:
        edge = Edge(runtime)
        if args.init_token:
            runtime.ensure()
            ensure_token(runtime)
        revision = edge.prepare(args.release)
        process = edge._spawn(revision, None)
    except (DeployError, ReleaseError, NginxNotFound) as exc:
        print(f"weir edge: {exc}", file=sys.stderr)
        return 1
    serving.append(process)
    print(
        f"weir edge: revision {revision.revision} serving (nginx pid {process.pid}); "
        f"logs in {runtime.logs}; Ctrl-C stops",
        file=sys.stderr,
    )
    if stop_asked:
        os.kill(process.pid, signal.SIGQUIT)
    return process.wait()
