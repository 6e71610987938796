"""Images through the edge: `handwriting` uploads (multipart, field `image`) at 1, 16 and 64
clients, with the share of the sidecar's request time spent decoding and pre-processing.

    .venv/bin/python -m tests.bench.images            # about a minute, writes IMAGES_RESULTS.md
    .venv/bin/python -m tests.bench.images --quick    # 16 clients, one round, no file written

A real edge (every feature on: rate limit far above the load, breaker, fallback) in front of
the default sidecar (its own worker count and class) on the sample models; wrk replays one
upload per cell. Two files: the sample 96x96 PNG (models/handwriting/seven.png, as `make up`
prints it) and a 1024x768 JPEG photo of the same digit. The decode share comes from the
sidecar's own histograms over each cell: `weir_preprocess_duration_seconds` (decoding and
pre-processing, on its thread pool) over `weir_request_duration_seconds` (body read to answer
ready, in the sidecar); their means per request are in the table too. The request time holds
the wait for a pre-processing thread and for the CPU too: with many clients on few cores the
decode share falls because waiting grows, not because decoding got cheaper. Each cell is
counted once the sidecar holds no request (`weir_requests_in_flight` 0) before and after it.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import urllib3
from PIL import Image

from scripts.runtime import RuntimeDir
from scripts.stack.edge import Edge
from tests.bench.loadgen import LoadResult, run_wrk, write_script
from tests.bench.procs import free_port, running
from tests.bench.prom import HistogramTotals, histogram_totals, scrape
from tests.bench.servers import weir_target

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "IMAGES_RESULTS.md"
MODEL = "handwriting"
SEVEN = ROOT / "models" / MODEL / "seven.png"
LABELS = {"model": MODEL}


@dataclass(frozen=True)
class Upload:
    name: str
    body: bytes
    content_type: str


def uploads() -> list[Upload]:
    seven = SEVEN.read_bytes()
    photo = io.BytesIO()
    with Image.open(SEVEN) as image:
        image.convert("RGB").resize((1024, 768)).save(photo, "JPEG", quality=85)
    found = []
    for name, data, mime in (
        ("96x96 PNG", seven, "image/png"),
        ("1024x768 JPEG", photo.getvalue(), "image/jpeg"),
    ):
        body, content_type = urllib3.encode_multipart_formdata([("image", ("digit", data, mime))])
        found.append(Upload(f"{name} ({len(data) / 1024:.0f} KiB)", body, content_type))
    return found


def release(listen: int, admin: int, sidecar: str) -> str:
    model = {
        "versions": {"1": {"upstreams": [sidecar]}},
        "rate_limit": {"rate": "1000000r/s", "burst": 10000, "key": "remote_addr"},
        "breaker": {"failures": 5, "window": "10s", "open_for": "5s", "probes": 3},
        "fallback": {"status": 503, "body": {"error": "resting"}},
        "timeout": "10s",
    }
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


@dataclass(frozen=True)
class Cell:
    upload: str
    clients: int
    load: LoadResult
    request: HistogramTotals  # the sidecar's request seconds over the cell
    preprocess: HistogramTotals  # its decoding and pre-processing seconds

    @property
    def decode_share(self) -> float | None:
        return self.preprocess.total / self.request.total if self.request.total > 0 else None


def _totals(metrics_url: str) -> tuple[HistogramTotals, HistogramTotals]:
    text = scrape(metrics_url)
    return (
        histogram_totals(text, "weir_request_duration_seconds", LABELS),
        histogram_totals(text, "weir_preprocess_duration_seconds", LABELS),
    )


def settle(metrics_url: str, timeout_s: float = 30.0) -> None:
    """Until the sidecar holds no handwriting request: what wrk left in flight when it stopped
    must not be counted in the next cell."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = scrape(metrics_url)
        held = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("weir_requests_in_flight{") and f'model="{MODEL}"' in line
        )
        if held == 0:
            return
        time.sleep(0.1)


