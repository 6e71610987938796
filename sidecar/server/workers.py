"""gunicorn worker classes with Weir's drain: SIGTERM → readiness 503 → stop accepting → exit.

Each worker builds what it serves after fork (`load_wsgi`, see `assembly`), handing in the
batching driver its server needs: `AsyncioDriver` and the `LoopFront` under uvicorn (the
default), `ThreadedDriver` under gthread, meinheld's `LoopDriver` (and its raw-response
wrapper) under meinheld. It keeps that worker's readiness, so its SIGTERM handler starts
draining without any module-level state.

`AsyncioWorker` runs uvicorn's server, with Weir's HTTP/1.1 protocol (`http_protocol`), on the
worker's own uvloop loop, created before the models load so that each model version's driver
is bound to it. uvicorn's SIGTERM (stop at
once) becomes Weir's drain; SIGINT and SIGQUIT stop at once.

meinheld's own worker maps SIGTERM to an immediate stop with a one-second grace, and its C
loop replaces Python's SIGTERM handler when it starts. `MeinheldWorker` reinstalls a Python
handler from the loop's first turn and keeps a one-second tick so that handler runs promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

import uvicorn
import uvloop
from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker
from gunicorn.workers.gthread import ThreadWorker as _ThreadWorker

from sidecar.metrics import CLIENT_GONE
from sidecar.server.assembly import WorkerStack, build_worker, loop_front
from sidecar.server.http_protocol import WeirHttpProtocol
from sidecar.serving.asyncio_driver import asyncio_driver
from sidecar.serving.batching import threaded_driver
from sidecar.serving.dataplane import drain_ceiling
from sidecar.serving.readiness import Readiness
from sidecar.settings import Settings


class _Serving:
    """What both worker classes share: the stack they built, and draining it."""

    # Set by load_wsgi once every model is loaded; a SIGTERM before that has nothing to drain.
    served: WorkerStack | None = None

    def _start_draining(self) -> None:
        if self.served is not None:
            self.served.readiness.start_draining()


class ThreadWorker(_Serving, _ThreadWorker):
    """gthread, serving on for `drain_seconds` after SIGTERM with readiness 503."""

    def load_wsgi(self) -> None:
        self.served = build_worker(Settings.from_env(), threaded_driver)
        self.wsgi = self.served.app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._start_draining()
        timer = threading.Timer(_drain_seconds(), super().handle_exit, (sig, frame))
        timer.daemon = True
        timer.start()


class AsyncioWorker(_Serving, Worker):
    """uvicorn on uvloop: infer awaits its batch on the loop, models compute on threads."""

    loop: asyncio.AbstractEventLoop

    def init_signals(self) -> None:
        # uvicorn installs its own SIGTERM/SIGINT handlers when it serves (see `_Server`);
        # until then (models loading) the defaults apply: nothing to drain yet.
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGUSR1, self.handle_usr1)
        signal.siginterrupt(signal.SIGUSR1, False)

    def load_wsgi(self) -> None:
        self.loop = uvloop.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.served = build_worker(Settings.from_env(), asyncio_driver(self.loop), loop_front)
        self.wsgi = self.served.app

    def run(self) -> None:
        settings = Settings.from_env()
        assert self.served is not None
        WeirHttpProtocol.write_timeout = settings.write_timeout
        WeirHttpProtocol.read_timeout = settings.read_timeout
        WeirHttpProtocol.max_connections = self.cfg.worker_connections
        _raise_open_files_limit()
        config = uvicorn.Config(
            self.served.app,
            http=WeirHttpProtocol,
            loop="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,  # the edge in front is the only client that matters
            timeout_keep_alive=self.cfg.keepalive,
            timeout_notify=self.timeout,
            callback_notify=self._notify,
            # Whole seconds (uvicorn's type), rounded down: done before gunicorn's own timeout.
            timeout_graceful_shutdown=max(
                1, int(settings.graceful_timeout - settings.drain_seconds)
            ),
            backlog=self.cfg.backlog,
        )
        server = _Server(config, self.served.readiness, settings.drain_seconds, self.log)
        self.loop.run_until_complete(server.serve(sockets=[s.sock for s in self.sockets]))
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    async def _notify(self) -> None:
        self.notify()


def _raise_open_files_limit() -> None:
    """Connections cost no thread here, only a file descriptor: allow as many as we may."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class _Server(uvicorn.Server):
    """uvicorn's server with Weir's drain on SIGTERM (module docstring)."""

    def __init__(
        self, config: uvicorn.Config, readiness: Readiness, drain_seconds: float, log: Any
    ) -> None:
        super().__init__(config)
        self.readiness = readiness
        self.drain_seconds = drain_seconds
        self.log = log
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM:
            self.should_exit = self.force_exit = True
            return
        if self._draining:
            return
        self._draining = True
        self.readiness.start_draining()
        self.log.info("SIGTERM: draining, readiness is now 503")
        timer = threading.Timer(self.drain_seconds, self._stop)
        timer.daemon = True
        timer.start()

    def _stop(self) -> None:
        self.log.info("drained: no longer accepting, finishing in-flight requests")
        self.should_exit = True


