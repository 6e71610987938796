"""Dynamic batching per model version: a bounded queue, batch assembly, execution, fan-out.

`Batcher` is the concurrency-free core: it owns the queue bound, joins requests into one
run, and completes every request of a batch exactly once (outputs or an error), whatever
happens. Drivers decide *when* a batch runs and how a waiting request sleeps:

- `ThreadedDriver`: one thread per model version waits up to `max_queue_delay` for company;
  callers block on an Event (gthread workers, tests).
- `sidecar.server.meinheld_loop.LoopDriver`: batches run on the worker's event loop after
  each turn, while waiting requests are suspended greenlets.

The server layer chooses the driver (its worker class knows how it waits) and hands its
factory to the repository loader; nothing here knows which server runs.

Poison requests. One request the model cannot compute (an index out of range for a Gather,
a size a Reshape cannot take) fails the whole run of its batch. `Batcher.execute` then
bisects: it runs each half again, splits each half that fails again, and so on, so every
request is either computed or has failed alone (at most 2N - 1 runs for N requests; no retry
for a batch of one). Whose failure is a request that failed alone:

- the CLIENT's, answered 422 without the server-failure header (the edge's breaker ignores
  it), when ONNX Runtime said INVALID_ARGUMENT (its own verdict on an input value), or when
  any other request of the same batch was computed: the session works, this input is the
  one it cannot compute;
- the SERVER's, answered 500 with `X-Weir-Failure: server`, when the failure is the device's
  (a CUDA/cuDNN/cuBLAS/TensorRT failure, ORT's EP_FAIL / ENGINE_ERROR / device reset: the
  bisect stops at once), or memory ran out even for the request alone (smaller runs are
  tried first: a batch too big for memory is rescued by its halves), or when nothing of the
  batch could be computed with any other error (ORT's FAIL, RUNTIME_EXCEPTION, ...): no
  evidence the session can compute anything, so the model version is presumed broken.
  A batch of one that fails with such an error is therefore the server's: with no company
  there is no evidence either way, and a broken session must open the edge's breaker.

ORT's exception types alone cannot decide: a kernel's failed check on an input value (Reshape)
and a CUDA failure both come out as FAIL, which is why the batch's own evidence decides those.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sidecar.errors import InferenceFailed, QueueFull, Unavailable, Unprocessable, WeirError

if TYPE_CHECKING:
    from sidecar.metrics import ModelMetrics

log = logging.getLogger(__name__)
perf_counter = time.perf_counter


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """Rows per run (0: no batching), wait for company (seconds), queue bound (requests)."""

    max_batch_size: int
    max_queue_delay: float
    max_queue_size: int


class Pending:
    """One request in the queue; `done` is set once outputs or error are filled."""

    __slots__ = (
        "background",
        "done",
        "enqueued",
        "error",
        "feeds",
        "key",
        "outputs",
        "rows",
        "waiter",
    )

    def __init__(self, feeds: dict[str, np.ndarray], rows: int, background: bool = False) -> None:
        self.feeds = feeds
        self.rows = rows
        # Work no client waits for (a shadow copy): never computed on an event loop, where
        # it would take the CPU from live requests at their own priority.
        self.background = background
        # Requests join a batch only with others whose non-batch dimensions agree.
        self.key = tuple(a.shape[1:] for a in feeds.values())
        self.enqueued = 0.0
        self.outputs: list[np.ndarray] | None = None
        self.error: WeirError | None = None
        self.done = False
        self.waiter: object = None


RunFn = Callable[[dict[str, np.ndarray]], list[np.ndarray]]

# What a runtime failure says about its cause (`runtime_fault`).
INPUT = "input"  # the runtime refused an input value: the client's, whatever else happened
DEVICE = "device"  # the device or session is gone: the server's; bisecting cannot help
MEMORY = "memory"  # out of memory: smaller runs may pass; alone, still the server's
UNKNOWN = "unknown"  # e.g. ORT's FAIL: the batch's evidence decides

# ONNX Runtime's Python exception classes (onnxruntime.capi.onnxruntime_pybind11_state), by
# name so that this core does not import the runtime (its tests run fakes).
_DEVICE_TYPES = frozenset({"EPFail", "EngineError", "DeviceReset"})
_DEVICE_WORDS = ("cuda failure", "cuda error", "cudnn", "cublas", "tensorrt", "device lost")
_MEMORY_WORDS = ("out of memory", "bad allocation", "failed to allocate", "bad_alloc")


def runtime_fault(exc: BaseException) -> str:
    """INPUT, DEVICE, MEMORY or UNKNOWN for an exception raised by a model run."""
    kind = type(exc).__name__
    if kind == "InvalidArgument":
        return INPUT
    text = str(exc).lower()
    if isinstance(exc, MemoryError) or any(word in text for word in _MEMORY_WORDS):
        return MEMORY
    if kind in _DEVICE_TYPES or any(word in text for word in _DEVICE_WORDS):
        return DEVICE
    return UNKNOWN


def is_client_fault(exc: BaseException, computed: int) -> bool:
    """Whether a request that failed ALONE is the client's, `computed` being the number of
    other requests of its batch that were computed (the rule: module docstring)."""
    fault = runtime_fault(exc)
    return fault == INPUT or (fault == UNKNOWN and computed > 0)


class _RunFailed(Exception):
    """The runtime raised `cause` while running a batch (as opposed to a bug of ours)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


