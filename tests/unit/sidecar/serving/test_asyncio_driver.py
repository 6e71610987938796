"""The asyncio driver: requests that arrive in one loop turn form one batch, light batches run
on the loop, heavy ones on the compute thread while the loop keeps serving, and a caller that
gives up gets a 503 without losing the batch."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from sidecar.errors import QueueFull, Unavailable
from sidecar.serving.asyncio_driver import (
    ALONE_BUDGET_S,
    INLINE_BUDGET_S,
    PROBE_EVERY,
    AsyncioDriver,
    LoopLoad,
    RunCosts,
)
from sidecar.serving.batching import Batcher, BatchPolicy, Pending


def _item(value: float = 1.0) -> Pending:
    return Pending({"x": np.full((1, 4), value, dtype=np.float32)}, 1)


class Runner:
    """Doubles `x`, noting each run's rows and thread; `gate` (when set) holds a run."""

    def __init__(
        self, gate: threading.Event | None = None, burn: float = 0.0, thread_burn: float = 0.0
    ) -> None:
        self.gate = gate
        self.burn = burn  # CPU seconds each run spends (what the driver measures)
        self.thread_burn = thread_burn  # more on the compute thread (as when it is preempted)
        self.runs: list[tuple[int, str]] = []

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self.gate is not None:
            assert self.gate.wait(30)
        extra = self.thread_burn if threading.current_thread() is not threading.main_thread() else 0
        until = time.thread_time() + self.burn + extra
        while time.thread_time() < until:
            pass
        self.runs.append((len(feeds["x"]), threading.current_thread().name))
        return [feeds["x"] * 2]


def _driver(loop: asyncio.AbstractEventLoop, runner: Runner, **kw: float) -> AsyncioDriver:
    policy = BatchPolicy(64, 0.0, int(kw.pop("queue", 100)))
    return AsyncioDriver(Batcher("m:1", policy, runner), loop, **kw)


def test_requests_queued_in_one_loop_turn_form_one_batch():
    runner = Runner()

    async def main() -> list[Pending]:
        driver = _driver(asyncio.get_running_loop(), runner)
        items = [_item(k) for k in range(8)]
        await asyncio.gather(*(driver.submit(i) for i in items))
        driver.stop()
        return items

    items = asyncio.run(main())
    assert [rows for rows, _ in runner.runs] == [8]
    for k, item in enumerate(items):
        assert item.error is None and item.outputs is not None
        assert np.all(item.outputs[0] == 2.0 * k)


def test_a_heavy_batch_computes_on_its_thread_while_the_loop_serves_on():
    gate = threading.Event()
    runner = Runner(gate)

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        driver = _driver(loop, runner)
        request = asyncio.ensure_future(driver.submit(_item()))
        served = []
        for k in range(5):  # the loop turns while the run is held on the compute thread
            await asyncio.sleep(0.01)
            served.append(f"turn {k}")
        assert not request.done()
        gate.set()
        await request
        driver.stop()
        return served

    assert asyncio.run(main()) == [f"turn {k}" for k in range(5)]
    assert runner.runs == [(1, "compute m:1")]


def test_once_measured_light_batches_run_on_the_loop_itself():
    runner = Runner()

    async def main() -> None:
        driver = _driver(asyncio.get_running_loop(), runner)
        await driver.submit(_item())  # unmeasured: the compute thread
        await driver.submit(_item())  # measured cheaper than a hand-off: the loop
        driver.stop()

    asyncio.run(main())
    assert [thread for _, thread in runner.runs] == ["compute m:1", "MainThread"]


def test_a_heavier_batch_runs_on_the_loop_only_while_nobody_else_waits_on_it():
    burn = (INLINE_BUDGET_S + ALONE_BUDGET_S) / 2  # over the light budget, within alone's
    heavy = Runner(burn=burn)
    gate = threading.Event()
    other = Runner(gate)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        load = LoopLoad()
        driver = AsyncioDriver(Batcher("m:1", BatchPolicy(64, 0.0, 100), heavy), loop, load=load)
        held = AsyncioDriver(Batcher("o:1", BatchPolicy(64, 0.0, 100), other), loop, load=load)
        await driver.submit(_item())  # unmeasured: the compute thread
        await driver.submit(_item())  # alone on the loop: computed there
        waiting = asyncio.ensure_future(held.submit(_item()))  # another model's request waits
        await asyncio.sleep(0.05)
        await driver.submit(_item())  # someone else waits for the loop: the compute thread
        gate.set()
        await waiting
        driver.stop()
        held.stop()

    asyncio.run(main())
    assert [thread for _, thread in heavy.runs] == ["compute m:1", "MainThread", "compute m:1"]