class _LoopErrors:
    """What meinheld's C loop calls on errors: `.error(type, value, traceback)`."""

    def __init__(self, log: Any) -> None:
        self.log = log

    def error(self, exc_type: Any, value: Any, tb: Any) -> None:
        if isinstance(exc_type, type) and issubclass(exc_type, _CLIENT_GONE):
            # A client that closed its connection before its answer: normal, not an error.
            CLIENT_GONE.inc()
            self.log.debug("client closed its connection: %s", value)
            return
        self.log.error("error in the meinheld loop", exc_info=(exc_type, value, tb))


_CLIENT_GONE = (BrokenPipeError, ConnectionResetError)


def _drain_seconds() -> float:
    return Settings.from_env().drain_seconds


try:
    from meinheld import server
    from meinheld.gmeinheld import MeinheldWorker as _MeinheldWorker

    from sidecar.server import meinheld_loop
except ImportError:  # pragma: no cover - meinheld is optional for gthread deployments
    _MeinheldWorker = None  # type: ignore[assignment,misc]
else:

    class MeinheldWorker(_Serving, _MeinheldWorker):  # type: ignore[no-redef,valid-type,misc]
        """meinheld, with a real drain (see the module docstring)."""

        _stop_at: float | None = None
        _stopped = False
        _quit = False

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # Not meinheld's __init__: it rebinds gunicorn's `Logger.error` process-wide (the
            # master included, where workers are instantiated) to a (type, value, traceback)
            # signature, so every later `log.error("...", arg)` in gunicorn raises TypeError.
            Worker.__init__(self, *args, **kwargs)
            server.set_access_logger(None)
            server.set_error_logger(_LoopErrors(self.log))

        def load_wsgi(self) -> None:
            self.served = build_worker(Settings.from_env(), meinheld_loop.LoopDriver)
            self.wsgi = meinheld_loop.wrap(self.served.app)

        def run(self) -> None:
            limit = Settings.from_env().max_body_bytes
            # Keep bodies up to a little over our limit in memory (meinheld spills bodies over
            # its buffer to a temporary file) and let bodies up to the drain ceiling reach the
            # app, which refuses them with a JSON 413 once meinheld has read them: refused
            # unread (meinheld's HTML 413), a proxy in front sees a reset, not our answer.
            server.set_client_body_buffer_size(limit + (1 << 20))
            server.set_max_content_length(drain_ceiling(limit))
            server.schedule_call(0, self._install_handlers)
            server.schedule_call(1, self._tick)
            super().run()

        def handle_quit(self, sig: int, frame: FrameType | None) -> None:
            # SIGQUIT/SIGINT mean "quick shutdown" in gunicorn; meinheld's own worker would
            # wait `timeout` seconds for idle keep-alive connections. Before the loop runs
            # (models still loading) stop() does nothing: the first loop turn checks the flag.
            self._quit = True
            server.stop(1)

        def _install_handlers(self) -> None:
            signal.signal(signal.SIGTERM, self._on_term)
            if self._quit:
                server.stop(1)

        def _on_term(self, sig: int, frame: FrameType | None) -> None:
            if self._stop_at is None:
                self._start_draining()
                self._stop_at = time.monotonic() + _drain_seconds()
                self.log.info("SIGTERM: draining, readiness is now 503")

        def _tick(self) -> None:
            if self._stop_at is not None and time.monotonic() >= self._stop_at:
                if not self._stopped:
                    self._stopped = True
                    self.log.info("drained: no longer accepting, finishing in-flight requests")
                    # Close each connection after its next response, or a client that keeps
                    # its connection busy (an edge's keep-alive pool) would hold us open.
                    server.set_keepalive(0)
                    meinheld_loop.stop_keep_alive()
                    server.stop(max(1, int(self.cfg.graceful_timeout - _drain_seconds())))
                return
            server.schedule_call(1, self._tick)
