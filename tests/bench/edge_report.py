"""Cells, ratios, verdicts and the EDGE_RESULTS.md page of the edge-hop benchmark.

A cell is one route (direct, bare nginx, edge, ...) at one client count, measured in several
rounds interleaved with the other routes of its group. Throughput and p50 are the median of
the rounds; a ratio or a p50 difference is taken round by round (both sides measured seconds
apart) and its median reported, so one noisy round on this shared machine moves nothing.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.bench.loadgen import LoadResult
from tests.bench.page import commit, machine

MIN_RATIO = 0.90  # edge req/s over bare nginx req/s
MAX_ADDED_P50_MS = 0.1  # edge p50 - bare nginx p50


@dataclass(frozen=True)
class Route:
    name: str
    url: str
    script: Path
    proxy: Callable[[], list[int]]  # PIDs of the nginx between wrk and the upstream
    upstream: Callable[[], list[int]]


@dataclass(frozen=True)
class Slice:
    """One round of one route; CPU in seconds over the round."""

    load: LoadResult
    proxy_user: float  # the nginx in the middle, user space (nginx, Lua)
    proxy_sys: float  # ... and in the kernel (sockets)
    upstream_cpu: float
    wrk_cpu: float

    @property
    def proxy_cpu(self) -> float:
        return self.proxy_user + self.proxy_sys

    @property
    def path_cpu(self) -> float:
        return self.proxy_cpu + self.upstream_cpu + self.wrk_cpu

    def per_request(self, seconds: float) -> float:
        """µs of CPU per request."""
        return seconds / self.load.requests * 1e6 if self.load.requests else 0.0


@dataclass(frozen=True)
class Cell:
    group: str  # "stub" | "sidecar" | "pieces"
    clients: int
    route: Route
    slices: list[Slice]

    @property
    def name(self) -> str:
        return self.route.name

    @property
    def rps(self) -> float:
        return statistics.median(s.load.rps for s in self.slices)

    @property
    def p50(self) -> float:
        return statistics.median(s.load.p50_ms for s in self.slices)

    @property
    def p99(self) -> float:
        return statistics.median(s.load.p99_ms for s in self.slices)

    @property
    def non2xx(self) -> int:
        return sum(s.load.non2xx for s in self.slices)

    @property
    def socket_errors(self) -> int:
        return sum(s.load.socket_errors for s in self.slices)

    @property
    def requests(self) -> int:
        return sum(s.load.requests for s in self.slices)

    def cpu_us(self, kind: str) -> float:
        """CPU µs per request, median of the rounds (a neighbour's burst inflates one round's
        CPU per request); kind: a Slice attribute ("proxy_user", "path_cpu", ...)."""
        return statistics.median(s.per_request(getattr(s, kind)) for s in self.slices)


def reference(cell: Cell, cells: list[Cell]) -> Cell | None:
    """What a cell is compared with: bare nginx with direct, everything else with bare nginx."""
    if cell.name == "direct":
        return None
    want = "direct" if cell.name == "bare nginx" else "bare nginx"
    return next(
        (c for c in cells if (c.group, c.clients, c.name) == (cell.group, cell.clients, want)),
        None,
    )


def ratio(cell: Cell, ref: Cell) -> float:
    return statistics.median(
        a.load.rps / b.load.rps for a, b in zip(cell.slices, ref.slices, strict=True)
    )


def added_p50(cell: Cell, ref: Cell) -> float:
    return statistics.median(
        a.load.p50_ms - b.load.p50_ms for a, b in zip(cell.slices, ref.slices, strict=True)
    )


def _errors(cell: Cell) -> str:
    parts = [str(cell.socket_errors)]
    if cell.non2xx:
        share = cell.non2xx / cell.requests if cell.requests else 0
        kind = "429" if "429" in cell.name else "non-2xx"
        parts.append(f"({cell.non2xx} {kind}, {share:.1%})")
    return " ".join(parts)


def results_table(cells: list[Cell]) -> str:
    lines = [
        "| upstream | clients | route | req/s | p50 ms | p99 ms | socket errors (non-2xx) "
        "| nginx CPU µs/req user + sys | upstream CPU µs/req | wrk CPU µs/req "
        "| path CPU µs/req | compared with | req/s ratio | added p50 ms |",
        "|" + "---|" * 14,
    ]
    for cell in cells:
        ref = reference(cell, cells)
        proxy = "-"
        if cell.name != "direct":
            proxy = f"{cell.cpu_us('proxy_user'):.1f} + {cell.cpu_us('proxy_sys'):.1f}"
        versus = "-" if ref is None else ref.name
        r = "-" if ref is None else f"{ratio(cell, ref):.1%}"
        d = "-" if ref is None else f"{added_p50(cell, ref):+.3f}"
        lines.append(
            f"| {cell.group} | {cell.clients} | {cell.name} | {cell.rps:,.0f} | {cell.p50:.3f} "
            f"| {cell.p99:.2f} | {_errors(cell)} | {proxy} | {cell.cpu_us('upstream_cpu'):.1f} "
            f"| {cell.cpu_us('wrk_cpu'):.1f} | {cell.cpu_us('path_cpu'):.1f} | {versus} | {r} "
            f"| {d} |"
        )
    return "\n".join(lines)


def breakdown_table(cells: list[Cell]) -> str:
    """The Lua pieces: each variant's nginx CPU per request against the full edge's."""
    full = next((c for c in cells if c.name == "edge"), None)
    lines = [
        "| configuration | req/s | p50 ms | nginx user µs/req | nginx sys µs/req "
        "| user vs full edge | req/s vs bare |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        ref = reference(cell, cells)
        delta = "-"
        if full is not None and cell is not full:
            delta = f"{cell.cpu_us('proxy_user') - full.cpu_us('proxy_user'):+.1f}"
        r = "-" if ref is None else f"{ratio(cell, ref):.1%}"
        lines.append(
            f"| {cell.name} | {cell.rps:,.0f} | {cell.p50:.3f} | {cell.cpu_us('proxy_user'):.1f} "
            f"| {cell.cpu_us('proxy_sys'):.1f} | {delta} | {r} |"
        )
    return "\n".join(lines)


def piece_costs(cells: list[Cell]) -> list[str]:
    """What each piece adds to nginx's user-space CPU per request: the two configurations'
    difference round by round (they ran seconds apart), median of the rounds, and the range
    of those differences, which says how much of it this machine's noise could be."""
    by = {c.name: c for c in cells}
    pairs = [
        ("access_by_lua (version choice, kill switch, breaker check)", "edge",
         "edge, no access_by_lua"),
        ("log_by_lua (breaker outcome, metrics)", "edge", "edge, no log_by_lua"),
        ("limit_req", "edge", "edge, no limit_req"),
        ("entering Lua at all (an empty access and log hook)",
         "edge wiring + empty access/log Lua, no limit_req", "edge wiring, no Lua, no limit_req"),
        ("the wiring (regex location, variable upstream, headers, error pages)",
         "edge wiring, no Lua, no limit_req", "bare nginx"),
        ("everything: full edge over bare nginx", "edge", "bare nginx"),
    ]  # fmt: skip
    lines = []
    for what, with_it, without in pairs:
        a, b = by.get(with_it), by.get(without)
        if a is None or b is None:
            continue
        diffs = [
            x.per_request(x.proxy_user) - y.per_request(y.proxy_user)
            for x, y in zip(a.slices, b.slices, strict=True)
        ]
        lines.append(
            f"- {what}: {statistics.median(diffs):+.1f} µs of nginx user CPU per request "
            f"(rounds from {min(diffs):+.1f} to {max(diffs):+.1f})"
        )
    return lines