def test_run_costs_judge_an_unmeasured_batch_size_from_its_neighbours():
    costs = RunCosts()
    assert costs.estimate(4) is None
    costs.record(1, 50e-6, on_loop=True)
    assert costs.estimate(1) == pytest.approx(50e-6)
    assert costs.estimate(4) == pytest.approx(200e-6)  # scaled from below: an upper bound
    costs.record(4, 60e-6, on_loop=True)  # measured: a fixed cost per run, little per row
    assert costs.estimate(4) == pytest.approx(60e-6)
    assert costs.estimate(6) == pytest.approx(90e-6)  # the same bucket, scaled by rows
    assert costs.estimate(2) == pytest.approx(100e-6)  # from below (scaled), not from 4's
    empty_below = RunCosts()
    empty_below.record(16, 80e-6, on_loop=False)
    assert empty_below.estimate(2) == pytest.approx(80e-6)  # fewer rows cost no more


def test_run_costs_trust_the_loop_s_runs_over_the_thread_s():
    costs = RunCosts()
    costs.record(4, 400e-6, on_loop=False)  # preempted on the thread: an upper bound
    assert costs.estimate(4) == pytest.approx(400e-6)
    costs.record(4, 120e-6, on_loop=True)
    for _ in range(5):
        costs.record(4, 400e-6, on_loop=False)  # more thread runs do not undo the loop's
    assert costs.estimate(4) == pytest.approx(120e-6)


def test_a_batch_measured_heavy_on_the_thread_is_tried_on_the_loop_now_and_then():
    runner = Runner(thread_burn=1.5 * INLINE_BUDGET_S)  # light on the loop, not on the thread

    async def main() -> None:
        driver = _driver(asyncio.get_running_loop(), runner)
        driver.load.crowded_at = float("inf")  # never quiet: only the light budget applies
        for _ in range(PROBE_EVERY + 1):
            await driver.submit(_item())
        driver.stop()

    asyncio.run(main())
    threads = [thread for _, thread in runner.runs]
    # The first run is unmeasured, the next PROBE_EVERY - 1 look heavy from the thread's runs.
    assert threads[:PROBE_EVERY] == ["compute m:1"] * PROBE_EVERY
    assert threads[PROBE_EVERY] == "MainThread"  # tried on the loop: light after all


def test_background_work_never_runs_on_the_loop_however_cheap_it_looks():
    runner = Runner()

    async def main() -> None:
        driver = _driver(asyncio.get_running_loop(), runner)
        await driver.submit(_item())  # unmeasured: the compute thread
        await driver.submit(_item())  # light: the loop
        shadow = _item()
        shadow.background = True  # a shadow copy
        await driver.submit(shadow)
        driver.stop()

    asyncio.run(main())
    assert [thread for _, thread in runner.runs] == ["compute m:1", "MainThread", "compute m:1"]


def test_a_device_s_batches_never_run_on_the_loop_however_cheap_they_look():
    runner = Runner()

    async def main() -> None:
        policy = BatchPolicy(64, 0.0, 100)
        batcher = Batcher("m:1", policy, runner, on_host=False)
        driver = AsyncioDriver(batcher, asyncio.get_running_loop())
        for _ in range(3):
            await driver.submit(_item())
        driver.stop()

    asyncio.run(main())
    assert [thread for _, thread in runner.runs] == ["compute m:1"] * 3


def test_a_caller_that_gives_up_gets_503_and_the_batch_still_completes():
    gate = threading.Event()
    runner = Runner(gate)

    async def main() -> Pending:
        driver = _driver(asyncio.get_running_loop(), runner, wait_timeout=0.05)
        item = _item()
        with pytest.raises(Unavailable, match="no result within"):
            await driver.submit(item)
        gate.set()
        while not item.done:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)  # the hand-back of a batch nobody awaits any more
        driver.stop()
        return item

    item = asyncio.run(main())
    assert item.outputs is not None and runner.runs == [(1, "compute m:1")]


def test_a_full_queue_refuses_at_once_and_stop_computes_what_waits_then_refuses():
    gate = threading.Event()
    runner = Runner(gate)

    waiting = _item()

    async def main() -> list[BaseException | None]:
        driver = _driver(asyncio.get_running_loop(), runner, queue=1)
        running = asyncio.ensure_future(driver.submit(_item()))  # taken by the thread, held
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(driver.submit(waiting))  # the one place in the queue
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await driver.submit(_item())
        driver.stop()
        gate.set()
        results = await asyncio.gather(running, queued, return_exceptions=True)
        with pytest.raises(Unavailable, match="shutting down"):
            await driver.submit(_item())
        return list(results)

    running, queued = asyncio.run(main())
    assert running is None and queued is None
    assert waiting.error is None and waiting.outputs is not None  # retired, yet answered


def test_max_queue_delay_holds_a_partial_batch_for_company_and_a_full_one_starts_at_once():
    runner = Runner()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        driver = AsyncioDriver(Batcher("m:1", BatchPolicy(4, 5.0, 100), runner), loop)
        first = asyncio.ensure_future(driver.submit(_item()))
        await asyncio.sleep(0.05)  # within the delay: nothing has run, it waits for company
        assert runner.runs == [] and not first.done()
        rest = [asyncio.ensure_future(driver.submit(_item())) for _ in range(3)]
        await asyncio.wait_for(asyncio.gather(first, *rest), 4.0)  # full: not held for 5 s
        driver.stop()

    asyncio.run(main())
    assert [rows for rows, _ in runner.runs] == [4]
