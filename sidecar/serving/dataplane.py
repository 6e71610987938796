"""The data plane: every V2 operation, independent of any HTTP framework.

Health (live, ready), server metadata, model metadata and readiness return the document to
send; `infer` takes what the transport read (path parameters, body, one header) and returns
the encoded response. Each raises a `WeirError` for the transport to map. `infer` records the
request metrics. The Falcon resources and the fast WSGI route only translate, so they cannot
drift apart.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sidecar.codec.decode import InferRequest
from sidecar.codec.encode import encode_response
from sidecar.codec.wire import BINARY_TYPE, HEADER_LENGTH, JSON_TYPE
from sidecar.errors import PayloadTooLarge, QueueFull, Unavailable, WeirError
from sidecar.metrics import unknown_model_failure
from sidecar.serving.batching import Pending
from sidecar.serving.model import AsyncDriver, Driver, ModelVersion
from sidecar.serving.processing import client_outputs, prepare
from sidecar.serving.readiness import Readiness
from sidecar.serving.repository import Repository
from sidecar.serving.shadow import Shadows

perf_counter = time.perf_counter
T = TypeVar("T")

VERSION_HEADER = "X-Weir-Model-Version"
SERVER_NAME = "weir"
SERVER_VERSION = "0.1.0"
EXTENSIONS = ["binary_tensor_data"]
_ALL_JSON: dict[str, bool] = {}
_DRAIN_CHUNK = 1 << 20


def drain_ceiling(max_body_bytes: int) -> int:
    """The largest declared body read (and discarded) before answering 413: a peer that is
    refused before its body is read sees its connection reset (a proxy such as the edge then
    answers 502/503, its breaker counting our fault), so bodies up to this size are read
    first. Beyond it the server may refuse without reading (meinheld's own 413)."""
    return max(4 * max_body_bytes, max_body_bytes + (64 << 20))


# Under an event loop, a request body or answer larger than this is decoded or encoded on a
# thread. Below it the work stays on the loop: a 1 MiB JSON body decodes in about 1.5 ms
# here, less than the 5 ms GIL switch interval, which is all a thread could give back while
# it decodes (the work holds the GIL), and the hand-off cost cnn's 240 KiB JSON requests 10%
# of their throughput at one client. One thread: more would not run faster, and each decode
# of a large JSON body holds about ten times the body's size while it runs.
INLINE_BYTES = 1 << 20
# Request bytes admitted at once under an event loop, at least: queued requests hold their
# tensors, so the queue's bound in requests alone would let 256 large bodies in.
MIN_IN_FLIGHT_BYTES = 256 * 1024 * 1024
# Requests of models with a model class's `preprocess` (image decoding) are prepared on a pool
# of this many threads, never on the loop: Pillow and numpy release the GIL while they decode
# and resize, so they run beside each other and beside the compute threads.
PREPROCESS_THREADS = min(4, len(os.sched_getaffinity(0)))
# Requests waiting for a pre-processing thread, at most (then 503 queue_full, as the batching
# queue's bound): without it, slow uploads queue without limit, each holding its body.
PREPROCESS_QUEUE = 64


@dataclass(frozen=True, slots=True)
class InferResult:
    """An encoded V2 response and the headers that describe it."""

    body: bytes
    headers: list[tuple[str, str]]


class DataPlane:
    """The V2 operations over one worker's repository and readiness."""

    def __init__(
        self,
        repository: Repository,
        readiness: Readiness,
        max_body_bytes: int,
        in_flight_limit: int | None = None,
    ) -> None:
        self.repository = repository
        self.readiness = readiness
        self.max_body_bytes = max_body_bytes
        # Under an event loop: bytes of the requests held (being read, decoded or queued).
        self.in_flight_limit = in_flight_limit or max(MIN_IN_FLIGHT_BYTES, 4 * max_body_bytes)
        self.in_flight_bytes = 0
        self._worker_thread: ThreadPoolExecutor | None = None
        self._preprocess_pool: ThreadPoolExecutor | None = None
        self._pool_slots: asyncio.Semaphore | None = None
        self._pool_waiting = 0
        self.shadows = Shadows(repository)  # infer_async's: copies for shadow versions

    async def _on_thread(self, fn: Callable[..., T], *args: Any) -> T:
        if self._worker_thread is None:
            self._worker_thread = ThreadPoolExecutor(1, thread_name_prefix="codec")
        return await asyncio.get_running_loop().run_in_executor(self._worker_thread, fn, *args)

    async def _on_pool(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the pre-processing pool. Requests wait for a thread here, at most
        `PREPROCESS_QUEUE` of them (then 503): the executor itself never queues work, so a
        request whose client hung up while it waited takes its body with it."""
        if self._preprocess_pool is None:
            self._preprocess_pool = ThreadPoolExecutor(
                PREPROCESS_THREADS, thread_name_prefix="preprocess"
            )
            self._pool_slots = asyncio.Semaphore(PREPROCESS_THREADS)
        assert self._pool_slots is not None
        if self._pool_waiting >= PREPROCESS_QUEUE:
            raise QueueFull(
                f"this sidecar worker already has {PREPROCESS_QUEUE} requests waiting for "
                "pre-processing (image decoding); retry after the Retry-After delay"
            )
        self._pool_waiting += 1
        try:
            await self._pool_slots.acquire()
        finally:
            self._pool_waiting -= 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._preprocess_pool, fn, *args)
        finally:
            self._pool_slots.release()

    def hold(self, size: int) -> bool:
        """Count `size` request bytes against the worker's budget (`release` gives them back).
        False, holding nothing, when they would pass it while anything else is held: one
        request alone is always let in."""
        if self.in_flight_bytes and self.in_flight_bytes + size > self.in_flight_limit:
            return False
        self.in_flight_bytes += size
        return True

    def release(self, size: int) -> None:
        self.in_flight_bytes -= size

    def over_budget(self) -> QueueFull:
        """The answer to a request past the worker's budget of request bytes."""
        return QueueFull(
            f"this sidecar worker already holds {self.in_flight_bytes >> 20} MiB of "
            "requests; retry after the Retry-After delay, or send fewer rows per request"
        )

    def live(self) -> dict[str, Any]:
        return {"live": True}

    def ready(self) -> dict[str, Any]:
        if self.readiness.draining:
            raise Unavailable("this sidecar is draining after SIGTERM; route to another one")
        if not self.readiness.ready:
            raise Unavailable("models are still loading")
        return {"ready": True}

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS}

    def model_metadata(self, model: str, version: str | None) -> tuple[dict[str, Any], str]:
        """The model's metadata document, and the version that answered."""
        found = self.repository.get(model, version)
        doc = found.metadata()
        if version is None:
            doc["versions"] = self.repository.versions(model)
        return doc, found.version

    def model_ready(self, model: str, version: str | None) -> dict[str, Any]:
        found = self.repository.get(model, version)
        if self.readiness.draining:
            raise Unavailable("this sidecar is draining after SIGTERM")
        return {"name": found.name, "version": found.version, "ready": True}

    def read_body(self, read: Callable[[int], bytes], length: int | None) -> bytes:
        """Read the request body, refusing more than the limit (413). A declared length over
        it is still read and discarded, up to `drain_ceiling`, so that the peer gets the 413
        instead of a reset connection."""
        limit = self.max_body_bytes
        if length is None:  # chunked: read up to one byte past the limit
            body = read(limit + 1)
            length = len(body)
        elif length <= limit:
            body = read(length) if length else b""
        elif length <= drain_ceiling(limit):
            remaining = length
            while remaining > 0 and (chunk := read(min(remaining, _DRAIN_CHUNK))):
                remaining -= len(chunk)
        if length > limit:
            raise self.too_large()
        return body

    def too_large(self) -> PayloadTooLarge:
        """The answer to a body over the limit (`read_body`, or a server reading it itself)."""
        return PayloadTooLarge(
            f"request body is over {self.max_body_bytes} bytes, the limit; send fewer rows per "
            "request"
        )

    def infer(
        self,
        model: str,
        version: str | None,
        read: Callable[[int], bytes],
        length: int | None,
        header_length: str | None,
        content_type: str | None = None,
    ) -> InferResult:
        started = perf_counter()
        try:
            found = self.repository.get(model, version)
        except WeirError as exc:
            unknown_model_failure(exc.reason)
            raise
        metrics = found.metrics
        metrics.entered()
        try:
            return self._infer(found, read, length, header_length, content_type, started)
        finally:
            metrics.left()

    def _infer(
        self,
        found: ModelVersion,
        read: Callable[[int], bytes],
        length: int | None,
        header_length: str | None,
        content_type: str | None,
        started: float,
    ) -> InferResult:
        try:
            body = self.read_body(read, length)
            request, item = prepare(found, body, header_length, content_type)
            cast(Driver, found.driver).infer(item)
            return self._finish(found, request, item, started)
        except Exception as exc:
            self._count_failure(found, exc)
            raise

    async def infer_async(
        self,
        model: str,
        version: str | None,
        body: bytes,
        header_length: str | None,
        content_type: str | None = None,
        shadow: str | None = None,
        held: bool = False,
    ) -> InferResult:
        """`infer` for a server on an event loop: the body is already read (within the
        limit, `too_large` otherwise) and the request waits for its batch without holding a
        thread; the model version's driver must be an `AsyncDriver`. `shadow`: the version
        the edge asks to compute a copy once this answer is computed (`serving/shadow.py`).
        `held`: the server already holds the body's bytes (`hold`) while it reads it, and
        until it has answered."""
        started = perf_counter()
        try:
            found = self.repository.get(model, version)
        except WeirError as exc:
            unknown_model_failure(exc.reason)
            raise
        size = len(body)
        if not held and not self.hold(size):
            error = self.over_budget()
            found.metrics.failure(error.reason)
            raise error
        metrics = found.metrics
        metrics.entered()
        try:
            if found.preprocesses:  # images to decode: never on the loop
                request, item = await self._on_pool(
                    prepare, found, body, header_length, content_type
                )
            elif size <= INLINE_BYTES:
                request, item = prepare(found, body, header_length, content_type)
            else:  # decoding it would hold up every request behind it on the loop
                request, item = await self._on_thread(
                    prepare, found, body, header_length, content_type
                )
            del body  # a queued request holds its tensors, not its text
            await cast(AsyncDriver, found.driver).submit(item)
            if shadow is not None and item.error is None:
                self.shadows.start(found, item, shadow)  # queued; nobody waits for it
            outputs = item.outputs or ()
            if sum(out.nbytes for out in outputs) <= INLINE_BYTES:
                return self._finish(found, request, item, started)
            return await self._on_thread(self._finish, found, request, item, started)
        except Exception as exc:
            self._count_failure(found, exc)
            raise
        finally:
            metrics.left()
            if not held:
                self.release(size)

    @staticmethod
    def _count_failure(found: ModelVersion, exc: Exception) -> None:
        # A bug of ours is still counted, then answered 500.
        found.metrics.failure(exc.reason if isinstance(exc, WeirError) else "internal")

    @staticmethod
    def _finish(
        found: ModelVersion, request: InferRequest, item: Pending, started: float
    ) -> InferResult:
        """The computed (or failed) request, post-processed and encoded."""
        if item.error is not None:
            raise item.error
        outputs = item.outputs
        assert outputs is not None
        pairs = client_outputs(found, request, outputs)
        wanted = request.outputs
        if wanted is not None:
            pairs = [(name, arr) for name, arr in pairs if name in wanted]
            binary = wanted
        elif request.binary_default:
            binary = dict.fromkeys((name for name, _ in pairs), True)
        else:
            binary = _ALL_JSON  # encode_response: a name not in `binary` is JSON
        body, json_length = encode_response(found.name, found.version, request.id, pairs, binary)
        if json_length is None:
            headers = [("Content-Type", JSON_TYPE), (VERSION_HEADER, found.version)]
        else:
            headers = [
                ("Content-Type", BINARY_TYPE),
                (VERSION_HEADER, found.version),
                (HEADER_LENGTH, str(json_length)),
            ]
        found.metrics.succeeded(perf_counter() - started)
        return InferResult(body, headers)
