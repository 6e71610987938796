"""Isolation: does a light model, and the health probe, keep its latency while a heavy model is
saturated? (issue 9: inference off the I/O path, models that do not fight.)

For each server, two layouts:

- same pool: one sidecar serving every model (the default configuration, the very server the
  throughput section measures);
- separate pools: two sidecars, one per model, each on a repository holding only its model,
  each pinned to its own CPU (`os.sched_setaffinity` before exec, inherited by its workers and
  ONNX Runtime's threads), `--workers 1 --intra-op-threads 1`.

Each layout is measured alone (the light model at 4 clients and `GET /v2/health/ready` at
1 client, at once) and loaded (the same two while 32 clients keep the heavy model busy,
from half a second before them to half a second after). Alone and loaded alternate round by
round, in ABBA order, and every server's layouts take their turn within each round, so
background load on this shared machine falls on all of them alike.
"""

from __future__ import annotations

import math
import shutil
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from tests.bench.loadgen import LoadResult, payload_script, run_wrk, write_script
from tests.bench.payloads import Payload, check
from tests.bench.procs import RssSampler
from tests.bench.report import MIB
from tests.bench.servers import HOSTS, Target, host_target, weir_target

LIGHT = ("digits", "2", "json")
HEAVY = ("cnn", "1", "binary")
HEALTH_PATH = "/v2/health/ready"
SAME, SEPARATE = "same pool", "separate pools"


@dataclass(frozen=True)
class Load:
    """How many clients each stream gets, and for how long."""

    seconds: int = 2  # per slice (wrk takes whole seconds)
    rounds: int = 3  # alone/loaded pairs per layout (odd: the median round decides p99)
    warmup: int = 1  # seconds of loaded traffic before the first round, unmeasured
    light_clients: int = 4
    health_clients: int = 1
    heavy_clients: int = 32
    lead: float = 0.5  # the heavy load starts this long before the probes and ends after
    pin_clients: bool = True  # separate pools: each wrk on the CPU of the pool it loads


@dataclass(frozen=True)
class Layout:
    server: str  # the server's name, e.g. "weir meinheld"
    default: bool  # the sidecar's default configuration
    name: str  # SAME | SEPARATE
    light: Target  # serves the light model and answers the health probe
    heavy: Target  # serves the heavy model (the same target in the same pool)

    @property
    def pools(self) -> list[Target]:
        return [self.light] if self.light is self.heavy else [self.light, self.heavy]


@dataclass(frozen=True)
class Probe:
    """One slice: the light model's and the health probe's latencies, the heavy load's."""

    light: LoadResult
    health: LoadResult
    heavy: LoadResult | None
    memory: dict[str, tuple[int, int]]  # pool -> peak RSS, peak PSS (bytes)


@dataclass
class Isolation:
    layout: Layout
    alone: list[Probe] = field(default_factory=list)
    loaded: list[Probe] = field(default_factory=list)

    def merged(self, state: str, stream: str) -> LoadResult | None:
        """The rounds of one stream as one result: counts add up, p50 is request-weighted, and
        p99 is the median of the rounds' p99s: one stall of this shared VM (tens of ms, loaded
        or not) would otherwise decide a ratio of tail latencies by itself."""
        parts = [getattr(p, stream) for p in getattr(self, state)]
        parts = [p for p in parts if p is not None]
        if not parts:
            return None
        p99 = statistics.median(p.p99_ms for p in parts)
        return replace(LoadResult.merge(parts), p99_ms=p99)

    @property
    def memory(self) -> dict[str, tuple[int, int]]:
        """Peak RSS and PSS of each pool over every slice."""
        out: dict[str, tuple[int, int]] = {}
        for probe in self.alone + self.loaded:
            for pool, (rss, pss) in probe.memory.items():
                old = out.get(pool, (0, 0))
                out[pool] = (max(old[0], rss), max(old[1], pss))
        return out


def pool_repository(models: Path, workdir: Path, model: str) -> Path:
    """A repository holding only `model` (every version of it), copied out of `models`."""
    repo = workdir / f"pool-{model}"
    if not repo.exists():
        shutil.copytree(models / model, repo / model)
    return repo


def _pool_target(kind: str, repo: Path, logs: Path, label: str, cpu: int) -> Target:
    cpus = frozenset({cpu})
    if kind in HOSTS:
        return host_target(kind, repo, logs, 1, label, intra_op_threads=1, cpus=cpus)
    return weir_target(repo, logs, 1, kind, label, intra_op_threads=1, cpus=cpus)