def phase_lines(phases: dict[str, float]) -> str:
    if not phases:
        return ""
    p = phases
    return f"""
Measured inside nginx instead: a copy of the edge whose two hop hooks time themselves with
`os.clock()` (the worker's CPU time; the timer's own {p["split timer"]:.1f} µs a reading taken
out), {p["split requests"]:,.0f} requests that name no version (sticky header through the
split, as the stub rows) and then {p["pinned requests"]:,.0f} pinned to a version:

| requests | access hook Lua µs/req | log hook Lua µs/req |
|---|---|---|
| split by sticky header | {p["split access"]:.1f} | {p["split log"]:.1f} |
| pinned version in the URL | {p["pinned access"]:.1f} | {p["pinned log"]:.1f} |

This excludes what nginx does to enter Lua (a coroutine per access hook), which the
empty-hook variant above measures.
"""


def verdicts(cells: list[Cell]) -> list[str]:
    """One line per (upstream, clients): the issue's two targets for the full edge, and what
    the CPU and the client count say about a miss."""
    lines, met = [], [0, 0, 0]
    for cell in cells:
        if cell.name != "edge" or cell.group == "pieces":
            continue
        ref = reference(cell, cells)
        if ref is None:
            continue
        r, d = ratio(cell, ref), added_p50(cell, ref)
        ok_r, ok_d = r >= MIN_RATIO, d <= MAX_ADDED_P50_MS
        met = [met[0] + ok_r, met[1] + ok_d, met[2] + 1]
        cpu_edge, cpu_bare = cell.cpu_us("path_cpu"), ref.cpu_us("path_cpu")
        # Closed loop: N connections, each waits for its answer; mean latency = N / req/s.
        queue = cell.clients * 1e3 / cell.rps - cell.clients * 1e3 / ref.rps
        lines.append(
            f"- {cell.group} upstream, {cell.clients} clients: {r:.1%} of bare nginx req/s "
            f"({'met' if ok_r else '**MISSED**'}), p50 {d:+.3f} ms "
            f"({'met' if ok_d else '**MISSED**'}).\n  Path CPU per request {cpu_bare:.0f} -> "
            f"{cpu_edge:.0f} µs (CPU-bound ratio {cpu_bare / cpu_edge:.0%}); "
            f"clients / req/s difference {queue:+.3f} ms"
        )
    summary = (
        f"- Throughput target met in {met[0]} of {met[2]} cells; p50 target in {met[1]} of "
        f"{met[2]}."
    )
    return [summary, *lines]