def measure(
    url: str, metrics_url: str, script: Path, clients: int, duration: int, rounds: int
) -> tuple[LoadResult, HistogramTotals, HistogramTotals]:
    parts = []
    settle(metrics_url)
    request_before, pre_before = _totals(metrics_url)
    for _ in range(rounds):
        parts.append(run_wrk(url, script, clients, duration))
    settle(metrics_url)
    request_after, pre_after = _totals(metrics_url)
    return LoadResult.merge(parts), request_after - request_before, pre_after - pre_before


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.2f}"


def table(cells: list[Cell]) -> str:
    lines = [
        "| upload | clients | images/s | p50 ms | p99 ms | errors | sidecar request ms "
        "(mean) | decode + preprocess ms (mean) | decode share of request time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        share = "-" if c.decode_share is None else f"{c.decode_share:.1%}"
        lines.append(
            f"| {c.upload} | {c.clients} | {c.load.rps:,.0f} | {c.load.p50_ms:.2f} | "
            f"{c.load.p99_ms:.2f} | {c.load.errors} | {_ms(c.request.mean)} | "
            f"{_ms(c.preprocess.mean)} | {share} |"
        )
    return "\n".join(lines)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.images", description=__doc__)
    p.add_argument("--quick", action="store_true", help="16 clients, one round, no file")
    p.add_argument("--duration", type=int, default=2, help="seconds per round (whole seconds)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per cell")
    p.add_argument("--clients", default="1,16,64", help="connections, comma-separated")
    p.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    p.add_argument("--models", type=Path, default=ROOT / "models")
    args = p.parse_args(argv)
    if args.quick:
        args.clients, args.rounds, args.no_write = "16", 1, True
    args.client_counts = [int(c) for c in args.clients.split(",") if c.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if shutil.which("wrk") is None:
        print("images bench: wrk not found: apt-get install wrk (make deps does)", file=sys.stderr)
        return 1
    if not (args.models / MODEL / "1" / "model.onnx").is_file():
        print(f"images bench: {args.models}/{MODEL}/1 is missing: make models", file=sys.stderr)
        return 1
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.monotonic()
    load_before = "{:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())
    tmp = Path(tempfile.mkdtemp(prefix="weir-images-bench-"))
    cells: list[Cell] = []
    edge: Edge | None = None
    try:
        logs = tmp / "logs"
        logs.mkdir()
        target = weir_target(args.models, logs, None, None, "weir sidecar")
        sidecar = target.server
        with running([sidecar]):
            listen, admin = free_port(), free_port()
            path = tmp / "release.yaml"
            path.write_text(release(listen, admin, f"127.0.0.1:{sidecar.port}"))
            edge = Edge(RuntimeDir(tmp / "runtime")).start(path)
            url = f"http://127.0.0.1:{listen}/v2/models/{MODEL}/infer"
            metrics_url = f"{sidecar.base_url}/metrics"
            for upload in uploads():
                headers = {"Content-Type": upload.content_type}
                script = write_script(tmp, f"upload-{len(cells)}", "POST", upload.body, headers)
                run_wrk(url, script, max(args.client_counts), 1)  # warm-up, not measured
                for clients in args.client_counts:
                    load, request, pre = measure(
                        url, metrics_url, script, clients, args.duration, args.rounds
                    )
                    cells.append(Cell(upload.name, clients, load, request, pre))
                    print(table(cells[-1:]).splitlines()[-1], flush=True)
    finally:
        if edge is not None:
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
    command = ".venv/bin/python -m tests.bench.images"
    return "\n".join(
        [
            "# Image uploads through the edge (handwriting)",
            "",
            f"- Date: {started:%Y-%m-%d %H:%M} UTC, took {seconds:.0f} s; "
            f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
            f"- Load average (1, 5, 15 min) before the run: {load_before}; after: {load_after}",
            f"- Command: `{command}`: {args.rounds} rounds of {args.duration} s per cell after a "
            f"1 s warm-up per upload, `wrk -t1`, clients {args.clients}",
            "",
            (__doc__ or "").split("\n\n", 2)[2].strip(),
            "",
            table(cells),
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