def separate_pools(
    kind: str, server: str, default: bool, models: Path, workdir: Path, cpus: list[int]
) -> Layout:
    """Two one-worker pools of `kind` (a sidecar worker class or a bench host), one per model,
    the light one on the first CPU of `cpus`, the heavy one on the second."""
    light_repo = pool_repository(models, workdir, LIGHT[0])
    heavy_repo = pool_repository(models, workdir, HEAVY[0])
    light = _pool_target(
        kind, light_repo, workdir, f"{server} pool {LIGHT[0]} cpu{cpus[0]}", cpus[0]
    )
    heavy = _pool_target(
        kind, heavy_repo, workdir, f"{server} pool {HEAVY[0]} cpu{cpus[1]}", cpus[1]
    )
    return Layout(server, default, SEPARATE, light, heavy)


def _progress(layout: Layout, state: str, probe: Probe) -> None:
    heavy = "" if probe.heavy is None else f"  heavy {probe.heavy.rps:7,.0f} req/s"
    mem = " ".join(f"{rss / MIB:.0f}/{pss / MIB:.0f}" for rss, pss in probe.memory.values())
    print(
        f"isolation {layout.server[:22]:22} {layout.name:14} {state:6} "
        f"light p50 {probe.light.p50_ms:7.2f} p99 {probe.light.p99_ms:7.2f} ms "
        f"({probe.light.rps:6,.0f} req/s, err {probe.light.errors})  "
        f"health p99 {probe.health.p99_ms:7.2f} ms{heavy}  rss/pss MiB {mem}",
        file=sys.stderr,
        flush=True,
    )


class Scripts:
    """The three wrk scripts: light model, health probe, heavy model."""

    def __init__(self, light: Payload, heavy: Payload, workdir: Path) -> None:
        self.light, self.heavy = light, heavy
        self.light_script = payload_script(light, workdir)
        self.heavy_script = payload_script(heavy, workdir)
        self.health_script = write_script(workdir, "isolation_health")


def probe(layout: Layout, scripts: Scripts, load: Load, seconds: int, loaded: bool) -> Probe:
    """The light model and the health probe for `seconds`, at once; with the heavy model
    saturated around them when `loaded`."""
    light_url = layout.light.base_url + scripts.light.path
    health_url = layout.light.base_url + HEALTH_PATH
    heavy_url = layout.heavy.base_url + scripts.heavy.path
    pinned = load.pin_clients and layout.name == SEPARATE
    light_cpus = layout.light.server.cpus if pinned else None
    heavy_cpus = layout.heavy.server.cpus if pinned else None
    samplers = {t.name: RssSampler(t.server) for t in layout.pools}
    for sampler in samplers.values():
        sampler.__enter__()
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            heavy = None
            if loaded:
                around = seconds + math.ceil(2 * load.lead)  # wrk takes whole seconds
                heavy = pool.submit(
                    run_wrk,
                    heavy_url,
                    scripts.heavy_script,
                    load.heavy_clients,
                    around,
                    cpus=heavy_cpus,
                )
                time.sleep(load.lead)
            light = pool.submit(
                run_wrk,
                light_url,
                scripts.light_script,
                load.light_clients,
                seconds,
                cpus=light_cpus,
            )
            health = pool.submit(
                run_wrk,
                health_url,
                scripts.health_script,
                load.health_clients,
                seconds,
                cpus=light_cpus,
            )
            results = (light.result(), health.result(), heavy.result() if heavy else None)
    finally:
        for sampler in samplers.values():
            sampler.__exit__(None, None, None)
    time.sleep(0.2)  # the last load's threads go idle before the next slice
    memory = {name: (s.peak, s.peak_pss) for name, s in samplers.items()}
    return Probe(*results, memory)


def measure(layouts: list[Layout], scripts: Scripts, load: Load) -> list[Isolation]:
    """Every layout, alone and loaded, `load.rounds` times, interleaved (see the module doc)."""
    for layout in layouts:
        check(layout.light.base_url, scripts.light)
        check(layout.heavy.base_url, scripts.heavy)
    results = [Isolation(layout) for layout in layouts]
    if load.warmup > 0:
        for layout in layouts:
            probe(layout, scripts, load, load.warmup, loaded=True)
    for i in range(load.rounds):
        order = (False, True) if i % 2 == 0 else (True, False)
        for result in results:
            for loaded in order:
                one = probe(result.layout, scripts, load, load.seconds, loaded)
                (result.loaded if loaded else result.alone).append(one)
                _progress(result.layout, "loaded" if loaded else "alone", one)
    return results