def render_page(
    *,
    cells: list[Cell],
    breakdown: list[Cell],
    phases: dict[str, float],
    started: str,
    seconds: float,
    command: str,
    load_before: str,
    load_after: str,
    args: argparse.Namespace,
    root: Path,
) -> tuple[str, list[str]]:
    verdict_lines = verdicts(cells)
    pieces = ""
    if breakdown:
        pieces = f"""
## What the edge's pieces cost (stub upstream, {breakdown[0].clients} clients)

Copies of the edge's rendered nginx.conf, each with pieces of the infer location taken out
(no access phase: `set $weir_version` to the stub's version instead), as separate nginx
masters loaded in the same interleaved rounds. "vs full edge": nginx worker CPU per request
minus the full edge's; the negative of it is what the piece costs. User-space CPU is where
nginx and Lua run; system CPU (the sockets) is the same work on every route and noisier.

{breakdown_table(breakdown)}

{chr(10).join(piece_costs(breakdown))}
{phase_lines(phases)}"""
    page = f"""# Edge hop benchmark

- Date: {started} UTC, took {seconds:.0f} s; commit `{commit(root)}`
- Machine: {machine()}
- Load average (1, 5, 15 min) before the run: {load_before}; after: {load_after}
- Command: `{command}`: {args.rounds} interleaved rounds of {args.duration} s per cell after
  {args.warmup} s of warmup, `wrk -t1`, clients {args.clients}

## Verdicts (issue 3: >= {MIN_RATIO:.0%} of bare nginx req/s, <= +{MAX_ADDED_P50_MS} ms p50)

{chr(10).join(verdict_lines)}

## Results

{results_table(cells)}
{pieces}
## Method

- Routes: **direct** to the upstream; **bare nginx**: the same nginx binary, same worker count
  (`auto`), a plain `location / {{ proxy_pass }}` with keep-alive to the upstream (32 idle
  connections per worker, as the edge), the edge's buffers, no Lua, no limit_req, no access
  log; **edge**: Weir's edge (`scripts/stack/edge.py`) rendering a release with every feature on:
  version choice (stub requests name no version: sticky header through `split_clients` and the
  weights; sidecar requests pin v2), breaker, metrics, fallback, limit_req at 1,000,000 r/s
  (never rejects). **edge 429**: a model limited to 1 r/m, so all but the first request get
  429 with `Retry-After`. **edge fallback**: a model killed through the admin API, answering
  its placeholder body (200, `X-Weir-Fallback: killed`).
- Upstreams: **stub**: nginx, one worker, `return 200` of the sidecar's own answer for the
  request (the same JSON); **sidecar**: `weir sidecar --models models --device cpu` (its
  default workers) on digits v2, JSON body of one sample. Every route's answer is checked
  (numbers against in-process ORT, 429, fallback mark) before anything is timed.
- Each round loads every route of a group for {args.duration} s (`wrk -t1 -cN`, keep-alive,
  one request replayed), every other round in reverse order. req/s, p50 and p99: median of
  the rounds. "req/s ratio" and "added p50": the route against the route it is compared with,
  round by round, median of the rounds. Errors: wrk's socket errors over all rounds (non-2xx
  answers in brackets: only the 429 route should have any).
- CPU µs/req: utime (user) and stime (sys) deltas from /proc of every process of the nginx in
  the middle (master and workers), of the upstream's process tree, and of wrk (getrusage of
  children), divided by the requests answered; path CPU is their sum. Everything shares
  {machine().split(", ")[1]}: a hop's CPU is taken from the upstream and wrk, so once the
  cores are busy req/s ~ cores / path CPU, and bare/edge ~ edge path CPU / bare path CPU (the
  "CPU-bound ratio" of the verdicts). That is why bare nginx costs throughput even against a
  fast upstream, and why the edge's extra CPU per request is what decides its ratio.
- p50 under load: with N closed-loop connections the mean latency is N / req/s (Little's
  law), so at 16 and 64 clients on saturated cores a p50 difference is mostly the throughput
  difference ("clients / req/s difference" in the verdicts); the 1-client rows are where p50
  is one request's own time through the hop.
"""
    return page, verdict_lines
