"""Batching for a server on an asyncio event loop: requests wait as futures, batches compute on
a thread of their own, so the loop keeps serving while a model computes.

Per model version, one compute thread:

1. a request is decoded and validated on the loop, queued, and awaits its future; the first
   request queued in a loop turn schedules a *kick* for the next turn (`call_soon`), which
   runs after every request that arrived together has been read, decoded and queued;
2. the kick starts a batch if the model is idle: at once when the batch is full or
   `max_queue_delay` is 0 (the default), else when the oldest request has waited
   `max_queue_delay` for company or the batch fills, whichever comes first. A busy compute
   thread takes the queue itself the moment its batch is done, so under load the requests
   that arrive while a batch computes form the next batch (batch size follows the load),
   and decoding the next batch overlaps computing this one;
3. the thread runs the batch (ONNX Runtime releases the GIL) and hands the whole batch back
   to the loop in one `call_soon_threadsafe`, which resolves each request's future.

A batch runs on the loop instead (on the host's CPU only: a device's batches always go to the
thread) when it is expected to compute within `INLINE_BUDGET_S`, or within `ALONE_BUDGET_S`
while no other infer request waits on this worker's loop, nor has for `QUIET_S`
(`LoopLoad`): then nobody waits for the loop but a probe, and a hand-off to the thread would
cost the request more CPU (cnn at one client: 8% more than computing on the loop). Under
load, requests that arrive one by one must not each take the loop for a heavy batch: their
decoding would wait for each other's compute. The queue
bound holds at enqueue (`QueueFull`, 503 at once). A caller that has waited `wait_timeout`
gets a 503; the batcher completes its request anyway, and a bisect does not run it again
(`Batcher.patience`). A request whose client hung up (its task cancelled) leaves the queue
uncomputed unless its batch has started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time

from sidecar.errors import Unavailable
from sidecar.metrics import ModelMetrics
from sidecar.serving.batching import Batcher, Pending
from sidecar.serving.model import DriverFactory

log = logging.getLogger(__name__)

WAIT_TIMEOUT_S = 60.0
# A batch expected to compute within this runs on the loop itself: a hand-off to the compute
# thread and back costs tens of µs (two wake-ups, the GIL changing hands twice, and the
# thread's cold caches), and a stall this short costs a probe nothing. At 200 µs, a 4-row
# digits batch (100-230 µs on a CPU shared with its load generator) kept crossing it and
# starved on the nice-10 thread; at 2 ms, cnn's 1.5 ms batches took the loop from decoding
# (cnn binary at 16 clients: 0.54x).
INLINE_BUDGET_S = 500e-6
# A batch expected within this runs on the loop while no other infer request waits on it:
# a probe that arrives meanwhile waits this long at most (the health goal is 10 ms at p99).
ALONE_BUDGET_S = 3e-3
# ... and only once no two requests have waited at the same time for this long.
QUIET_S = 0.5
SMOOTHING = 0.2
# A batch expected within PROBE_FACTOR x the budget it missed runs on the loop one time in
# PROBE_EVERY anyway, to measure it there: thread runs overestimate (`RunCosts`), and a model
# whose batches never ran on the loop again could never be found light again.
PROBE_FACTOR = 2
PROBE_EVERY = 16
# Nice 10 (weight 110 against 1024): the loop wins the CPU from its own compute threads,
# while a compute thread sharing a CPU with a busy process of nice 0 (an edge worker, a load
# generator) still gets a tenth of it; at 19 it got next to nothing and starved.
COMPUTE_NICENESS = 10
perf_counter = time.perf_counter
thread_time = time.thread_time


class LoopLoad:
    """Infer requests waiting for their batch on one worker's loop, all model versions, and
    when two or more last waited at once."""

    __slots__ = ("crowded_at", "waiting")

    def __init__(self) -> None:
        self.waiting = 0
        self.crowded_at = -QUIET_S

    def quiet(self) -> bool:
        """Nobody else waits, and nobody has for `QUIET_S`."""
        return self.waiting <= 1 and perf_counter() - self.crowded_at > QUIET_S


class RunCosts:
    """What a batch of so many rows is expected to cost on the loop: CPU seconds per run,
    smoothed per power-of-two bucket of rows.

    - Runs on the loop say what the loop pays. Runs on the compute thread are only an upper
      bound: a nice-10 thread preempted by a busy neighbour pays for cold caches again after
      each preemption (a 4-row digits batch: 145 µs on the loop, 330-430 µs on the thread
      beside a pinned load generator). So a bucket measured on the loop is judged from the
      loop's runs alone, and one measured only on the thread from the thread's.
    - A batch size not measured yet is judged from the nearest bucket below, scaled by rows
      (an overestimate when a run has a fixed cost), else from the nearest above (fewer rows
      cost no more).
    - Buckets, not one average scaled by rows: with one, a queue that grew while the CPU was
      taken made the next batch look heavy, and it went to the thread, where it waited longer
      still.
    """

    __slots__ = ("_loop", "_thread")

    def __init__(self) -> None:
        # bucket: (seconds, rows), smoothed
        self._loop: dict[int, tuple[float, float]] = {}
        self._thread: dict[int, tuple[float, float]] = {}

    def record(self, rows: float, seconds: float, on_loop: bool) -> None:
        table = self._loop if on_loop else self._thread
        bucket = int(rows).bit_length()
        known = table.get(bucket)
        if known is None:
            table[bucket] = (seconds, rows)
        else:
            table[bucket] = (
                known[0] + SMOOTHING * (seconds - known[0]),
                known[1] + SMOOTHING * (rows - known[1]),
            )

    def estimate(self, rows: float) -> float | None:
        """Expected seconds for `rows` on the loop, or None before any run."""
        bucket = int(rows).bit_length()
        found = self._loop.get(bucket) or self._thread.get(bucket)
        if found is None:
            buckets = self._loop | self._thread
            if not buckets:
                return None
            below = [b for b in buckets if b < bucket]
            found = buckets[max(below)] if below else buckets[min(buckets)]
        seconds, measured_rows = found
        return seconds * max(1.0, rows / measured_rows)


class AsyncioDriver:
    """One model version's queue on `loop`, computed on its own thread (module docstring)."""

    def __init__(
        self,
        batcher: Batcher,
        loop: asyncio.AbstractEventLoop,
        wait_timeout: float = WAIT_TIMEOUT_S,
        load: LoopLoad | None = None,
    ) -> None:
        self.batcher = batcher
        self.loop = loop
        self.wait_timeout = wait_timeout
        self.load = load or LoopLoad()
        batcher.patience = wait_timeout
        # Guards the batcher's queue: the loop enqueues, the compute thread takes.
        self._cond = threading.Condition()
        self._busy = False  # a batch is computing (on the thread or, when light, the loop)
        self.costs = RunCosts()
        self._probe_in = PROBE_EVERY
        self._kicked = False
        self._kick_scheduled = False
        self._company: asyncio.TimerHandle | None = None  # waiting out max_queue_delay
        self._stopped = False
        self._thread = threading.Thread(
            target=self._compute, name=f"compute {batcher.name}", daemon=True
        )
        self._thread.start()

    async def submit(self, item: Pending) -> None:
        """Queue `item` (on the loop) and resume once it is done."""
        future = self.loop.create_future()
        item.waiter = future
        batcher = self.batcher
        with self._cond:
            if self._stopped:
                raise Unavailable(f"{batcher.name} is shutting down")
            batcher.enqueue(item)
        full = batcher.queued_rows >= batcher.policy.max_batch_size
        if self._company is not None and full:
            self._company.cancel()
            self._company = None
        if not self._kick_scheduled and (self._company is None or full):
            self._kick_scheduled = True
            self.loop.call_soon(self._kick)
        # One timer, not asyncio.wait_for's task and callbacks: this runs once per request.
        timer = self.loop.call_later(self.wait_timeout, _expire, future)
        load = self.load
        load.waiting += 1
        if load.waiting > 1:
            load.crowded_at = perf_counter()
        try:
            await future
        except _GaveUp:
            # The batcher still owns the item and will complete it; this caller gives up.
            raise Unavailable(f"{batcher.name}: no result within {self.wait_timeout:g}s") from None
        except asyncio.CancelledError:
            # Its client is gone (the protocol cancels): not computed, if not taken yet.
            with self._cond:
                batcher.withdraw(item)
            raise
        finally:
            self.load.waiting -= 1
            timer.cancel()

    def _kick(self) -> None:
        self._kick_scheduled = False
        self._company = None
        batch = None
        with self._cond:
            if not self._busy and (left := self._company_left()) > 0:
                self._company = self.loop.call_later(left, self._kick)
                return
            if not self._busy and self.batcher.queue and self._on_loop():
                self._busy = True
                batch = self.batcher.take()
            else:
                self._kicked = True
                self._cond.notify()
        if batch is None:
            return
        # Cheaper on the loop than a hand-off to the thread and back (module docstring).
        self._execute(batch, on_loop=True)
        with self._cond:
            self._busy = False
            if self.batcher.queue or self._stopped:
                self._kicked = True
                self._cond.notify_all()
        _resolve(batch)

    def _company_left(self) -> float:
        """Seconds the queued batch may still wait for company (0: start it now)."""
        batcher = self.batcher
        policy = batcher.policy
        if not batcher.queue or policy.max_queue_delay <= 0 or policy.max_batch_size <= 0:
            return 0.0
        if batcher.queued_rows >= policy.max_batch_size:
            return 0.0
        return batcher.queue[0].enqueued + policy.max_queue_delay - perf_counter()

    def _on_loop(self) -> bool:
        """Whether the next batch computes on the loop (module docstring). Never on a
        device: its runs cost the host little CPU however long they take (a 300 ms GPU batch
        on the loop would hold every probe for 300 ms). Never with background work (shadow
        copies): on the nice-10 thread it takes only the CPU live requests leave."""
        if not self.batcher.on_host or any(item.background for item in self.batcher.queue):
            return False
        expected = self.costs.estimate(self.batcher.queued_rows)
        if expected is None:
            return False
        if expected <= INLINE_BUDGET_S:
            return True
        quiet = self.load.quiet()
        budget = ALONE_BUDGET_S if quiet else INLINE_BUDGET_S
        if expected <= budget:
            return True
        if expected <= PROBE_FACTOR * budget:
            self._probe_in -= 1
            if self._probe_in <= 0:
                self._probe_in = PROBE_EVERY
                return True
        return False

    def _execute(self, batch: list[Pending], on_loop: bool) -> None:
        # CPU time of this thread, not wall time: a run preempted by other work on its CPU
        # would otherwise look heavy and be sent to the thread, where it waits longer still.
        started = thread_time()
        self.batcher.execute(batch)
        rows = float(sum(item.rows for item in batch))
        self.costs.record(rows, thread_time() - started, on_loop)

    def _compute(self) -> None:
        # Computing yields the CPU to the thread serving HTTP: health and light requests are
        # answered promptly even when models saturate every core (nice is per thread here).
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), COMPUTE_NICENESS)
        batcher = self.batcher
        while True:
            with self._cond:
                while (self._busy or not (self._kicked and batcher.queue)) and not self._stopped:
                    self._cond.wait()
                while self._busy:  # stopped while a light batch runs on the loop
                    self._cond.wait()
                if not batcher.queue:  # stopped, and everything queued is answered
                    return
                self._busy = True
                batch = batcher.take()
                # Whatever is still queued was kicked for too: take it after this batch.
                self._kicked = bool(batcher.queue)
            self._execute(batch, on_loop=False)
            with self._cond:
                self._busy = False
            self._hand_back(batch)

    def _hand_back(self, batch: list[Pending]) -> None:
        try:
            self.loop.call_soon_threadsafe(_resolve, batch)
        except RuntimeError:  # the loop is closed: the worker is exiting, nobody waits
            log.debug("%s: loop closed before a batch was handed back", self.batcher.name)

    def stop(self) -> None:
        """Refuse new requests (503); those already queued are computed, then the compute
        thread ends: a version retired while requests wait for it answers them."""
        with self._cond:
            self._stopped = True
            self._kicked = True
            self._cond.notify_all()


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(_GaveUp())


class _GaveUp(Exception):
    """The caller's wait ran out: raised in `submit` as a 503 with the version's name."""


def _resolve(batch: list[Pending]) -> None:
    """On the loop: wake every request of a finished batch (those still waiting)."""
    for item in batch:
        future = item.waiter
        assert isinstance(future, asyncio.Future)
        if not future.done():
            future.set_result(None)


def asyncio_driver(loop: asyncio.AbstractEventLoop) -> DriverFactory:
    """A `DriverFactory` for `AsyncioDriver` on `loop`, its drivers sharing one `LoopLoad`."""
    load = LoopLoad()

    def factory(batcher: Batcher, metrics: ModelMetrics) -> AsyncioDriver:
        # Successes are written once per loop turn, one increment per bucket.
        metrics.buffered = True
        metrics.flush_soon = loop.call_soon
        return AsyncioDriver(batcher, loop, load=load)

    return factory
