"""Batching on meinheld's event loop: waiting requests are suspended greenlets, not threads.

meinheld runs every request in a greenlet on one thread. A handler that blocked on a queue
would stall every connection, so instead:

1. the infer handler enqueues its request and switches to the hub (its parent greenlet);
2. the first enqueue of a loop turn schedules `flush` with `meinheld.server.schedule_call(0)`,
   which the loop runs right after the current turn, i.e. after every request that arrived
   together has been read, decoded, validated and enqueued;
3. `flush` runs the batch (ONNX Runtime uses its own intra-op threads) and switches back into
   each request's greenlet, which finishes its Falcon response.

Under load, requests arriving while a batch computes pile up in the kernel and form the next
batch: the batch size tracks the load without a timer. `max_queue_delay` is therefore not
waited for here (batches never wait longer than one loop turn); the queue bound still holds.

Why not meinheld's own `_suspend_client`/`_resume_client`/`trampoline`: the meinheld 1.0.2
extension is compiled against greenlet 0.4's struct layout and reads a greenlet's parent
from a field greenlet 3 no longer has (TypeError or SIGSEGV). Plain greenlet switching works.
But meinheld's `start_response` is one global object bound to the client whose handler
started last, so a resumed handler cannot call it: it writes its own complete HTTP response
to the client socket and marks the response closed (`client.set_closed(1)`); meinheld then
only finishes the connection (keep-alive or close).

Writing that response must not block the loop either: a client that does not read it fills
its socket buffer. On EAGAIN the handler schedules its own resumption one loop timer later
(`schedule_call(1, greenlet.switch)`: meinheld's timers count whole seconds, and a 0-second
call made from a pending call would run at once, before the loop polls, i.e. spin) and
switches to the hub; the loop serves everyone else meanwhile. After `WRITE_TIMEOUT` seconds
without the whole response written the connection is dropped. The retry granularity is
coarse (up to a second) but only a client whose socket buffer is full ever waits on it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import greenlet
from meinheld import server

from sidecar.metrics import CLIENT_GONE, ModelMetrics
from sidecar.serving.batching import Batcher, Pending

log = logging.getLogger(__name__)

WRITE_TIMEOUT = 10.0
monotonic = time.monotonic


class LoopDriver:
    """Runs a model version's batches on the event loop (see the module docstring)."""

    def __init__(self, batcher: Batcher, metrics: ModelMetrics) -> None:
        self.batcher = batcher
        self.metrics = metrics
        metrics.buffered = True  # written once per flush, after the responses
        self._scheduled = False

    def infer(self, item: Pending) -> None:
        self.batcher.enqueue(item)
        current = greenlet.getcurrent()
        item.waiter = current
        if not self._scheduled:
            self._scheduled = True
            server.schedule_call(0, self._flush)
        current.weir_suspended = True
        hub = current.parent
        while not item.done:
            hub.switch()

    def _flush(self) -> None:
        self._scheduled = False
        batcher = self.batcher
        while batcher.queue:
            batch = batcher.take()
            batcher.execute(batch)
            for item in batch:
                try:
                    item.waiter.switch()  # type: ignore[attr-defined]
                except Exception:  # the greenlet's own failures are meinheld's to report
                    log.exception("resuming a request after its batch failed")
        self.metrics.flush()


_keep_alive_allowed = True


def stop_keep_alive() -> None:
    """From now on every raw response closes its connection (the worker is stopping)."""
    global _keep_alive_allowed
    _keep_alive_allowed = False


def _keep_alive(environ: dict[str, Any]) -> bool:
    if not _keep_alive_allowed:
        return False
    connection = environ.get("HTTP_CONNECTION", "").lower()
    if environ.get("SERVER_PROTOCOL") == "HTTP/1.1":
        return connection != "close"
    return connection == "keep-alive"


def _write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to the non-blocking `fd`, yielding to the loop while it is full."""
    try:
        sent = os.write(fd, data)  # the common case: the whole response at once
    except BlockingIOError:
        sent = 0
    if sent == len(data):
        return
    view = memoryview(data)[sent:]
    deadline = 0.0
    while view:
        try:
            sent = os.write(fd, view)
        except BlockingIOError:
            now = monotonic()
            if not deadline:
                deadline = now + WRITE_TIMEOUT
            elif now >= deadline:
                raise TimeoutError(
                    f"the client did not read its response within {WRITE_TIMEOUT:g}s"
                ) from None
            _yield_to_loop()
            continue
        view = view[sent:]


def _yield_to_loop() -> None:
    """Let the loop run until its next timer turn, then carry on here."""
    current = greenlet.getcurrent()
    server.schedule_call(1, current.switch)
    current.parent.switch()


_CONNECTION = {True: "Connection: Keep-Alive\r\n\r\n", False: "Connection: close\r\n\r\n"}


def raw_response(status: str, headers: list[tuple[str, str]], body: bytes, keep: bool) -> bytes:
    parts = ["HTTP/1.1 ", status, "\r\n"]
    for name, value in headers:
        if name.lower() != "content-length":
            parts += (name, ": ", value, "\r\n")
    parts += ("Content-Length: ", str(len(body)), "\r\n", _CONNECTION[keep])
    return "".join(parts).encode("latin-1") + body


def wrap(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """A WSGI callable that answers suspended-and-resumed requests itself (see above)."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        captured: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured[:] = (status, headers)
            return None

        body = app(environ, capture)
        current = greenlet.getcurrent()
        if not getattr(current, "weir_suspended", False):
            start_response(*captured)
            return body
        data = b"".join(body)
        client = environ["meinheld.client"]
        try:
            status, headers = captured
            _write_all(client.get_fd(), raw_response(status, headers, data, _keep_alive(environ)))
        except (BrokenPipeError, ConnectionResetError):
            # The client went away first (an edge that timed out, a client that gave up):
            # normal, counted, not worth a log line each.
            CLIENT_GONE.inc()
            log.debug("response not delivered: the client closed its connection")
        except OSError as exc:
            # TimeoutError (ours) has no strerror; an OSError from write has one.
            log.info("response not delivered, closing the connection: %s", exc.strerror or exc)
        client.set_closed(1)
        return []

    return wsgi
