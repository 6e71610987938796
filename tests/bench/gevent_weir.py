"""Weir's real worker stack under gunicorn's gevent worker: a bench-only host.

`GeventWeirWorker` is gunicorn's `GeventWorker` (which monkey-patches the process after fork,
before this stack is built) whose `load_wsgi` builds what `sidecar/server/workers.py` builds for
gthread: `build_worker(Settings.from_env(), threaded_driver)`. Under monkey-patching the
batching "threads" of `ThreadedDriver` are greenlets and its Condition/Event cooperative, so
the stack runs unchanged and batches across requests; but a batch then computes on the hub's
own thread (ONNX Runtime releases the GIL, yet no other greenlet can run until it returns),
which is what the isolation table measures. Moving `session.run` to gevent's thread pool would
need a driver the sidecar does not have.

    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) WEIR_MODELS=models WEIR_WORKERS=2 gunicorn -w 2 \
        -k tests.bench.gevent_weir.GeventWeirWorker tests.bench.gevent_weir:app
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.workers.ggevent import GeventWorker


class GeventWeirWorker(GeventWorker):  # type: ignore[misc]
    def load_wsgi(self) -> None:
        # Imported here, in the worker, after gunicorn's monkey-patching: threading is gevent's.
        from sidecar.server.assembly import build_worker
        from sidecar.serving.batching import threaded_driver
        from sidecar.settings import Settings

        self.wsgi = build_worker(Settings.from_env(), threaded_driver).app


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Never served: gunicorn's command line needs an app, `GeventWeirWorker` builds its own."""
    raise RuntimeError("GeventWeirWorker builds the app it serves")
