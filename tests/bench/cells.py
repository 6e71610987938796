"""Measuring cells: one target under wrk for a slice of time, rounds interleaved, rows out.

A group is one request (model, body) at one client count on every target. Its slices run round
by round (A, B, C, A, B, C) so background load on this shared machine falls on all targets
alike, and every sidecar slice sits between two ceiling slices.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from tests.bench import prom
from tests.bench.ceiling import Ceiling, Sweep
from tests.bench.loadgen import LoadResult, run_wrk
from tests.bench.payloads import Payload
from tests.bench.procs import RssSampler
from tests.bench.report import MIB, Row
from tests.bench.servers import BATCH_METRIC, COMPUTE_METRIC, Target

FLOOR_PATH = "/v2/health/ready"


@dataclass(frozen=True)
class Cadence:
    """How long each piece runs."""

    duration: int  # seconds per slice (wrk takes whole seconds)
    rounds: int  # slices per cell, interleaved with the other targets'
    warmup: int  # seconds of unmeasured load before a cell's first slice
    wrk_threads: int
    ceiling_seconds: float  # per ceiling slice
    pause: float = 0.2  # between slices: lets the last server's threads go idle


@dataclass(frozen=True)
class Slice:
    """One round of one cell: wrk's result, the sidecar's batch statistics, peak RSS."""

    load: LoadResult
    batches: prom.BatchStats | None
    rss: int
    cpu: float  # CPU seconds the server's process tree used while measured
    pss: int = 0


def _batch_stats(target: Target, labels: dict[str, str] | None) -> prom.BatchStats | None:
    if target.metrics_path is None or labels is None:
        return None
    url = target.server.base_url + target.metrics_path
    return prom.batch_stats(url, BATCH_METRIC, COMPUTE_METRIC, labels)


def measure_slice(
    target: Target,
    path: str,
    script: Path,
    clients: int,
    seconds: int,
    cadence: Cadence,
    warmup: int = 0,
    labels: dict[str, str] | None = None,
) -> Slice:
    """`clients` connections replaying `script` against `path` for `seconds`.

    `labels` select the sidecar's batch histograms (model and version) read before and after.
    """
    url = target.base_url + path
    if warmup > 0:
        run_wrk(url, script, clients, warmup, cadence.wrk_threads)
    before = _batch_stats(target, labels)
    cpu = target.server.cpu()
    with RssSampler(target.server) as rss:
        load = run_wrk(url, script, clients, seconds, cadence.wrk_threads)
    cpu = target.server.cpu() - cpu
    after = _batch_stats(target, labels)
    time.sleep(cadence.pause)
    return Slice(load, after - before if before and after else None, rss.peak, cpu, rss.peak_pss)


def to_row(target: Target, group: tuple[str, str, int], slices: list[Slice]) -> Row:
    """A target's slices of one group merged into its row."""
    parts = [s.batches for s in slices if s.batches is not None]
    batches = sum(parts[1:], parts[0]) if parts else None
    load = LoadResult.merge([s.load for s in slices])
    rss = max(s.rss for s in slices)
    mean_batch = batches.mean_batch if batches else None
    row = Row(*group, target.name, target.role, load, mean_batch, rss, target.default)
    row = replace(row, cpu_seconds=sum(s.cpu for s in slices), pss_bytes=max(s.pss for s in slices))
    if batches is None:
        return row
    # busy: each worker's share of wall time in the model (on average); rate: all workers'
    # samples per second of model time together. So req/s ~= busy x rate, and rate ~ ceiling.
    busy = batches.compute.total / load.seconds / target.workers if load.seconds else None
    rate = batches.compute_rate
    return replace(row, busy=busy, compute_rate=rate * target.workers if rate else None)


def progress(label: str, target: str, load: LoadResult, one: Slice | None = None) -> None:
    mean = one.batches.mean_batch if one and one.batches else None
    batch = "-" if mean is None else f"{mean:.1f}"
    rss = "-" if one is None else f"{one.rss / MIB:.0f}"
    print(
        f"{label} {target[:34]:34} {load.rps:9,.0f} req/s  p50 {load.p50_ms:7.2f} ms  "
        f"p99 {load.p99_ms:7.2f} ms  err {load.errors:<4} batch {batch:>5}  rss {rss:>4} MiB",
        file=sys.stderr,
        flush=True,
    )


def measure_group(
    payload: Payload,
    clients: int,
    targets: list[Target],
    script: Path,
    ceiling: tuple[Sweep, Ceiling],
    cadence: Cadence,
) -> list[Row]:
    """The ceiling and every target at one client count, interleaved round by round.

    Every sidecar slice sits between two ceiling slices (flask, bare, C, weir1, C, weir2, C), and
    its "x ceiling" divides by the mean of those two: both sides see the same background load.
    Without sidecar targets the ceiling opens each round instead.
    """
    best, probe = ceiling
    model = f"{payload.model}/v{payload.version}"
    group = (model, payload.encoding, clients)
    labels = {"model": payload.model, "version": payload.version}
    parts: list[LoadResult] = []
    cpu: list[float] = []
    slices: dict[str, list[Slice]] = {t.name: [] for t in targets}
    brackets: dict[str, list[float]] = {t.name: [] for t in targets}
    bracketed = any(t.role == "weir" for t in targets)

    def ceiling_slice(label: str) -> LoadResult:
        load, used = probe.run(best.best_batch, cadence.ceiling_seconds)
        parts.append(load)
        cpu.append(used)
        progress(label, "ceiling", load)
        return load

    for i in range(cadence.rounds):
        label = f"{model} {payload.encoding:6} c{clients:<3} r{i + 1}/{cadence.rounds}"
        last = None if bracketed else ceiling_slice(label)
        for target in targets:
            before = (last or ceiling_slice(label)) if target.role == "weir" else None
            warmup = cadence.warmup if i == 0 else 0
            one = measure_slice(
                target, payload.path, script, clients, cadence.duration, cadence, warmup, labels
            )
            slices[target.name].append(one)
            progress(label, target.name, one.load, one)
            last = ceiling_slice(label) if before else None
            if before and last:
                brackets[target.name].append((before.rps + last.rps) / 2)
    name = f"ceiling: ORT {best.workers}x{best.threads} threads, batch {best.best_batch}"
    merged = LoadResult.merge(parts)
    rows = [Row(*group, name, "ceiling", merged, best.best_batch, None, cpu_seconds=sum(cpu))]
    for target in targets:
        row = to_row(target, group, slices[target.name])
        if brackets[target.name]:
            row = replace(row, ceiling_rps=statistics.fmean(brackets[target.name]))
        rows.append(row)
    return rows


def measure_floor(targets: list[Target], script: Path, clients: int, cadence: Cadence) -> list[Row]:
    """GET /v2/health/ready, one round: the most requests/s each server answers here at all.

    No model, no body: what is left is HTTP and the Python server, the floor under every
    infer request on this machine (and the reason a ratio can be out of reach).
    """
    group = ("health", "GET", clients)
    rows = []
    for target in targets:
        one = measure_slice(
            target, FLOOR_PATH, script, clients, cadence.duration, cadence, cadence.warmup
        )
        progress(f"health GET    c{clients:<3}     ", target.name, one.load, one)
        rows.append(to_row(target, group, [one]))
    return rows
