"""Run the edge: `weir edge [FILE]` in the foreground, or `Edge` from Python (tests, bench).

    from scripts.stack.edge import Edge
    edge = Edge(RuntimeDir(tmp))          # or Edge.default()
    edge.start("release.yaml")            # the pipeline, nginx started as its go-live step
    ...
    edge.stop()                           # graceful (QUIT), then TERM/KILL after a timeout

Both start through the one pipeline (`scripts.deploy.pipeline`). Without a file they re-serve
the last applied revision: that is how `weir up` restarts a crashed edge. SIGHUP to `weir edge`
re-serves the live revision through the pipeline too (`nginx -t`, reload, verify its checksum),
never a raw reload of whatever is on disk.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from scripts.args import add_release_file, command_parser
from scripts.deploy import pipeline
from scripts.deploy.changes import Change, plan_current, plan_file
from scripts.deploy.pipeline import Outcome, Spawn, run
from scripts.edge.errors import DeployError
from scripts.edge.nginx import NginxBinary, NginxNotFound, find_nginx
from scripts.edge.process import NginxProcess, worker_pids
from scripts.release import ReleaseError
from scripts.runtime import RuntimeDir, TokenError, ensure_token


def plan_start(runtime: RuntimeDir, release_path: Path | str | None) -> Change:
    """What an edge starting on release_path (None: no file) serves."""
    if release_path is None:
        return plan_current(runtime)
    return plan_file(runtime, release_path, serve_same=True)


class Edge:
    """One nginx master serving the `current` revision of a runtime directory."""

    def __init__(self, runtime: RuntimeDir, nginx: NginxBinary | None = None) -> None:
        self.runtime = runtime
        self.nginx = nginx or find_nginx()
        self.process: NginxProcess | None = None

    @classmethod
    def default(cls) -> Edge:
        return cls(RuntimeDir.default())

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else self.runtime.edge_pid()

    def start(self, release_path: Path | str | None = None) -> Edge:
        """Put the release (None: the last applied revision) live and start nginx in the
        background; returns when it serves."""
        change = plan_start(self.runtime, release_path)
        self.runtime.ensure()
        with (self.runtime.logs / "edge-stderr.log").open("ab") as log:
            self.process = run(self.runtime, change, self.nginx, Spawn(log.fileno())).process
        return self

    @contextlib.contextmanager
    def started(self, release_path: Path | str | None = None) -> Iterator[Edge]:
        self.start(release_path)
        try:
            yield self
        finally:
            self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            self.process.stop(timeout)
            self.process = None

    def worker_pids(self) -> list[int]:
        pid = self.pid
        return worker_pids(pid) if pid is not None else []


def parser() -> argparse.ArgumentParser:
    parser = command_parser("edge", "run the edge alone in the foreground (Ctrl-C stops it)")
    add_release_file(parser, optional=True)
    parser.add_argument(
        "--init-token",
        action="store_true",
        help="create a random admin token file (mode 0600) when none exists",
    )
    return parser


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    runtime = RuntimeDir.from_arg(args.runtime_dir)
    # Handlers go in before nginx starts: a Ctrl-C that lands while nginx comes up
    # is remembered and honoured once it serves, instead of killing this process
    # with a traceback and leaving a half-started edge behind.
    serving: list[NginxProcess] = []
    stop_asked: list[int] = []
    reload_asked: list[int] = []

    def stop_gracefully(signum: int, _frame: object) -> None:
        # Ctrl-C and SIGTERM stop gracefully (in-flight requests finish).
        stop_asked.append(signum)
        for process in serving:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGQUIT)

    def reload(signum: int, _frame: object) -> None:
        # Not a raw HUP to nginx: the serving loop re-serves `current` through the pipeline
        # (`nginx -t`, reload, verify the checksum), under the change lock.
        reload_asked.append(signum)

    signal.signal(signal.SIGINT, stop_gracefully)
    signal.signal(signal.SIGTERM, stop_gracefully)
    signal.signal(signal.SIGHUP, reload)
    try:
        if args.init_token:
            runtime.ensure()
            ensure_token(runtime)
        change = plan_start(runtime, args.file)
        # This process supervises nginx: should it be SIGKILLed, nginx stops too, so that a
        # restart finds the ports free.
        outcome: Outcome = run(runtime, change, find_nginx(), Spawn(None, die_with_parent=True))
    except ReleaseError as exc:  # the input is wrong (scripts/args.py: EXIT_CODES)
        print(f"weir edge: {exc}", file=sys.stderr)
        return 2
    except (DeployError, NginxNotFound, TokenError, OSError) as exc:
        print(f"weir edge: {exc}", file=sys.stderr)
        return 1
    assert outcome.process is not None
    serving.append(outcome.process)
    print(
        f"weir edge: {outcome.message}; logs in {runtime.logs}; Ctrl-C stops",
        file=sys.stderr,
    )
    if stop_asked:
        os.kill(outcome.process.pid, signal.SIGQUIT)
    return serve(runtime, outcome.process, reload_asked)


def serve(
    runtime: RuntimeDir, process: NginxProcess, reload_asked: list[int], poll_s: float = 0.2
) -> int:
    """Wait for nginx to exit; meanwhile each SIGHUP (appended to reload_asked by the handler)
    re-serves the live revision through the pipeline. Returns nginx's exit code."""
    while True:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return process.process.wait(poll_s)
        if not reload_asked:
            continue
        reload_asked.clear()
        try:
            message = pipeline.reload_current(runtime, process.pid)
        except (DeployError, ReleaseError, NginxNotFound, OSError) as exc:
            print(f"weir edge: SIGHUP: reload refused, nothing changed: {exc}", file=sys.stderr)
        else:
            print(f"weir edge: SIGHUP: {message}", file=sys.stderr)
