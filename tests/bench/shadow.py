"""Shadow traffic's cost to clients: digits through the edge with no shadow against the same
with a 10% shadow (`shadow: {version: "2", sample: 10%}`), rounds interleaved, in one run.

    .venv/bin/python -m tests.bench.shadow            # about a minute, writes SHADOW_RESULTS.md
    .venv/bin/python -m tests.bench.shadow --quick    # 16 clients, 3 rounds, no file written

One sidecar (the default worker class and count) serves digits 1 and 2; two edges in front
of it, identical but for the release's `shadow:`, take turns round by round (wrk, one JSON
row per request, the edge routing every request to version 1): the baseline is measured in
the same run, under the same load from everything else on the machine. Compared: the median
of each side's round p99s, and the median over rounds of the ratio of the two sides' p99 in
the same round (back to back: a burst of other work on the machine hits both); one round's
p99 on a shared machine is noisy, and every round's is in the table. The shadow's own
figures come from the sidecar's `weir_shadow_*` counters over the shadowed rounds: rows
compared, their top-1 agreement (one payload replayed: digits 1, a logistic regression, and
2, an MLP, agree on it), copies shed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from scripts.runtime import RuntimeDir
from scripts.stack.edge import Edge
from tests.bench.loadgen import LoadResult, run_wrk, write_script
from tests.bench.payloads import make_payload
from tests.bench.procs import free_port, running
from tests.bench.prom import scrape
from tests.bench.servers import weir_target

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "SHADOW_RESULTS.md"
MODEL, LIVE, SHADOW = "digits", "1", "2"
SAMPLE = "10%"
SIDES = ("no shadow", f"{SAMPLE} shadow")


def release(listen: int, admin: int, sidecar: str, shadow: bool) -> str:
    model: dict[str, object] = {
        "versions": {LIVE: {"upstreams": [sidecar]}, SHADOW: {"upstreams": [sidecar]}},
        "release": {"split": {LIVE: 100, SHADOW: 0}},
        "breaker": {"failures": 5, "window": "10s", "open_for": "5s", "probes": 3},
        "fallback": {"status": 503, "body": {"error": "resting"}},
        "timeout": "10s",
    }
    if shadow:
        model["shadow"] = {"version": SHADOW, "sample": SAMPLE}
    doc = {
        "revision": 1,
        "edge": {
            "listen": f"127.0.0.1:{listen}",
            "admin_listen": f"127.0.0.1:{admin}",
            "admin_auth": "open",  # loopback only, in a temporary runtime directory
        },
        "sidecars": {"devices": "cpu"},
        "models": {MODEL: model},
    }
    return json.dumps(doc, indent=2) + "\n"  # JSON is YAML


def shadow_counts(metrics_url: str) -> dict[str, float]:
    """The sidecar's shadow counters for (digits, 1, 2), summed over their other labels."""
    totals = {"compared": 0.0, "agreed": 0.0, "shed": 0.0, "failed": 0.0}
    names = {
        "weir_shadow_comparisons_total": "compared",
        "weir_shadow_agreements_total": "agreed",
        "weir_shadow_shed_total": "shed",
        "weir_shadow_failures_total": "failed",
    }
    for family in text_string_to_metric_families(scrape(metrics_url)):
        for sample in family.samples:
            labels = sample.labels
            pair = (labels.get("model"), labels.get("version"), labels.get("shadow"))
            if sample.name in names and pair == (MODEL, LIVE, SHADOW):
                totals[names[sample.name]] += sample.value
    return totals


@dataclass
class Cell:
    clients: int
    rounds: dict[str, list[LoadResult]]
    shadow: dict[str, float]

    def p99s(self, side: str) -> list[float]:
        return [r.p99_ms for r in self.rounds[side]]

    def median_p99(self, side: str) -> float:
        return statistics.median(self.p99s(side))

    @property
    def ratio(self) -> float:
        base = self.median_p99(SIDES[0])
        return self.median_p99(SIDES[1]) / base if base else float("nan")

    @property
    def paired(self) -> float:
        """The median over rounds of shadow p99 / no-shadow p99 of the same round: the two
        sides of a round ran back to back, under the same load from everything else."""
        pairs = zip(self.p99s(SIDES[1]), self.p99s(SIDES[0]), strict=True)
        return statistics.median(a / b for a, b in pairs if b)


