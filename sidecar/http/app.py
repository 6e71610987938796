"""The Falcon application: routes, one error mapping, and `get_app()` for gunicorn.

`create_app(state, max_body_bytes)` takes its collaborators (tests pass a real repository);
`get_app()` builds them from `WEIR_*` settings inside the worker, after fork.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import falcon

from sidecar.batching import Batcher, BatchPolicy, ThreadedDriver
from sidecar.dataplane import DataPlane
from sidecar.errors import (
    WeirError,
    error_body,
    internal_error_parts,
    response_parts,
)
from sidecar.fastpath import InferRoute
from sidecar.generation import generation
from sidecar.metrics import REPOSITORY_GENERATION, ModelMetrics
from sidecar.model import DriverFactory
from sidecar.repository import Repository
from sidecar.resources import health, infer, metadata
from sidecar.resources import metrics as metrics_resource
from sidecar.runtime import default_intra_op_threads
from sidecar.settings import Settings
from sidecar.state import ServerState
from sidecar.watcher import RepositoryWatcher

log = logging.getLogger(__name__)


def _send(resp: falcon.Response, parts: tuple[str, list[tuple[str, str]], bytes]) -> None:
    resp.status, headers, resp.data = parts
    for name, value in headers:
        resp.set_header(name, value)


def _weir_error(req: falcon.Request, resp: falcon.Response, exc: WeirError, params: Any) -> None:
    _send(resp, response_parts(exc))


def _http_error(
    req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError, params: Any
) -> None:
    resp.status = exc.status
    resp.content_type = falcon.MEDIA_JSON
    text = exc.title or "error"
    if exc.description:
        text = f"{text}: {exc.description}"
    resp.data = error_body(text)
    headers = exc.headers or {}
    # Falcon keeps whichever form the raiser gave: a mapping or (name, value) pairs.
    for name, value in headers.items() if isinstance(headers, Mapping) else headers:
        resp.set_header(name, value)


def _internal_error(
    req: falcon.Request, resp: falcon.Response, exc: Exception, params: Any
) -> None:
    log.exception("unhandled error on %s %s", req.method, req.path)
    _send(resp, internal_error_parts())


def create_app(state: ServerState, max_body_bytes: int) -> falcon.App:
    app = falcon.App()
    app.req_options.strip_url_path_trailing_slash = True
    live, ready = health.Live(), health.Ready(state)
    model_meta, model_ready = metadata.ModelMetadata(state), health.ModelReady(state)
    infer_res = infer.Infer(DataPlane(state.repository, max_body_bytes))
    app.add_route("/v2/health/live", live)
    app.add_route("/v2/health/ready", ready)
    app.add_route("/v2", health.ServerMetadata())
    app.add_route("/v2/models/{model}", model_meta)
    app.add_route("/v2/models/{model}/versions/{version}", model_meta)
    app.add_route("/v2/models/{model}/ready", model_ready)
    app.add_route("/v2/models/{model}/versions/{version}/ready", model_ready)
    app.add_route("/v2/models/{model}/infer", infer_res)
    app.add_route("/v2/models/{model}/versions/{version}/infer", infer_res)
    app.add_route("/metrics", metrics_resource.Metrics())
    app.add_sink(health.not_found, "/")
    app.add_error_handler(Exception, _internal_error)
    app.add_error_handler(falcon.HTTPError, _http_error)
    app.add_error_handler(WeirError, _weir_error)
    return app


def threaded_drivers(batcher: Batcher, metrics: ModelMetrics) -> ThreadedDriver:
    return ThreadedDriver(batcher)


def load_state(settings: Settings, driver_factory: DriverFactory) -> ServerState:
    """Load, warm up and publish every model version, report ready, then keep watching the
    repository for versions that come and go."""
    threads = settings.intra_op_threads or default_intra_op_threads(settings.worker_count())
    defaults = BatchPolicy(
        settings.max_batch_size, settings.max_queue_delay_ms / 1000.0, settings.max_queue_size
    )
    root = Path(settings.models)
    load = Repository.loader(defaults, settings.device, threads, driver_factory)
    # Counted as "nothing loaded yet" from the start: `weir apply` must not take a worker that
    # is still loading an older view for one that has the newest.
    generation_gauge = REPOSITORY_GENERATION.labels(str(root))
    generation_gauge.set(0)
    resolved = root.resolve()
    repository = Repository.load(resolved, load)
    generation_gauge.set(generation(resolved))
    state = ServerState(repository)
    state.ready = True
    # Sessions, models and imports live as long as the worker: keep them out of GC scans.
    gc.collect()
    gc.freeze()
    if settings.repository_poll_seconds > 0:
        RepositoryWatcher(repository, root, load, settings.repository_poll_seconds).start()
    return state


# The worker's state, so the gunicorn hooks can flip `draining` on SIGTERM.
CURRENT: ServerState | None = None


def get_app() -> Any:
    """gunicorn entry point (`sidecar.app:get_app()`), called in each worker after fork."""
    global CURRENT
    settings = Settings.from_env()
    if settings.worker_class == "meinheld":
        from sidecar import meinheld_loop

        state = load_state(settings, meinheld_loop.LoopDriver)
        CURRENT = state
        return meinheld_loop.wrap(serving_app(state, settings.max_body_bytes))
    state = load_state(settings, threaded_drivers)
    CURRENT = state
    return serving_app(state, settings.max_body_bytes)


def serving_app(state: ServerState, max_body_bytes: int) -> InferRoute:
    """The Falcon app behind the fast infer route (see `sidecar.fastpath`)."""
    app = create_app(state, max_body_bytes)
    return InferRoute(app, DataPlane(state.repository, max_body_bytes))
