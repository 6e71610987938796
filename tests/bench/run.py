"""`make bench`: the sidecar against its baselines, in one run, on this machine.

    .venv/bin/python -m tests.bench.run                 # everything, ~5 minutes
    .venv/bin/python -m tests.bench.run --quick         # 2 s cells, 64 clients only
    .venv/bin/python -m tests.bench.run --only digits --clients 64 --no-write

Every server is started once, up front, and the cells interleave them (for each model, body
and client count: flask, bare, then each sidecar configuration), so slow drift from other work
on this shared machine hits every server alike. Only idle servers wait meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime as ort

from tests.bench import ceiling, prom
from tests.bench.loadgen import run_wrk, write_script
from tests.bench.payloads import Payload, check, make_payload
from tests.bench.procs import RssSampler, running
from tests.bench.report import (
    MIB,
    Row,
    ceilings_table,
    goals_table,
    results_table,
    worker_class_table,
)
from tests.bench.servers import (
    BATCH_METRIC,
    Target,
    bare_target,
    flask_target,
    weir_target,
)

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
PAYLOADS = (("digits", "2", "json"), ("cnn", "1", "binary"), ("cnn", "1", "json"))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench.run", description=__doc__.splitlines()[0]
    )
    p.add_argument("--duration", type=int, default=6, help="seconds measured per cell")
    p.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured load first")
    p.add_argument("--clients", default="1,16,64", help="concurrent connections, comma-separated")
    p.add_argument("--quick", action="store_true", help="2 s cells at 64 clients: a smoke run")
    p.add_argument(
        "--only",
        default="",
        help="comma-separated words: keep the payloads (digits, cnn/v1/binary) and servers "
        "(flask, bare, weir, gthread) whose name holds one of them",
    )
    p.add_argument("--models", type=Path, default=ROOT / "models")
    p.add_argument("--workers", type=int, default=1, help="sidecar and bare server workers")
    p.add_argument(
        "--threads", type=int, default=0, help="ORT intra-op threads for bare and ceiling; "
        "0: CPUs / workers, as the sidecar",
    )  # fmt: skip
    p.add_argument(
        "--bare-spinning",
        action="store_true",
        help="bare server with ORT intra-op spinning on (the sidecar turns it off)",
    )
    p.add_argument("--worker-classes", default="meinheld,gthread", help="sidecar worker classes")
    p.add_argument("--default-class", default="meinheld", help="the sidecar's default class")
    p.add_argument("--no-sidecar", action="store_true", help="baselines only")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (see RESULTS.md)")
    p.add_argument("--output", type=Path, default=RESULTS, help="where the Markdown goes")
    p.add_argument("--no-write", action="store_true", help="print the table, write nothing")
    args = p.parse_args(argv)
    if args.threads == 0:
        args.threads = max(1, len(os.sched_getaffinity(0)) // args.workers)
    if args.quick:
        args.duration, args.warmup, args.clients = 2, 1, "64"
    return args


def _select(names: list[str], only: list[str]) -> list[str]:
    """`names` holding one of the words of `only` that concern them (all when none do)."""
    words = [w for w in only if any(w in n for n in names)]
    return [n for n in names if not words or any(w in n for w in words)]


def _targets(args: argparse.Namespace, logs: Path, only: list[str]) -> list[Target]:
    targets = [
        flask_target(args.models, logs),
        bare_target(args.models, logs, args.workers, args.threads, args.bare_spinning),
    ]
    has_sidecar = (ROOT / "sidecar" / "launcher.py").exists()
    if not args.no_sidecar and not has_sidecar:
        print("bench: sidecar/launcher.py not found, measuring baselines only", file=sys.stderr)
    if has_sidecar and not args.no_sidecar:
        for cls in args.worker_classes.split(","):
            default = cls == args.default_class
            label = f"weir {cls} w{args.workers}" + (" (default)" if default else "")
            targets.append(weir_target(args.models, logs, args.workers, cls, label))
    names = _select([t.name for t in targets], only)
    return [t for t in targets if t.name in names]


def _batch_totals(target: Target, payload: Payload) -> prom.HistogramTotals | None:
    if target.metrics_path is None:
        return None
    text = prom.scrape(target.server.base_url + target.metrics_path)
    labels = {"model": payload.model, "version": payload.version}
    return prom.histogram_totals(text, BATCH_METRIC, labels)


def measure_cell(
    target: Target, payload: Payload, script: Path, clients: int, args: argparse.Namespace
) -> Row:
    url = target.base_url + payload.path
    if args.warmup > 0:
        run_wrk(url, script, clients, args.warmup, args.wrk_threads)
    before = _batch_totals(target, payload)
    with RssSampler(target.server) as rss:
        load = run_wrk(url, script, clients, args.duration, args.wrk_threads)
    after = _batch_totals(target, payload)
    mean_batch = (after - before).mean if before and after else None
    model = f"{payload.model}/v{payload.version}"
    default = target.name.endswith("(default)")
    return Row(
        model,
        payload.encoding,
        clients,
        target.name,
        target.role,
        load,
        mean_batch,
        rss.peak,
        default,
    )


def _progress(i: int, n: int, row: Row) -> None:
    batch = "-" if row.mean_batch is None else f"{row.mean_batch:.1f}"
    print(
        f"[{i:2}/{n}] {row.model} {row.encoding:6} c{row.clients:<3} {row.target:28} "
        f"{row.load.rps:9,.0f} req/s  p50 {row.load.p50_ms:7.2f} ms  "
        f"p99 {row.load.p99_ms:7.2f} ms  err {row.load.errors:<5} batch {batch:>5}  "
        f"rss {row.rss_bytes / MIB:5.0f} MiB",
        file=sys.stderr,
        flush=True,
    )


def _machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    versions = f"Python {platform.python_version()}, onnxruntime {ort.__version__}"
    return f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, {versions}"


def _commit() -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    return "unknown"


def _markdown(
    args: argparse.Namespace,
    rows: list[Row],
    ceilings: dict[str, ceiling.Ceiling],
    started: str,
    load_before: str,
    seconds: float,
) -> str:
    goals, _ = goals_table(rows, ceilings)
    command = (
        "make bench"
        if sys.argv[1:] == []
        else "python -m tests.bench.run " + shlex.join(sys.argv[1:])
    )
    return f"""# Weir benchmark results

