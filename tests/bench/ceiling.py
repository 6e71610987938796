"""Baseline (d): the ceiling, ONNX Runtime on the same model at its best batch size, no server.

No HTTP, no JSON, no copies: `session.run` on a ready tensor in a loop, in as many processes and
with as many intra-op threads each as the sidecar's workers, all running at once, so the ceiling
uses the machine the way the sidecar does. The sweep tries intra-op spinning on (ORT's default)
and off (the sidecar's choice) and keeps the better, so the ceiling is never flattered down.
The benchmark re-measures the chosen setting around every round of servers, so "x ceiling"
compares numbers taken under the same background load on this shared machine.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import onnxruntime as ort

from tests.bench.loadgen import LoadResult


@dataclass(frozen=True)
class Sweep:
    model: str
    workers: int
    threads: int  # intra-op threads per worker
    spinning: bool
    best_batch: int
    by_batch: dict[int, float]  # samples/s, with the better spinning setting


class InProcess:
    """One ORT session on the CPU provider, timed at a given batch size."""

    def __init__(self, model_path: Path, threads: int, spinning: bool) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        spin = "1" if spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        self.session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        self._input = self.session.get_inputs()[0]

    def run(self, batch: int, seconds: float) -> tuple[LoadResult, float]:
        """Samples (as `requests`) and per-call latencies of `seconds` of back-to-back runs,
        and the CPU seconds the process spent on them (all its threads)."""
        shape = (batch, *(int(d) for d in self._input.shape[1:]))
        feeds = {self._input.name: np.random.default_rng(0).random(shape, dtype=np.float32)}
        self.session.run(None, feeds)  # warm: allocations and thread pool
        calls: list[float] = []
        cpu = time.process_time()
        start = time.perf_counter()
        while (now := time.perf_counter()) - start < seconds:
            self.session.run(None, feeds)
            calls.append(time.perf_counter() - now)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        q = statistics.quantiles(calls, n=100) if len(calls) > 1 else calls * 99
        result = LoadResult(
            len(calls) * batch,
            elapsed,
            q[49] * 1e3,
            q[89] * 1e3,
            q[98] * 1e3,
            max(calls) * 1e3,
            0,
            0,
        )
        return result, cpu


_probe: InProcess | None = None  # one per pool process


def _init(model_path: str, threads: int, spinning: bool) -> None:
    global _probe
    _probe = InProcess(Path(model_path), threads, spinning)


def _run(batch: int, seconds: float) -> tuple[LoadResult, float]:
    assert _probe is not None
    return _probe.run(batch, seconds)


class Ceiling:
    """`workers` processes with `threads` intra-op threads each, running the model together."""

    def __init__(self, model_path: Path, workers: int, threads: int, spinning: bool) -> None:
        self.workers = workers
        # spawn, not fork: ORT's thread pools do not survive a fork.
        context = multiprocessing.get_context("spawn")
        self._pool = context.Pool(workers, _init, (str(model_path), threads, spinning))

    def run(self, batch: int, seconds: float) -> tuple[LoadResult, float]:
        """All workers at once; samples and CPU seconds add up, latencies are per batch run."""
        results = self._pool.starmap(_run, [(batch, seconds)] * self.workers, chunksize=1)
        parts = [r for r, _ in results]
        total = sum(p.requests for p in parts)
        elapsed = statistics.fmean(p.seconds for p in parts)
        merged = LoadResult.merge(parts)
        load = LoadResult(
            total, elapsed, merged.p50_ms, merged.p90_ms, merged.p99_ms, merged.max_ms, 0, 0
        )
        return load, sum(cpu for _, cpu in results)

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()

    def __enter__(self) -> Ceiling:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def sweep(
    model_path: Path,
    workers: int,
    threads: int,
    batches: tuple[int, ...] = (1, 16, 32, 64),
    seconds: float = 0.5,
) -> Sweep:
    """Samples/s at each batch size, spinning on and off; the better spinning setting wins.

    Two passes, ascending then descending, keeping each batch size's better one: a burst of
    background load then costs one pass of one size, not the choice of the best batch.
    """
    runs: dict[bool, dict[int, float]] = {}
    for spin in (True, False):
        with Ceiling(model_path, workers, threads, spin) as ceiling:
            rates = {b: ceiling.run(b, seconds)[0].rps for b in batches}
            for b in reversed(batches):
                rates[b] = max(rates[b], ceiling.run(b, seconds)[0].rps)
            runs[spin] = rates
    spinning = max(runs, key=lambda spin: max(runs[spin].values()))
    by_batch = runs[spinning]
    best = max(by_batch, key=by_batch.__getitem__)
    name = f"{model_path.parent.parent.name}/v{model_path.parent.name}"
    return Sweep(name, workers, threads, spinning, best, by_batch)
