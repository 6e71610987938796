"""One worker's serving stack, built from settings after fork: the worker class supplies the
batching driver (how a waiting request sleeps under its server), this module the rest.

    settings → Repository (loaded with the driver) → Readiness → DataPlane → HTTP app

Nothing below reaches back up: the worker keeps the returned `WorkerStack` and flips its
readiness itself on SIGTERM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.http.app import create_app, serving_app
from sidecar.http.loop_front import LoopFront
from sidecar.serving import drift
from sidecar.serving.batching import BatchPolicy
from sidecar.serving.dataplane import DataPlane
from sidecar.serving.model import DriverFactory
from sidecar.serving.onnx_session import default_intra_op_threads
from sidecar.serving.readiness import Readiness
from sidecar.serving.repository import Repository
from sidecar.serving.startup import load_repository
from sidecar.settings import Settings


@dataclass(frozen=True, slots=True)
class WorkerStack:
    """What a worker serves with: its data plane and the app over it (WSGI or ASGI)."""

    dataplane: DataPlane
    app: Any

    @property
    def readiness(self) -> Readiness:
        """What the worker flips on SIGTERM."""
        return self.dataplane.readiness


def load_dataplane(settings: Settings, driver_factory: DriverFactory) -> DataPlane:
    """Load, warm up and publish every model version, report ready, then keep watching the
    repository for versions that come and go."""
    threads = settings.intra_op_threads or default_intra_op_threads(settings.worker_count())
    defaults = BatchPolicy(
        settings.max_batch_size, settings.max_queue_delay_ms / 1000.0, settings.max_queue_size
    )
    drift.configure(settings.drift_window_rows)
    load = Repository.loader(defaults, settings.device, threads, driver_factory)
    repository = load_repository(Path(settings.models), load, settings.repository_poll_seconds)
    readiness = Readiness()
    readiness.mark_ready()
    return DataPlane(
        repository, readiness, settings.max_body_bytes, settings.max_in_flight_bytes or None
    )


def build_worker(
    settings: Settings,
    driver_factory: DriverFactory,
    front: Callable[[DataPlane], Any] = serving_app,
) -> WorkerStack:
    """The data plane and the HTTP app over it: by default the WSGI one (the fast infer
    route in front of Falcon); the asyncio worker passes `loop_front`."""
    dataplane = load_dataplane(settings, driver_factory)
    return WorkerStack(dataplane, front(dataplane))


def loop_front(dataplane: DataPlane) -> LoopFront:
    """What Weir's own HTTP protocol answers with (infer on the loop, Falcon for the rest)."""
    return LoopFront(create_app(dataplane), dataplane)
