"""The isolation table: the light model's and the health probe's latencies alone and with the
heavy model saturated, per server and layout, against issue 9's goals (on a 2-core machine):

- same pool: health p99 <= 10 ms and light p99 <= 5x its p99 alone;
- separate pools: light p99 <= 1.5x its p99 alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.bench.isolation import SAME, SEPARATE, Isolation, Load
from tests.bench.loadgen import LoadResult
from tests.bench.report import MIB

HEALTH_P99_MS = 10.0
SAME_P99_RATIO = 5.0
SEPARATE_P99_RATIO = 1.5


@dataclass(frozen=True)
class Verdict:
    text: str  # the goal, in words
    value: float | None
    limit: float

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value <= self.limit


def _p99(load: LoadResult | None) -> float | None:
    return None if load is None else load.p99_ms


def p99_ratio(result: Isolation) -> float | None:
    """The light model's p99 loaded over its p99 alone."""
    alone, loaded = _p99(result.merged("alone", "light")), _p99(result.merged("loaded", "light"))
    return loaded / alone if alone and loaded is not None else None


def verdicts(result: Isolation) -> list[Verdict]:
    if result.layout.name == SAME:
        return [
            Verdict(
                f"health p99 <= {HEALTH_P99_MS:g} ms",
                _p99(result.merged("loaded", "health")),
                HEALTH_P99_MS,
            ),
            Verdict(f"light p99 <= {SAME_P99_RATIO:g}x alone", p99_ratio(result), SAME_P99_RATIO),
        ]
    return [
        Verdict(
            f"light p99 <= {SEPARATE_P99_RATIO:g}x alone", p99_ratio(result), SEPARATE_P99_RATIO
        )
    ]


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _verdict_text(v: Verdict) -> str:
    if v.met is None:
        return f"{v.text}: not measured"
    return f"{v.text}: {'met' if v.met else '**MISSED**'}"


def _memory(result: Isolation) -> str:
    parts = []
    for pool, (rss, pss) in result.memory.items():
        where = pool.split(" pool ", 1)[1] if " pool " in pool else "all models"
        parts.append(f"{where}: {rss / MIB:.0f} / {pss / MIB:.0f}")
    return "; ".join(parts)


def _errors(result: Isolation) -> int:
    return sum(
        load.errors
        for state in ("alone", "loaded")
        for stream in ("light", "health", "heavy")
        if (load := result.merged(state, stream)) is not None
    )


def _x_default(result: Isolation, results: list[Isolation]) -> float | None:
    """This layout's light p99 loaded over the default server's in the same layout."""
    if result.layout.default:
        return None
    ref = next(
        (r for r in results if r.layout.default and r.layout.name == result.layout.name), None
    )
    mine, theirs = _p99(result.merged("loaded", "light")), None
    if ref is not None:
        theirs = _p99(ref.merged("loaded", "light"))
    return mine / theirs if mine is not None and theirs else None


def isolation_table(results: list[Isolation]) -> str:
    lines = [
        "| server | layout | light p50 ms alone / loaded | light p99 ms alone / loaded "
        "| light p99 loaded/alone | health p99 ms alone / loaded | light req/s alone / loaded "
        "| heavy req/s | errors | light p99 loaded x default | goals | RSS / PSS MiB per pool |",
        "|" + "---|" * 12,
    ]
    order = {SAME: 0, SEPARATE: 1}
    for result in sorted(results, key=lambda r: order[r.layout.name]):
        layout = result.layout
        la, ll = result.merged("alone", "light"), result.merged("loaded", "light")
        ha, hl = result.merged("alone", "health"), result.merged("loaded", "health")
        heavy = result.merged("loaded", "heavy")
        name = f"**{layout.server} (default)**" if layout.default else layout.server
        goals = "; ".join(_verdict_text(v) for v in verdicts(result))
        lines.append(
            f"| {name} | {layout.name} "
            f"| {_fmt(la and la.p50_ms, '.2f')} / {_fmt(ll and ll.p50_ms, '.2f')} "
            f"| {_fmt(_p99(la), '.2f')} / {_fmt(_p99(ll), '.2f')} "
            f"| {_fmt(p99_ratio(result), '.1f', 'x')} "
            f"| {_fmt(_p99(ha), '.2f')} / {_fmt(_p99(hl), '.2f')} "
            f"| {_fmt(la and la.rps, ',.0f')} / {_fmt(ll and ll.rps, ',.0f')} "
            f"| {_fmt(heavy and heavy.rps, ',.0f')} | {_errors(result)} "
            f"| {_fmt(_x_default(result, results), '.2f', 'x')} | {goals} | {_memory(result)} |"
        )
    return "\n".join(lines)


def isolation_method(load: Load, light: str, heavy: str, cpus: list[int]) -> str:
    """The paragraph under the table: what was loaded, how, and how to read it."""
    clients = (
        "Each wrk is pinned to the CPU of the pool it loads, so the heavy load's client (and\n"
        "  its loopback kernel work) costs the heavy pool's CPU, as if it came from elsewhere;\n"
        "  in the same pool wrk is not pinned."
        if load.pin_clients
        else "wrk is not pinned (--isolation-unpinned-clients)."
    )
    return f"""\
- Light: `{light}` at {load.light_clients} clients; health: `GET /v2/health/ready` at
  {load.health_clients} client on the light model's pool; both at once, {load.seconds} s per
  slice. Loaded: {load.heavy_clients} clients on `{heavy}`, started {load.lead:g} s before the
  probes and running until {load.lead:g} s after them. {load.rounds} round(s), alone and loaded
  alternating (ABBA), every server's layouts in turn within each round, after
  {load.warmup} s of loaded warmup per layout; p50 is the request-weighted mean of the rounds',
  p99 the median of the rounds' p99s (a single stall of this shared VM, tens of ms whether
  loaded or not, would otherwise decide a tail-latency ratio by itself).
- same pool: the server of the throughput section (every model, the default configuration for
  the sidecar's default; the other sidecar classes add `--worker-class`, the bench hosts run as
  many workers as the default). separate pools: two servers of the same kind, each on a
  repository holding only its model, `--workers 1 --intra-op-threads 1`, the light one pinned
  to CPU {cpus[0]} and the heavy one to CPU {cpus[1]} (`os.sched_setaffinity` before exec;
  workers and ONNX Runtime threads inherit it). {clients}
- light p99 loaded x default: this row's light p99 under load over the default sidecar's in the
  same layout, same run (below 1: better than the default). RSS / PSS: peak over the section of
  each pool's process tree; PSS splits shared pages between the processes mapping them."""
