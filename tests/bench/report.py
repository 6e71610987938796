"""Rows, ratios, targets and the Markdown the benchmark prints and commits as RESULTS.md."""

from __future__ import annotations

from dataclasses import dataclass

from tests.bench.ceiling import Ceiling
from tests.bench.loadgen import LoadResult

MIB = 1024 * 1024


@dataclass(frozen=True)
class Row:
    model: str  # "digits/v2"
    encoding: str  # "json" | "binary"
    clients: int
    target: str  # row label
    role: str  # "flask" | "bare" | "weir" | ...
    load: LoadResult
    mean_batch: float | None
    rss_bytes: int
    default: bool = False  # the sidecar's default configuration


@dataclass(frozen=True)
class Goal:
    """One line of the issue's "Speed" targets, evaluated on the default sidecar's row."""

    text: str
    model: str
    encoding: str
    clients: int
    measure: str  # "x_flask" | "x_bare" | "x_ceiling" | "mean_batch"
    minimum: float


GOALS = (
    Goal("digits v2 JSON, 64 clients: >= 25x naive Flask", "digits/v2", "json", 64, "x_flask", 25),
    Goal("digits v2 JSON, 64 clients: >= 1.0x bare meinheld", "digits/v2", "json", 64, "x_bare", 1),
    Goal("cnn binary, 64 clients: >= 85% of ceiling", "cnn/v1", "binary", 64, "x_ceiling", 0.85),
    # "well above 1": at 64 clients and ~2 ms a sample, batches of 4+ are what batching gives.
    Goal("cnn binary, 64 clients: mean batch well above 1 (>= 4)", "cnn/v1", "binary", 64,
         "mean_batch", 4),
)  # fmt: skip


def _find(rows: list[Row], role: str, model: str, clients: int, encoding: str | None) -> Row | None:
    for row in rows:
        same_encoding = encoding is None or row.encoding == encoding
        if row.role == role and row.model == model and row.clients == clients and same_encoding:
            return row
    return None


def ratios(row: Row, rows: list[Row], ceilings: dict[str, Ceiling]) -> dict[str, float | None]:
    """Requests/s over the baselines at the same model and clients.

    Flask only speaks JSON (the lab server), so binary rows are compared with its JSON row: that
    is the speed-up a client gets by moving from the lab server to Weir with binary tensors.
    """
    flask = _find(rows, "flask", row.model, row.clients, row.encoding) or _find(
        rows, "flask", row.model, row.clients, None
    )
    bare = _find(rows, "bare", row.model, row.clients, row.encoding)
    ceiling = ceilings.get(row.model)
    out: dict[str, float | None] = {"x_flask": None, "x_bare": None, "x_ceiling": None}
    if flask and flask is not row and flask.load.rps:
        out["x_flask"] = row.load.rps / flask.load.rps
    if bare and row.role not in ("flask", "bare") and bare.load.rps:
        out["x_bare"] = row.load.rps / bare.load.rps
    if ceiling:
        out["x_ceiling"] = row.load.rps / ceiling.samples_per_s
    return out


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _pct(value: float | None) -> str:
    return _fmt(value, ".1%" if value is not None and value < 0.1 else ".0%")


def results_table(rows: list[Row], ceilings: dict[str, Ceiling]) -> str:
    head = (
        "| model | body | clients | server | req/s | p50 ms | p99 ms | errors | mean batch "
        "| RSS MiB | x flask | x bare | x ceiling |"
    )
    lines = [head, "|" + "---|" * 13]
    for row in rows:
        r = ratios(row, rows, ceilings)
        errors = f"{row.load.errors}" + (f" ({row.load.non2xx} non-2xx)" if row.load.non2xx else "")
        name = f"**{row.target}**" if row.default else row.target
        lines.append(
            f"| {row.model} | {row.encoding} | {row.clients} | {name} | {row.load.rps:,.0f} "
            f"| {row.load.p50_ms:.2f} | {row.load.p99_ms:.2f} | {errors} "
            f"| {_fmt(row.mean_batch, '.1f')} | {row.rss_bytes / MIB:.0f} "
            f"| {_fmt(r['x_flask'], '.1f', 'x')} | {_fmt(r['x_bare'], '.2f', 'x')} "
            f"| {_pct(r['x_ceiling'])} |"
        )
    return "\n".join(lines)


def ceilings_table(ceilings: dict[str, Ceiling]) -> str:
    lines = [
        "| model | ORT threads | best batch | samples/s | samples/s by batch |",
        "|---|---|---|---|---|",
    ]
    for c in ceilings.values():
        by = ", ".join(f"{b}: {v:,.0f}" for b, v in c.by_batch.items())
        lines.append(
            f"| {c.model} | {c.threads} | {c.best_batch} | {c.samples_per_s:,.0f} | {by} |"
        )
    return "\n".join(lines)


def goals_table(rows: list[Row], ceilings: dict[str, Ceiling]) -> tuple[str, bool]:
    """The issue's targets against the default sidecar's rows; also whether all of them hold."""
    lines = ["| target | measured | verdict |", "|---|---|---|"]
    all_met = True
    for goal in GOALS:
        row = next(
            (
                r
                for r in rows
                if r.default
                and (r.model, r.encoding, r.clients) == (goal.model, goal.encoding, goal.clients)
            ),
            None,
        )
        value = None
        if row is not None:
            value = (
                row.mean_batch
                if goal.measure == "mean_batch"
                else ratios(row, rows, ceilings)[goal.measure]
            )
        met = value is not None and value >= goal.minimum
        all_met = all_met and met
        shown = _pct(value) if goal.measure == "x_ceiling" else _fmt(value, ".2f")
        verdict = "not measured" if value is None else ("met" if met else "**MISSED**")
        lines.append(f"| {goal.text} | {shown} | {verdict} |")
    return "\n".join(lines), all_met


def worker_class_table(rows: list[Row]) -> str:
    """Sidecar configurations side by side: req/s and p99 per cell."""
    weir = [r for r in rows if r.role == "weir"]
    cells = list(dict.fromkeys((r.model, r.encoding, r.clients) for r in weir))
    names = list(dict.fromkeys(r.target for r in weir))
    lines = ["| cell | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for cell in cells:
        values = []
        for name in names:
            row = next(
                (r for r in weir if r.target == name and (r.model, r.encoding, r.clients) == cell),
                None,
            )
            values.append(
                "-" if row is None else f"{row.load.rps:,.0f} req/s, p99 {row.load.p99_ms:.1f} ms"
            )
        lines.append(f"| {cell[0]} {cell[1]} c{cell[2]} | " + " | ".join(values) + " |")
    return "\n".join(lines)
