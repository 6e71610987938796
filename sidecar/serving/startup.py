"""A worker's start: load, warm up and publish every model version, then keep watching.

Runs in the worker after fork (sessions are never created in the master). The caller marks
the worker ready once this returns.
"""

from __future__ import annotations

import gc
from pathlib import Path

from sidecar.metrics import REPOSITORY_GENERATION
from sidecar.serving.generation import generation
from sidecar.serving.repository import Loader, Repository
from sidecar.serving.watcher import RepositoryWatcher


def load_repository(root: Path, load: Loader, poll_seconds: float) -> Repository:
    """Every version under `root`, loaded and warmed up; then a watcher thread rescans the
    repository every `poll_seconds` (0: never) for versions that come and go."""
    # Counted as "nothing loaded yet" from the start: `weir apply` must not take a worker that
    # is still loading an older view for one that has the newest.
    generation_gauge = REPOSITORY_GENERATION.labels(str(root))
    generation_gauge.set(0)
    resolved = root.resolve()
    repository = Repository.load(resolved, load)
    generation_gauge.set(generation(resolved))
    # Sessions, models and imports live as long as the worker: keep them out of GC scans.
    gc.collect()
    gc.freeze()
    if poll_seconds > 0:
        RepositoryWatcher(repository, root, load, poll_seconds).start()
    return repository
