"""Rescans the model repository while the worker serves: new versions load, gone ones retire.

A daemon thread per worker, so loading and warming up a version (ONNX Runtime releases the
GIL while it works) never stalls the event loop that serves the versions already loaded.
After each complete pass the worker reports the repository generation it has loaded
(`weir_repository_generation`, the lowest over live workers): `weir apply` waits on it before
the edge routes to a new version, so no worker answers 404 for it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sidecar.metrics import MODEL_LOAD_FAILURES, REPOSITORY_GENERATION
from sidecar.serving.generation import generation
from sidecar.serving.repository import Loader, Repository

log = logging.getLogger(__name__)


def sync_once(repository: Repository, root: Path, load: Loader) -> int:
    """One pass over the repository; returns the generation now loaded."""
    # Resolve once: a tool may swap a symlinked repository while this pass reads it.
    resolved = root.resolve()
    seen = generation(resolved)
    report = repository.sync(resolved, load)
    for label in report.failed:
        MODEL_LOAD_FAILURES.labels(*label.split("/")).inc()
    if report.loaded or report.retired:
        log.info(
            "repository generation %d: loaded %s; retired %s",
            seen,
            ", ".join(report.loaded) or "nothing",
            ", ".join(report.retired) or "nothing",
        )
    REPOSITORY_GENERATION.labels(str(root)).set(seen)
    return seen


class RepositoryWatcher:
    """Calls `sync_once` every `interval` seconds until stopped."""

    def __init__(self, repository: Repository, root: Path, load: Loader, interval: float) -> None:
        self.repository = repository
        self.root = root
        self.load = load
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="weir-repository", daemon=True)

    def start(self) -> RepositoryWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                sync_once(self.repository, self.root, self.load)
            except Exception:  # keep watching; what serves keeps serving
                log.exception("rescanning the model repository %s failed", self.root)
