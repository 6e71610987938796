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

from sidecar.errors import InferenceFailed, QueueFull, Unavailable, WeirError

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

    __slots__ = ("done", "enqueued", "error", "feeds", "key", "outputs", "rows", "waiter")

    def __init__(self, feeds: dict[str, np.ndarray], rows: int) -> None:
        self.feeds = feeds
        self.rows = rows
        # Requests join a batch only with others whose non-batch dimensions agree.
        self.key = tuple(a.shape[1:] for a in feeds.values())
        self.enqueued = 0.0
        self.outputs: list[np.ndarray] | None = None
        self.error: WeirError | None = None
        self.done = False
        self.waiter: object = None


RunFn = Callable[[dict[str, np.ndarray]], list[np.ndarray]]
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
    ) -> None:
        self.name = name
        self.policy = policy
        self._run = run
        self._observe = observe
        # Told the number of requests still waiting after each batch (0 once traffic stops).
        self._depth = depth
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
        """Run one batch and complete each of its requests. Never raises."""
        try:
            feeds = batch[0].feeds if len(batch) == 1 else self._join(batch)
            started = perf_counter()
            outputs = self._run(feeds)
            finished = perf_counter()
            if len(batch) == 1:
                batch[0].outputs = outputs
            else:
                self._split(batch, outputs)
            if self._observe is not None:
                self._observe(batch, outputs, started, finished)
        except Exception:
            log.exception("%s: a batch of %d request(s) failed", self.name, len(batch))
            error = InferenceFailed(
                f"{self.name} failed while running a batch of {len(batch)} request(s); "
                "this request was not processed and may be retried"
            )
            for item in batch:
                item.outputs = None
                item.error = error
        finally:
            for item in batch:
                item.done = True
            if self._depth is not None:
                self._depth(len(self.queue))

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
                if self._stopped:
                    return
                if policy.max_batch_size > 0 and policy.max_queue_delay > 0:
                    deadline = batcher.queue[0].enqueued + policy.max_queue_delay
                    while batcher.queued_rows < policy.max_batch_size:
                        left = deadline - perf_counter()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                batch = batcher.take()
            batcher.execute(batch)
            for item in batch:
                item.waiter.set()  # type: ignore[attr-defined]

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            error = Unavailable(f"{self.batcher.name} is shutting down")
            items = list(self.batcher.queue)
            self.batcher.fail_all(error)
            self._cond.notify_all()
        for item in items:
            item.waiter.set()  # type: ignore[attr-defined]


def threaded_driver(batcher: Batcher, metrics: ModelMetrics) -> ThreadedDriver:
    """A `DriverFactory` for `ThreadedDriver` (it writes metrics as they happen, unbuffered)."""
    return ThreadedDriver(batcher)
