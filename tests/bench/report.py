"""Rows, ratios, targets and the Markdown the benchmark prints and commits as RESULTS.md.

A group is one (model, body, clients) cell measured on every server, plus the in-process ceiling
re-measured next to it; ratios are only taken within a group.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.bench.ceiling import Sweep
from tests.bench.loadgen import LoadResult

MIB = 1024 * 1024


@dataclass(frozen=True)
class Row:
    model: str  # "digits/v2"
    encoding: str  # "json" | "binary"
    clients: int
    target: str  # row label
    role: str  # "flask" | "bare" | "weir" | "ceiling" (later "edge")
    load: LoadResult  # for the ceiling: samples as requests, latency per batch run
    mean_batch: float | None
    rss_bytes: int | None
    default: bool = False  # the sidecar's default configuration
    busy: float | None = None  # sidecar: share of each worker's wall time in the model
    compute_rate: float | None = None  # sidecar: samples/s of model time, all workers together
    ceiling_rps: float | None = None  # the ceiling measured around this row's slices, if it was
    cpu_seconds: float | None = None  # CPU the server (or the ceiling) used while measured
    pss_bytes: int | None = None  # peak PSS of the server's process tree (shared pages split)

    @property
    def cores(self) -> float | None:
        """CPU seconds per wall second: how many cores it kept busy."""
        return (
            self.cpu_seconds / self.load.seconds if self.cpu_seconds and self.load.seconds else None
        )

    @property
    def per_cpu_second(self) -> float | None:
        """Requests (samples, for the ceiling) per CPU second: efficiency, whatever the load."""
        return self.load.requests / self.cpu_seconds if self.cpu_seconds else None

    @property
    def cpu_ms_per_request(self) -> float | None:
        """CPU milliseconds of the server's processes per request answered."""
        return (
            1e3 * self.cpu_seconds / self.load.requests
            if self.cpu_seconds and self.load.requests
            else None
        )

    @property
    def group(self) -> tuple[str, str, int]:
        return (self.model, self.encoding, self.clients)


@dataclass(frozen=True)
class Goal:
    """One line of the issue's "Speed" targets, evaluated on the default sidecar's row."""

    text: str
    group: tuple[str, str, int]
    measure: str  # "x_flask" | "x_bare" | "x_ceiling" | "mean_batch"
    minimum: float


DIGITS_64 = ("digits/v2", "json", 64)
CNN_BINARY_64 = ("cnn/v1", "binary", 64)
GOALS = (
    Goal("digits v2 JSON, 64 clients: >= 25x naive Flask", DIGITS_64, "x_flask", 25),
    Goal("digits v2 JSON, 64 clients: >= 1.0x bare meinheld", DIGITS_64, "x_bare", 1),
    Goal("cnn binary, 64 clients: >= 85% of ceiling", CNN_BINARY_64, "x_ceiling", 0.85),
    # "well above 1": at 64 clients and ~2 ms a sample, batches of 4+ are what batching gives.
    Goal("cnn binary, 64 clients: mean batch well above 1 (>= 4)", CNN_BINARY_64, "mean_batch", 4),
)


def _find(rows: list[Row], role: str, model: str, clients: int, encoding: str) -> Row | None:
    return next((r for r in rows if r.role == role and r.group == (model, encoding, clients)), None)


def ratios(row: Row, rows: list[Row]) -> dict[str, float | None]:
    """Requests/s over each baseline of the row's group.

    Flask only speaks JSON (the lab server), so binary rows are compared with its JSON row: the
    speed-up a client gets by moving from the lab server to Weir with binary tensors.
    """
    model, encoding, clients = row.group
    refs = {
        "x_flask": _find(rows, "flask", model, clients, encoding)
        or _find(rows, "flask", model, clients, "json"),
        "x_bare": _find(rows, "bare", model, clients, encoding),
        "x_ceiling": _find(rows, "ceiling", model, clients, encoding),
    }
    # Baselines are compared with weaker baselines only: bare with flask.
    shown = {"flask": (), "bare": ("x_flask",), "ceiling": ()}.get(row.role, tuple(refs))
    out = {
        key: row.load.rps / ref.load.rps if ref and ref.load.rps and key in shown else None
        for key, ref in refs.items()
    }
    if row.ceiling_rps and "x_ceiling" in shown:
        out["x_ceiling"] = row.load.rps / row.ceiling_rps
    return out


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _pct(value: float | None) -> str:
    return _fmt(value, ".1%" if value is not None and value < 0.1 else ".0%")


def x_default(row: Row, rows: list[Row]) -> float | None:
    """Requests/s over the default sidecar's in the same group (None for the default itself)."""
    if row.default or row.role == "ceiling":
        return None
    ref = next((r for r in rows if r.default and r.group == row.group), None)
    return row.load.rps / ref.load.rps if ref and ref.load.rps else None