def table(cells: list[Cell]) -> str:
    lines = [
        "| clients | side | req/s | p50 ms | p99 ms (median of rounds) | p99 ms (worst round) "
        "| errors | p99 vs no shadow (medians) | p99 vs no shadow (median of rounds' ratios) "
        "| rows compared | agreement | shed | each round's p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        for side in SIDES:
            merged = LoadResult.merge(c.rounds[side])
            shadowed = side == SIDES[1]
            compared = c.shadow["compared"]
            agreement = f"{c.shadow['agreed'] / compared:.1%}" if compared else "-"
            lines.append(
                f"| {c.clients} | {side} | {merged.rps:,.0f} | {merged.p50_ms:.2f} | "
                f"{c.median_p99(side):.2f} | {merged.p99_ms:.2f} | {merged.errors} | "
                + (f"x{c.ratio:.3f} | x{c.paired:.3f}" if shadowed else "- | -")
                + " | "
                + (
                    f"{compared:,.0f} | {agreement} | {c.shadow['shed']:,.0f}"
                    if shadowed
                    else "- | - | -"
                )
                + " | "
                + " ".join(f"{v:.1f}" for v in c.p99s(side))
                + " |"
            )
    return "\n".join(lines)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.shadow", description=__doc__)
    p.add_argument("--quick", action="store_true", help="16 clients, 3 rounds, no file")
    p.add_argument("--duration", type=int, default=2, help="seconds per round (whole seconds)")
    p.add_argument("--rounds", type=int, default=7, help="rounds per side and cell")
    p.add_argument("--clients", default="1,16,64", help="connections, comma-separated")
    p.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    p.add_argument("--models", type=Path, default=ROOT / "models")
    args = p.parse_args(argv)
    if args.quick:
        args.clients, args.rounds, args.no_write = "16", 3, True
    args.client_counts = [int(c) for c in args.clients.split(",") if c.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if shutil.which("wrk") is None:
        print("shadow bench: wrk not found: apt-get install wrk (make deps does)", file=sys.stderr)
        return 1
    for version in (LIVE, SHADOW):
        if not (args.models / MODEL / version / "model.onnx").is_file():
            print(
                f"shadow bench: {args.models}/{MODEL}/{version} is missing: make models",
                file=sys.stderr,
            )
            return 1
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.monotonic()
    load_before = "{:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())
    tmp = Path(tempfile.mkdtemp(prefix="weir-shadow-bench-"))
    cells: list[Cell] = []
    edges: list[Edge] = []
    try:
        logs = tmp / "logs"
        logs.mkdir()
        target = weir_target(args.models, logs, None, None, "weir sidecar")
        sidecar = target.server
        with running([sidecar]):
            urls = {}
            for side in SIDES:
                listen, admin = free_port(), free_port()
                slug = "shadow" if side == SIDES[1] else "plain"
                path = tmp / f"release-{slug}.yaml"
                path.write_text(
                    release(listen, admin, f"127.0.0.1:{sidecar.port}", side == SIDES[1])
                )
                edges.append(Edge(RuntimeDir(tmp / f"runtime-{slug}")).start(path))
                urls[side] = f"http://127.0.0.1:{listen}/v2/models/{MODEL}/infer"
            metrics_url = f"{sidecar.base_url}/metrics"
            payload = make_payload(args.models, MODEL, LIVE, "json")
            script = write_script(tmp, "digits", "POST", payload.body, payload.headers)
            for side in SIDES:  # warm-up, not measured
                run_wrk(urls[side], script, max(args.client_counts), 1)
            for clients in args.client_counts:
                rounds: dict[str, list[LoadResult]] = {side: [] for side in SIDES}
                before = shadow_counts(metrics_url)
                for i in range(args.rounds):
                    # Alternate which side goes first: neither always follows the other.
                    order = SIDES if i % 2 == 0 else SIDES[::-1]
                    for side in order:
                        rounds[side].append(run_wrk(urls[side], script, clients, args.duration))
                time.sleep(0.5)  # the last shadow copies finish
                after = shadow_counts(metrics_url)
                shadow = {k: after[k] - before[k] for k in after}
                cells.append(Cell(clients, rounds, shadow))
                print("\n".join(table(cells[-1:]).splitlines()[-2:]), flush=True)
    finally:
        for edge in edges:
            edge.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    text = table(cells)
    print(text)
    if not args.no_write:
        RESULTS.write_text(page(args, cells, started, time.monotonic() - t0, load_before))
        print(f"wrote {RESULTS}")
    return 0


def page(
    args: argparse.Namespace,
    cells: list[Cell],
    started: datetime.datetime,
    seconds: float,
    load_before: str,
) -> str:
    load_after = "{:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())
    worst = max(cells, key=lambda c: c.paired)
    return "\n".join(
        [
            "# Shadow traffic: clients' latency with a 10% shadow against none",
            "",
            f"- Date: {started:%Y-%m-%d %H:%M} UTC, took {seconds:.0f} s; "
            f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
            f"- Load average (1, 5, 15 min) before the run: {load_before}; after: {load_after}",
            f"- Command: `.venv/bin/python -m tests.bench.shadow`: {args.rounds} rounds of "
            f"{args.duration} s per side and cell, interleaved, after a 1 s warm-up per side, "
            f"`wrk -t1`, clients {args.clients}",
            f"- Largest p99 ratio (shadow / none, median of the rounds' ratios): "
            f"x{worst.paired:.3f} at {worst.clients} clients",
            "",
            (__doc__ or "").split("\n\n", 2)[2].strip(),
            "",
            table(cells),
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