- Date: {started} (UTC), took {seconds:.0f} s; commit `{_commit()}`
- Machine: {_machine()}; load average before the run: {load_before}
- Command: `{command}`: {args.duration:g} s per cell after {args.warmup:g} s of warmup,
  `wrk -t{args.wrk_threads}`

## Targets (issue 2, "Speed"), on the sidecar's default configuration

{goals}

## Results

{results_table(rows, ceilings)}

## Ceiling: in-process ONNX Runtime, same model, best batch size

{ceilings_table(ceilings)}

## Sidecar worker classes

{worker_class_table(rows)}

## Method

- Load: `wrk -t{args.wrk_threads} -cN`, closed loop, keep-alive, one sample per request, the same
  request replayed (`tests/bench/loadgen.py`). wrk and the server share this machine's cores:
  one wrk thread (an epoll loop in C) keeps up with every server here while taking the least CPU
  from it; a second thread would take a core from the server it measures. Errors are wrk's socket
  errors (connect, read, write, timeout at 10 s) plus non-2xx answers. Each server's answer is
  checked against in-process ORT before it is measured.
- Servers are started once and the cells interleave them, so drift from other work on this
  shared machine hits them alike. Compare ratios within a run, not absolute numbers across runs.
- flask: `tests/bench/naive_flask.py`, `app.run()` (threaded dev server), ORT per request with
  default session options, JSON only; binary rows' "x flask" compares with its JSON row.
  bare: `tests/bench/bare_meinheld.py`, gunicorn + meinheld worker + Falcon, ORT per request,
  no validation, batching or metrics, {args.workers} worker(s), {args.threads} ORT intra-op
  thread(s), spinning {"on" if args.bare_spinning else "off"} (the sidecar's session options).
  weir: `weir sidecar --device cpu --workers {args.workers} --worker-class CLASS`.
- Mean batch: delta of the sidecar's `{BATCH_METRIC}` histogram (`_sum` / `_count`) over the
  measured seconds. RSS: peak over the cell of VmRSS summed over the server's process tree.
- Ceiling (`tests/bench/ceiling.py`): `session.run` in a loop on a ready batch, {args.threads}
  intra-op thread(s); "x ceiling" = requests/s (one sample each) / ceiling samples/s.
"""


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # a killed run still stops its servers
    only = [w for w in args.only.split(",") if w]
    clients = [int(c) for c in args.clients.split(",")]
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    t0 = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="weir-bench-"))
    keys = [f"{m}/v{v}/{e}" for m, v, e in PAYLOADS]
    chosen = _select(keys, only)
    payloads = [
        make_payload(args.models, *spec)
        for spec, key in zip(PAYLOADS, keys, strict=True)
        if key in chosen
    ]
    targets = _targets(args, workdir, only)
    rows: list[Row] = []
    ceilings: dict[str, ceiling.Ceiling] = {}
    cells = [
        (p, c, t) for p in payloads for c in clients for t in targets if p.encoding in t.encodings
    ]
    print(f"bench: {len(cells)} cells, logs and bodies in {workdir}", file=sys.stderr)
    try:
        # Targets may share a server (an edge hop and the sidecar behind it): start each once.
        with running(list({id(t.server): t.server for t in targets}.values())):
            for target in targets:
                for payload in payloads:
                    if payload.encoding in target.encodings:
                        check(target.base_url, payload)
            scripts = {p.key: write_script(p, workdir) for p in payloads}
            for i, (payload, n, target) in enumerate(cells, 1):
                model = f"{payload.model}/v{payload.version}"
                if model not in ceilings:
                    path = args.models / payload.model / payload.version / "model.onnx"
                    ceilings[model] = ceiling.measure(path, args.threads)
                    c = ceilings[model]
                    print(
                        f"ceiling {model}: {c.samples_per_s:,.0f} samples/s, batch {c.best_batch}",
                        file=sys.stderr,
                    )
                row = measure_cell(target, payload, scripts[payload.key], n, args)
                rows.append(row)
                _progress(i, len(cells), row)
                time.sleep(0.3)  # let the last server's threads go idle
    except KeyboardInterrupt:
        print(f"bench: interrupted, servers stopped; logs in {workdir}", file=sys.stderr)
        return 130
    except Exception:
        print(f"bench: failed, servers stopped; logs in {workdir}", file=sys.stderr)
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    text = _markdown(args, rows, ceilings, started, load_before, time.monotonic() - t0)
    print(text)
    if not args.no_write:
        args.output.write_text(text)
        print(f"bench: wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