ObserveFn = Callable[[list["Pending"], list[np.ndarray], float, float], None]
DepthFn = Callable[[int], None]


class Batcher:
    """The queue and batch execution of one model version. Not thread-safe by itself."""

    def __init__(
        self,
        name: str,
        policy: BatchPolicy,
        run: RunFn,
        observe: ObserveFn | None = None,
        depth: DepthFn | None = None,
        on_split: Callable[[], None] | None = None,
        *,
        on_host: bool = True,
    ) -> None:
        self.name = name
        self.policy = policy
        # The run computes on this host's CPU (False: on a device, which the run waits for,
        # so the calling thread's CPU time says nothing of how long it takes).
        self.on_host = on_host
        self._run = run
        self._observe = observe
        # Told the number of requests still waiting after each batch (0 once traffic stops).
        self._depth = depth
        # Told each time a failed batch is bisected.
        self._on_split = on_split
        # Seconds after which the driver stops waiting for a request (None: it waits as long
        # as it takes): a bisect does not run such a request again.
        self.patience: float | None = None
        self.queue: deque[Pending] = deque()
        self.queued_rows = 0
        self._buffers: dict[str, np.ndarray] = {}

    def enqueue(self, item: Pending) -> None:
        if len(self.queue) >= self.policy.max_queue_size:
            raise QueueFull(
                f"{self.name}: the batching queue is full ({self.policy.max_queue_size} "
                "requests waiting); retry after the Retry-After delay"
            )
        item.enqueued = perf_counter()
        self.queue.append(item)
        self.queued_rows += item.rows

    def withdraw(self, item: Pending) -> bool:
        """Take back a request still queued (its client is gone); False once it was taken."""
        try:
            self.queue.remove(item)
        except ValueError:
            return False
        self.queued_rows -= item.rows
        return True

    def take(self) -> list[Pending]:
        """The next batch: the oldest request plus compatible ones up to max_batch_size rows."""
        queue = self.queue
        head = queue.popleft()
        batch = [head]
        rows = head.rows
        limit = self.policy.max_batch_size
        if limit > 0 and rows < limit:
            skipped: list[Pending] = []
            while queue and rows < limit:
                item = queue[0]
                if rows + item.rows > limit:
                    break
                queue.popleft()
                if item.key == head.key:
                    batch.append(item)
                    rows += item.rows
                else:
                    skipped.append(item)
            queue.extendleft(reversed(skipped))
        self.queued_rows -= rows
        return batch

    def execute(self, batch: list[Pending]) -> None:
        """Run one batch and complete each of its requests. Never raises.

        When the run fails, the batch is bisected (`_isolate`) so that only the requests the
        model cannot compute fail; see the module docstring for the rule that says whose
        failure each one is.
        """
        try:
            try:
                self._run_part(batch)
            except _RunFailed as failed:
                if len(batch) == 1:  # no retry for a batch of one: it already ran alone
                    self._conclude(batch, [(batch[0], failed.cause)], computed=0)
                else:
                    self._isolate(batch, failed.cause)
        except Exception:
            # Ours, not the model's (outputs that do not split by rows, a metrics bug): the
            # whole batch fails as the server's, as before any bisecting existed.
            log.exception("%s: a batch of %d request(s) failed", self.name, len(batch))
            error = InferenceFailed(
                f"{self.name} failed while running a batch of {len(batch)} request(s); "
                "this request was not processed and may be retried"
            )
            for item in batch:
                if not item.done:
                    item.outputs = None
                    item.error = error
        finally:
            for item in batch:
                item.done = True
            if self._depth is not None:
                self._depth(len(self.queue))

    def _run_part(self, part: list[Pending]) -> None:
        """Run `part` as one batch and give each request its rows. A failure of the runtime
        itself is raised as `_RunFailed`; anything else that raises is a bug of ours."""
        feeds = part[0].feeds if len(part) == 1 else self._join(part)
        started = perf_counter()
        try:
            outputs = self._run(feeds)
        except Exception as exc:
            raise _RunFailed(exc) from exc
        finished = perf_counter()
        if len(part) == 1:
            part[0].outputs = outputs
        else:
            self._split(part, outputs)
        for item in part:
            item.done = True
        if self._observe is not None:
            self._observe(part, outputs, started, finished)

    def _isolate(self, batch: list[Pending], first: BaseException) -> None:
        """The batch failed as a whole: run its halves, split each half that fails again,
        until every request has either been computed or failed alone.

        Bound: the runs form a binary tree whose leaves are the N requests, so a batch of N
        costs at most 2N - 1 runs, this batch's first included (2N - 2 sub-runs), each on at
        most half the batch: each level of the tree reruns each request at most once, so at
        most N * (1 + ceil(log2 N)) request-runs in all. Requests whose driver has stopped
        waiting (`patience`) are not run again, and a device failure stops the bisect at once.
        Worst case, a session broken for every input: 2N - 1 failing runs before the batch is
        answered, during which this model version's queue waits (bounded by
        `max_queue_size`, so new requests are refused 503 at once instead of piling up).
        """
        alone: list[tuple[Pending, BaseException]] = []
        computed = 0
        if runtime_fault(first) == DEVICE:  # no smaller run can do better
            self._conclude(batch, [(item, first) for item in batch], computed)
            return
        log.warning(
            "%s: a batch of %d requests failed (%s); retrying it in halves to isolate the "
            "request(s) the model cannot compute",
            self.name,
            len(batch),
            type(first).__name__,
        )
        if self._on_split is not None:
            self._on_split()
        mid = len(batch) // 2
        stack = [batch[mid:], batch[:mid]]  # oldest half first
        while stack:
            part = self._still_awaited(stack.pop())
            if not part:
                continue
            try:
                self._run_part(part)
            except _RunFailed as failed:
                if len(part) == 1:
                    alone.append((part[0], failed.cause))
                elif runtime_fault(failed.cause) == DEVICE:
                    # The device or the session is gone: no smaller run will do better.
                    alone.extend((item, failed.cause) for item in part)
                    for rest in stack:
                        alone.extend((item, failed.cause) for item in rest)
                    stack.clear()
                else:
                    mid = len(part) // 2
                    stack += (part[mid:], part[:mid])
                continue
            computed += len(part)
        self._conclude(batch, alone, computed)

    def _still_awaited(self, part: list[Pending]) -> list[Pending]:
        """`part` without the requests whose caller gave up waiting: they are completed now
        (nobody reads the answer) rather than run again."""
        if self.patience is None:
            return part
        oldest = perf_counter() - self.patience
        late = [item for item in part if item.enqueued < oldest]
        if not late:
            return part
        error = Unavailable(f"{self.name}: no result within {self.patience:g}s")
        for item in late:
            item.error = error
            item.done = True
        return [item for item in part if not item.done]

    def _conclude(
        self,
        batch: list[Pending],
        alone: list[tuple[Pending, BaseException]],
        computed: int,
    ) -> None:
        """Answer the requests that failed alone: the client's (422) or the server's (500)."""
        if not alone:
            return
        server: list[Pending] = []
        for item, cause in alone:
            if is_client_fault(cause, computed):
                item.error = Unprocessable(
                    f"{self.name} could not compute this input: it failed when run alone"
                    + (
                        f", while {computed} other request(s) of its batch were computed"
                        if computed
                        else ""
                    )
                    + ". The request is well-formed and matches the model's signature, but "
                    "the model cannot process its values: check them against what the model "
                    "accepts (indices, lengths or sizes within the ranges it was built for); "
                    "do not retry it unchanged"
                )
            else:
                server.append(item)
        if server:
            cause = next(c for item, c in alone if item is server[0])
            log.error(
                "%s: %d of %d request(s) failed alone and %d were computed: the model "
                "version failed, not its input",
                self.name,
                len(server),
                len(batch),
                computed,
                exc_info=cause,
            )
            error = InferenceFailed(
                f"{self.name} failed while running this request"
                + (
                    f" (retried alone after its batch of {len(batch)} failed)"
                    if len(batch) > 1
                    else ""
                )
                + "; the failure is the server's, not this input's: it may be retried"
            )
            for item in server:
                item.error = error
        clients = len(alone) - len(server)
        if clients:
            log.info(
                "%s: %d request(s) the model cannot compute answered 422 (%s)",
                self.name,
                clients,
                type(alone[0][1]).__name__,
            )
        for item, _ in alone:
            item.outputs = None
            item.done = True

    def _split(self, batch: list[Pending], outputs: list[np.ndarray]) -> None:
        rows = sum(item.rows for item in batch)
        for out in outputs:
            if out.ndim == 0 or out.shape[0] != rows:
                # Dimension 0 is dynamic but is not the batch: joining requests was wrong.
                raise ValueError(
                    f"an output has {out.shape[0] if out.ndim else 'no'} rows for {rows} input "
                    "rows; give this model max_batch_size: 0 in its config.yaml"
                )
        offset = 0
        for item in batch:
            end = offset + item.rows
            item.outputs = [out[offset:end] for out in outputs]
            offset = end

    def _join(self, batch: list[Pending]) -> dict[str, np.ndarray]:
        """Stack the batch's inputs into buffers kept from run to run.

        A fresh multi-megabyte array per batch costs an mmap, page faults and munmap each
        time; one buffer of max_batch_size rows per input is reused instead (batches run one
        at a time per model version, so nothing else touches it meanwhile).
        """
        rows = sum(item.rows for item in batch)
        feeds = {}
        for name, first in batch[0].feeds.items():
            parts = [item.feeds[name] for item in batch]
            buffer = self._buffers.get(name)
            if (
                buffer is None
                or len(buffer) < rows
                or buffer.shape[1:] != first.shape[1:]
                or buffer.dtype != first.dtype
            ):
                if first.dtype.kind == "O" or rows > self.policy.max_batch_size:
                    feeds[name] = np.concatenate(parts)
                    continue
                buffer = np.empty((self.policy.max_batch_size, *first.shape[1:]), first.dtype)
                self._buffers[name] = buffer
            feeds[name] = np.concatenate(parts, out=buffer[:rows])
        return feeds

    def fail_all(self, error: WeirError) -> None:
        """Complete every queued request with `error` (shutdown)."""
        while self.queue:
            item = self.queue.popleft()
            item.error = error
            item.done = True
        self.queued_rows = 0


