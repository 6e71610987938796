"""Both versions timed side by side in one run: interleaved rounds, bounded in time.

Interleaving is what makes the comparison fair on a shared machine: a neighbour's burst, a
frequency change or a cold cache hits both versions alike instead of whichever ran second.
Each round runs one batch-1 request on each version (the order alternates between rounds);
every tenth round or so also a batch of 32 on each, so those are spread over the run too.
Wall time gives p50/p99 and throughput; process CPU time per request shows what a request
costs a busy machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from scripts.quantize.sessions import Feeds, take

BATCH = 32
WARMUP = 3
ONE_ROW_SAMPLES = 400  # enough for a p99 that is not just the maximum
BATCH_SAMPLES = 40


@dataclass(frozen=True)
class Speed:
    """One version's figures; seconds are per call."""

    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    batch_rows_per_s: float
    samples: int
    batch_samples: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "batch1_p50_ms": round(self.p50_ms, 4),
            "batch1_p99_ms": round(self.p99_ms, 4),
            "batch1_cpu_ms_per_request": round(self.cpu_ms_per_request, 4),
            f"batch{BATCH}_rows_per_s": round(self.batch_rows_per_s, 1),
            "batch1_samples": self.samples,
            f"batch{BATCH}_samples": self.batch_samples,
        }


@dataclass
class _Samples:
    wall: list[float]
    cpu: list[float]
    batch: list[float]


def _timed(run: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def _call(session: Any, feeds: Feeds) -> Callable[[], object]:
    def run() -> object:
        return session.run(None, feeds)

    return run


def _summary(samples: _Samples) -> Speed:
    wall = np.array(samples.wall)
    return Speed(
        p50_ms=float(np.percentile(wall, 50)) * 1000,
        p99_ms=float(np.percentile(wall, 99)) * 1000,
        cpu_ms_per_request=float(np.mean(samples.cpu)) * 1000,
        batch_rows_per_s=BATCH / float(np.median(samples.batch)) if samples.batch else 0.0,
        samples=len(samples.wall),
        batch_samples=len(samples.batch),
    )


def side_by_side(
    sessions: tuple[Any, Any],
    feeds: Feeds,
    budget_s: float,
    one_row: int = ONE_ROW_SAMPLES,
    batches: int = BATCH_SAMPLES,
) -> tuple[Speed, Speed]:
    """(source, new) figures from interleaved rounds, stopping after `budget_s` seconds or
    once `one_row` batch-1 and `batches` batch-32 samples of each are taken; at least one
    round always runs."""
    single, batch = take(feeds, 1), take(feeds, BATCH)
    calls = [(_call(s, single), _call(s, batch)) for s in sessions]
    for one, many in calls:
        for _ in range(WARMUP):
            one()
        many()
    taken = [_Samples([], [], []) for _ in sessions]
    deadline = time.monotonic() + budget_s
    round_, every = 0, max(1, one_row // max(1, batches))
    while True:
        order = (0, 1) if round_ % 2 == 0 else (1, 0)
        for i in order:
            wall, cpu = _timed(calls[i][0])
            taken[i].wall.append(wall)
            taken[i].cpu.append(cpu)
        if round_ % every == 0 and len(taken[0].batch) < batches:
            for i in order:
                taken[i].batch.append(_timed(calls[i][1])[0])
        round_ += 1
        enough = round_ >= one_row and len(taken[0].batch) >= batches
        if enough or time.monotonic() >= deadline:
            break
    return _summary(taken[0]), _summary(taken[1])
