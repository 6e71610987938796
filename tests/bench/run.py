"""`make bench`: the sidecar against its baselines and other HTTP servers, in one run, here.

    .venv/bin/python -m tests.bench.run                       # both sections, about 9 minutes
    .venv/bin/python -m tests.bench.run --section servers     # the throughput comparison only
    .venv/bin/python -m tests.bench.run --section isolation   # the isolation table only
    .venv/bin/python -m tests.bench.run --quick               # one 2 s round, 64 clients only
    .venv/bin/python -m tests.bench.run --only digits,bare --clients 64 --no-write

Two sections. servers: for each model, body and client count (a group), the in-process ceiling
is re-measured and every server is loaded in turn, so drift from other work on this shared
machine hits every server of a group alike. isolation (tests/bench/isolation.py): a light model
and the health probe alone and with a heavy model saturated, same pool and separate pools.
Every server is started once, up front, all of them loading side by side. A run of one section
prints its page and writes RESULTS.md only when --output names a file.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from tests.bench import isolation, lineup
from tests.bench.ceiling import Ceiling, Sweep, sweep
from tests.bench.cells import Cadence, measure_floor, measure_group
from tests.bench.isolation_report import isolation_method, isolation_table
from tests.bench.loadgen import payload_script, write_script
from tests.bench.page import IsolationPart, RunInfo, render
from tests.bench.payloads import Payload, check, make_payload
from tests.bench.procs import running_together
from tests.bench.report import Row
from tests.bench.servers import (
    HOSTS,
    Target,
    sidecar_defaults,
    sidecar_worker_classes,
)

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
PAYLOADS = (("digits", "2", "json"), ("cnn", "1", "binary"), ("cnn", "1", "json"))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench.run", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--section",
        choices=["all", "servers", "isolation"],
        default="all",
        help="run one section only (its page is printed; RESULTS.md is written with --output)",
    )
    p.add_argument("--duration", type=int, help="seconds per cell and round (2)")
    p.add_argument("--rounds", type=int, help="interleaved rounds per group (2; quick: 1)")
    p.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured load first")
    p.add_argument(
        "--ceiling-seconds", type=float, default=0.5, help="ceiling slice, around every sidecar's"
    )
    p.add_argument("--clients", help="concurrent connections, comma-separated (1,16,64; quick: 64)")
    p.add_argument("--quick", action="store_true", help="one 2 s round at 64 clients: a smoke run")
    p.add_argument(
        "--only",
        default="",
        help="comma-separated words: keep the payloads (digits, cnn/v1/binary) and servers "
        "(flask, bare, weir, gthread, granian, gevent) whose name holds one of them; the "
        "isolation section keeps the default sidecar too",
    )
    p.add_argument("--models", type=Path, default=ROOT / "models")
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="workers of the bare server and of sidecar configurations that name none, and "
        "processes of the ceiling; 0: the sidecar's default on this machine",
    )
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
    p.add_argument(
        "--bare-json",
        choices=["orjson", "stdlib"],
        default="orjson",
        help="the bare server's JSON library (orjson, as the sidecar, when installed)",
    )
    p.add_argument(
        "--worker-classes",
        help="sidecar configurations, CLASS or CLASS:WORKERS, comma-separated (default: every "
        "--worker-class the sidecar's Settings accept, now "
        + ",".join(sidecar_worker_classes())
        + ")",
    )
    p.add_argument(
        "--hosts",
        default=",".join(HOSTS),
        help="Weir's worker stack under other servers (tests/bench/granian_weir.py, "
        "gevent_weir.py), comma-separated; '' for none",
    )
    p.add_argument("--isolation-seconds", type=int, default=2, help="seconds per isolation slice")
    p.add_argument(
        "--isolation-rounds", type=int, help="alone/loaded pairs per layout (3; quick: 1)"
    )
    p.add_argument(
        "--isolation-unpinned-clients",
        dest="pin_clients",
        action="store_false",
        help="separate pools: leave wrk on every CPU (default: each on its pool's CPU)",
    )
    p.add_argument("--no-sidecar", action="store_true", help="baselines only")
    p.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="skip GET /v2/health/ready on every server (the HTTP floor of this machine)",
    )
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (see RESULTS.md)")
    p.add_argument("--output", type=Path, help=f"where the Markdown goes ({RESULTS.name})")
    p.add_argument("--no-write", action="store_true", help="print the page, write nothing")
    args = p.parse_args(argv)
    args.output_given = args.output
    args.output = args.output or RESULTS
    args.default_workers, args.default_class = sidecar_defaults()
    if args.worker_classes is None:
        args.worker_classes = ",".join(sidecar_worker_classes())
    args.workers = args.workers or args.default_workers
    if args.threads == 0:
        args.threads = max(1, len(os.sched_getaffinity(0)) // args.workers)
    # --quick changes the defaults only: options given explicitly still win.
    quick = {"duration": 2, "rounds": 1, "clients": "64", "isolation_rounds": 1}
    full = {"duration": 2, "rounds": 2, "clients": "1,16,64", "isolation_rounds": 3}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _measure(
    args: argparse.Namespace, payloads: list[Payload], targets: list[Target], workdir: Path
) -> tuple[list[Row], list[Sweep]]:
    """The servers section, on servers already running."""
    clients = [int(c) for c in args.clients.split(",")]
    n_cells = sum(len(clients) for p in payloads for t in targets if p.encoding in t.encodings)
    print(f"bench: {n_cells} cells x {args.rounds} rounds, work dir {workdir}", file=sys.stderr)
    cadence = Cadence(
        args.duration, args.rounds, args.warmup, args.wrk_threads, args.ceiling_seconds
    )
    rows: list[Row] = []
    ceilings: dict[str, tuple[Sweep, Ceiling]] = {}
    with contextlib.ExitStack() as stack:
        for target in targets:
            for payload in payloads:
                if payload.encoding in target.encodings:
                    check(target.base_url, payload)
        if args.floor:
            floor = write_script(workdir, "health")
            rows += measure_floor(targets, floor, max(clients), cadence)
        for payload in payloads:
            script = payload_script(payload, workdir)
            if payload.model not in ceilings:
                path = args.models / payload.model / payload.version / "model.onnx"
                best = sweep(path, args.workers, args.threads)
                pool = Ceiling(path, args.workers, args.threads, best.spinning)
                ceilings[payload.model] = (best, stack.enter_context(pool))
            serving = [t for t in targets if payload.encoding in t.encodings]
            for i, n in enumerate(clients):
                best_pool = ceilings[payload.model]
                # Warm up once per payload: at the next client counts every server is warm.
                pace = cadence if i == 0 else dataclasses.replace(cadence, warmup=0)
                rows += measure_group(payload, n, serving, script, best_pool, pace)
    return rows, [s for s, _ in ceilings.values()]


def _isolate(
    args: argparse.Namespace, layouts: list[isolation.Layout], workdir: Path
) -> IsolationPart:
    """The isolation section, on servers already running."""
    load = isolation.Load(
        seconds=args.isolation_seconds,
        rounds=args.isolation_rounds,
        warmup=args.warmup,
        pin_clients=args.pin_clients,
    )
    light, heavy = (make_payload(args.models, *spec) for spec in (isolation.LIGHT, isolation.HEAVY))
    scripts = isolation.Scripts(light, heavy, workdir)
    t0, load_before = time.monotonic(), _loadavg()
    results = isolation.measure(layouts, scripts, load)
    cpus = (sorted(os.sched_getaffinity(0)) * 2)[:2]
    method = isolation_method(load, light.key, heavy.key, cpus)
    took = time.monotonic() - t0
    return IsolationPart(isolation_table(results), method, took, load_before, _loadavg())


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # a killed run still stops its servers
    only = [w for w in args.only.split(",") if w]
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    load_before = _loadavg()
    t0 = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="weir-bench-"))
    keys = [f"{m}/v{v}/{e}" for m, v, e in PAYLOADS]
    chosen = lineup.select(keys, only)
    payloads = [
        make_payload(args.models, *spec)
        for spec, k in zip(PAYLOADS, keys, strict=True)
        if k in chosen
    ]
    sections = {"servers", "isolation"} if args.section == "all" else {args.section}
    rows: list[Row] = []
    sweeps: list[Sweep] = []
    iso: IsolationPart | None = None
    try:
        targets = lineup.targets(args, workdir, only) if "servers" in sections else []
        layouts = []
        if "isolation" in sections:
            layouts = lineup.layouts(args, targets or lineup.targets(args, workdir, only), workdir)
        # Targets may share a server (an edge hop and the sidecar behind it; the same pool of
        # the isolation section): start each once.
        every = [t.server for t in targets] + [p.server for lay in layouts for p in lay.pools]
        servers = list({id(s): s for s in every}.values())
        print(f"bench: starting {len(servers)} servers", file=sys.stderr)
        with running_together(servers):
            if targets:
                rows, sweeps = _measure(args, payloads, targets, workdir)
            if layouts:
                iso = _isolate(args, layouts, workdir)
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
        command=f"python -m tests.bench.run {argv_text}" if argv_text else "make bench",
        load_before=load_before,
        load_after=_loadavg(),
        duration=args.duration,
        rounds=args.rounds,
        warmup=args.warmup,
        wrk_threads=args.wrk_threads,
        workers=args.workers,
        threads=args.threads,
        default=f"{args.default_workers} {args.default_class} worker(s)",
        bare_spinning=args.bare_spinning,
        bare_json=args.bare_json,
        root=ROOT,
    )
    text = render(info, rows, sweeps, iso)
    print(text)
    output = args.output if args.section == "all" else args.output_given
    if not args.no_write and output is not None:
        output.write_text(text)
        print(f"bench: wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
