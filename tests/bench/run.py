"""`make bench`: the sidecar against its baselines, in one run, on this machine.

    .venv/bin/python -m tests.bench.run                 # everything, about 5 minutes
    .venv/bin/python -m tests.bench.run --quick         # 2 s cells, 64 clients only
    .venv/bin/python -m tests.bench.run --only digits,bare --clients 64 --no-write

Every server is started once, up front. Then, for each model, body and client count (a group),
the in-process ceiling is re-measured and every server is loaded in turn, so drift from other
work on this shared machine hits every server of a group alike.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from tests.bench import prom
from tests.bench.ceiling import InProcess, Sweep, sweep
from tests.bench.loadgen import run_wrk, write_script
from tests.bench.page import RunInfo, render
from tests.bench.payloads import Payload, check, make_payload
from tests.bench.procs import RssSampler, running
from tests.bench.report import MIB, Row
from tests.bench.servers import BATCH_METRIC, Target, bare_target, flask_target, weir_target

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
PAYLOADS = (("digits", "2", "json"), ("cnn", "1", "binary"), ("cnn", "1", "json"))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench.run", description=__doc__.split("\n")[0]
    )
    p.add_argument("--duration", type=int, default=6, help="seconds measured per cell")
    p.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured load first")
    p.add_argument("--ceiling-seconds", type=float, default=2.0, help="ceiling per group")
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
        "--threads",
        type=int,
        default=0,
        help="ORT intra-op threads for bare and ceiling; 0: CPUs / workers, as the sidecar",
    )
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
    p.add_argument("--no-write", action="store_true", help="print the page, write nothing")
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
            targets.append(weir_target(args.models, logs, args.workers, cls, label, default))
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
    return Row(
        model, payload.encoding, clients, target.name, target.role, load, mean_batch, rss.peak,
        target.default,
    )  # fmt: skip


def _ceiling_row(probe: InProcess, best: Sweep, payload: Payload, clients: int, secs: float) -> Row:
    load = probe.run(best.best_batch, secs)
    name = f"ceiling: ORT in-process, batch {best.best_batch}"
    model = f"{payload.model}/v{payload.version}"
    return Row(model, payload.encoding, clients, name, "ceiling", load, best.best_batch, None)


def _progress(i: int, n: int, row: Row) -> None:
    batch = "-" if row.mean_batch is None else f"{row.mean_batch:.1f}"
    rss = "-" if row.rss_bytes is None else f"{row.rss_bytes / MIB:.0f}"
    print(
        f"[{i:2}/{n}] {row.model} {row.encoding:6} c{row.clients:<3} {row.target[:34]:34} "
        f"{row.load.rps:9,.0f} req/s  p50 {row.load.p50_ms:7.2f} ms  "
        f"p99 {row.load.p99_ms:7.2f} ms  err {row.load.errors:<5} batch {batch:>5}  "
        f"rss {rss:>5} MiB",
        file=sys.stderr,
        flush=True,
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _measure(
    args: argparse.Namespace, payloads: list[Payload], targets: list[Target], workdir: Path
) -> tuple[list[Row], list[Sweep]]:
    clients = [int(c) for c in args.clients.split(",")]
    cells = [
        (p, c, t) for p in payloads for c in clients for t in targets if p.encoding in t.encodings
    ]
    print(f"bench: {len(cells)} cells, logs and bodies in {workdir}", file=sys.stderr)
    rows: list[Row] = []
    sweeps: dict[str, tuple[Sweep, InProcess]] = {}
    # Targets may share a server (an edge hop and the sidecar behind it): start each once.
    with running(list({id(t.server): t.server for t in targets}.values())):
        for target in targets:
            for payload in payloads:
                if payload.encoding in target.encodings:
                    check(target.base_url, payload)
        scripts = {p.key: write_script(p, workdir) for p in payloads}
        done = 0
        for payload in payloads:
            model_path = args.models / payload.model / payload.version / "model.onnx"
            if payload.model not in sweeps:
                best = sweep(model_path, args.threads)
                sweeps[payload.model] = (best, InProcess(model_path, args.threads, best.spinning))
            best, probe = sweeps[payload.model]
            for n in clients:
                rows.append(_ceiling_row(probe, best, payload, n, args.ceiling_seconds))
                for target in targets:
                    if payload.encoding in target.encodings:
                        done += 1
                        rows.append(measure_cell(target, payload, scripts[payload.key], n, args))
                        _progress(done, len(cells), rows[-1])
                        time.sleep(0.3)  # let the last server's threads go idle
    return rows, [s for s, _ in sweeps.values()]


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # a killed run still stops its servers
    only = [w for w in args.only.split(",") if w]
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    t0 = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="weir-bench-"))
    keys = [f"{m}/v{v}/{e}" for m, v, e in PAYLOADS]
    chosen = _select(keys, only)
    payloads = [
        make_payload(args.models, *spec)
        for spec, k in zip(PAYLOADS, keys, strict=True)
        if k in chosen
    ]
    try:
        rows, sweeps = _measure(args, payloads, _targets(args, workdir, only), workdir)
    except KeyboardInterrupt:
        print(f"bench: interrupted, servers stopped; logs in {workdir}", file=sys.stderr)
        return 130
    except Exception:
        print(f"bench: failed, servers stopped; logs in {workdir}", file=sys.stderr)
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    argv_text = shlex.join(sys.argv[1:] if argv is None else argv)
    info = RunInfo(
        started=started,
        seconds=time.monotonic() - t0,
        command=f"python -m tests.bench.run {argv_text}".strip() if argv_text else "make bench",
        load_before=load_before,
        duration=args.duration,
        warmup=args.warmup,
        wrk_threads=args.wrk_threads,
        workers=args.workers,
        threads=args.threads,
        bare_spinning=args.bare_spinning,
        root=ROOT,
    )
    text = render(info, rows, sweeps)
    print(text)
    if not args.no_write:
        args.output.write_text(text)
        print(f"bench: wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