def results_table(rows: list[Row]) -> str:
    head = (
        "| model | body | clients | server | req/s | x default | p50 ms | p99 ms | errors "
        "| CPU ms/req | mean batch | RSS MiB | PSS MiB | x flask | x bare | x ceiling |"
    )
    lines = [head, "|" + "---|" * 16]
    for row in rows:
        r = ratios(row, rows)
        load = row.load
        errors = f"{load.errors}" + (f" ({load.non2xx} non-2xx)" if load.non2xx else "")
        name = f"**{row.target}**" if row.default else row.target
        rss = None if row.rss_bytes is None else row.rss_bytes / MIB
        pss = None if not row.pss_bytes else row.pss_bytes / MIB
        cpu_ms = None if row.role == "ceiling" else row.cpu_ms_per_request
        lines.append(
            f"| {row.model} | {row.encoding} | {row.clients} | {name} | {load.rps:,.0f} "
            f"| {_fmt(x_default(row, rows), '.2f', 'x')} "
            f"| {load.p50_ms:.2f} | {load.p99_ms:.2f} | {errors} | {_fmt(cpu_ms, '.3f')} "
            f"| {_fmt(row.mean_batch, '.1f')} | {_fmt(rss, '.0f')} | {_fmt(pss, '.0f')} "
            f"| {_fmt(r['x_flask'], '.1f', 'x')} | {_fmt(r['x_bare'], '.2f', 'x')} "
            f"| {_pct(r['x_ceiling'])} |"
        )
    return "\n".join(lines)


def sweep_table(sweeps: list[Sweep]) -> str:
    lines = [
        "| model | processes x intra-op threads | spinning | best batch | samples/s by batch |",
        "|---|---|---|---|---|",
    ]
    for s in sweeps:
        by = ", ".join(f"{b}: {v:,.0f}" for b, v in s.by_batch.items())
        spin = "on" if s.spinning else "off"
        lines.append(f"| {s.model} | {s.workers} x {s.threads} | {spin} | {s.best_batch} | {by} |")
    return "\n".join(lines)


def goals_table(rows: list[Row]) -> tuple[str, bool]:
    """The issue's targets against the default sidecar's rows; also whether all of them hold."""
    lines = [
        "| target | measured (wall clock) | verdict | per CPU second (see below) |",
        "|---|---|---|---|",
    ]
    all_met = True
    for goal in GOALS:
        row = next((r for r in rows if r.default and r.group == goal.group), None)
        value = per_cpu = None
        if row is not None and goal.measure == "mean_batch":
            value = row.mean_batch
        elif row is not None:
            value, per_cpu = ratios(row, rows)[goal.measure], cpu_ratios(row, rows)[goal.measure]
        met = value is not None and value >= goal.minimum
        all_met = all_met and met
        pct = goal.measure == "x_ceiling"
        shown = _pct(value) if pct else _fmt(value, ".2f")
        cpu = _pct(per_cpu) if pct else _fmt(per_cpu, ".2f")
        verdict = "not measured" if value is None else ("met" if met else "**MISSED**")
        lines.append(f"| {goal.text} | {shown} | {verdict} | {cpu} |")
    return "\n".join(lines), all_met


def worker_class_table(rows: list[Row]) -> str:
    """Sidecar configurations, cell by cell, with where the model's time went.

    busy: share of each worker's wall time spent running the model (mean over workers); model
    samples/s: samples per second of model time, all workers together. req/s ~= busy x model
    samples/s, so a gap to the ceiling is either the model not running often enough (busy) or
    running slower than in-process (model samples/s against the ceiling's).
    """
    lines = [
        "| cell | sidecar | req/s | p99 ms | mean batch | busy | model samples/s "
        "| ceiling samples/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in (r for r in rows if r.role == "weir"):
        model, encoding, clients = row.group
        ceiling = _find(rows, "ceiling", model, clients, encoding)
        lines.append(
            f"| {model} {encoding} c{clients} | {row.target} | {row.load.rps:,.0f} "
            f"| {row.load.p99_ms:.1f} | {_fmt(row.mean_batch, '.1f')} | {_pct(row.busy)} "
            f"| {_fmt(row.compute_rate, ',.0f')} "
            f"| {_fmt(row.ceiling_rps or (ceiling.load.rps if ceiling else None), ',.0f')} |"
        )
    return "\n".join(lines)


def cpu_ratios(row: Row, rows: list[Row]) -> dict[str, float | None]:
    """Requests per CPU second over each baseline's, in the row's group (see `cpu_table`)."""
    model, encoding, clients = row.group
    mine = row.per_cpu_second
    refs = {
        "x_flask": _find(rows, "flask", model, clients, encoding)
        or _find(rows, "flask", model, clients, "json"),
        "x_bare": _find(rows, "bare", model, clients, encoding),
        "x_ceiling": _find(rows, "ceiling", model, clients, encoding),
    }
    shown = {"flask": ("x_bare",), "bare": (), "ceiling": ()}.get(row.role, tuple(refs))
    return {
        key: mine / ref.per_cpu_second
        if mine and ref and ref.per_cpu_second and key in shown
        else None
        for key, ref in refs.items()
    }


def cpu_table(rows: list[Row]) -> str:
    """Requests per CPU second of the server's own processes: how much work each request costs,
    whatever else runs on the machine. The wall-clock ratios move with background load; these
    barely do. (The client, wrk, is not counted: it is the same for every server.)"""
    lines = [
        "| model | body | clients | server | cores busy | req per CPU-s | x flask | x bare "
        "| x ceiling |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        model, encoding, clients = row.group
        r = cpu_ratios(row, rows)
        lines.append(
            f"| {model} | {encoding} | {clients} | {row.target} | {_fmt(row.cores, '.2f')} "
            f"| {_fmt(row.per_cpu_second, ',.0f')} | {_fmt(r['x_flask'], '.1f', 'x')} "
            f"| {_fmt(r['x_bare'], '.2f', 'x')} | {_pct(r['x_ceiling'])} |"
        )
    return "\n".join(lines)