class ThreadedDriver:
    """A batching thread per model version; callers block until their request is done."""

    def __init__(self, batcher: Batcher, wait_timeout: float = 60.0) -> None:
        self.batcher = batcher
        self.wait_timeout = wait_timeout
        batcher.patience = wait_timeout
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(
            target=self._loop, name=f"batcher {batcher.name}", daemon=True
        )
        self._thread.start()

    def infer(self, item: Pending) -> None:
        event = threading.Event()
        item.waiter = event
        with self._cond:
            if self._stopped:
                raise Unavailable(f"{self.batcher.name} is shutting down")
            self.batcher.enqueue(item)
            self._cond.notify()
        if not event.wait(self.wait_timeout):
            # The batcher still owns the item and will complete it; this caller gives up.
            raise Unavailable(f"{self.batcher.name}: no result within {self.wait_timeout:g}s")

    def _loop(self) -> None:
        batcher = self.batcher
        policy = batcher.policy
        while True:
            with self._cond:
                while not batcher.queue and not self._stopped:
                    self._cond.wait()
                if not batcher.queue:  # stopped, and everything queued is answered
                    return
                if policy.max_batch_size > 0 and policy.max_queue_delay > 0:
                    deadline = batcher.queue[0].enqueued + policy.max_queue_delay
                    while batcher.queued_rows < policy.max_batch_size and not self._stopped:
                        left = deadline - perf_counter()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                batch = batcher.take()
            batcher.execute(batch)
            for item in batch:
                item.waiter.set()  # type: ignore[attr-defined]

    def stop(self) -> None:
        """Refuse new requests (503); those already queued are computed, then the thread
        ends: a version retired while requests wait for it answers them."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()


def threaded_driver(batcher: Batcher, metrics: ModelMetrics) -> ThreadedDriver:
    """A `DriverFactory` for `ThreadedDriver` (it writes metrics as they happen, unbuffered)."""
    return ThreadedDriver(batcher)
