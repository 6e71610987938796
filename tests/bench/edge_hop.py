"""The edge hop: requests through Weir's edge against a bare nginx `proxy_pass` and against the
upstream itself, in one run, rounds interleaved; plus the cost of a 429 and of a fallback.

    .venv/bin/python -m tests.bench.edge_hop             # about 4 minutes, writes EDGE_RESULTS.md
    .venv/bin/python -m tests.bench.edge_hop --quick     # 64 clients, 3 rounds, no breakdown

Two upstreams: a stub (nginx `return 200` of the sidecar's own answer: the hop's cost is not
hidden behind Python) and the real sidecar on digits v2 (JSON). For each, at each client count:
direct, bare nginx, edge, round by round. Per-request CPU of every process (nginx workers,
upstream, wrk) comes from /proc utime+stime deltas, so a throughput gap can be explained: on
2 cores, req/s is bounded by cores / (CPU µs per request of everything on the path).
The breakdown then loads copies of the edge's rendered config with one Lua piece taken out,
and a copy whose access and log hooks time their own Lua with os.clock() inside nginx.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import shlex
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from scripts.edge.nginx import find_nginx
from scripts.edge.render import CONF_NAME
from scripts.runtime import RuntimeDir
from scripts.stack.edge import Edge
from tests.bench import edge_confs as confs
from tests.bench.edge_measure import TIMED, check_answer, measure_group, phase_cpu
from tests.bench.edge_report import Cell, Route, render_page, results_table
from tests.bench.loadgen import write_script
from tests.bench.payloads import Payload, make_payload
from tests.bench.procs import Server, free_port, http_get, process_tree, running
from tests.bench.servers import weir_target

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "EDGE_RESULTS.md"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.edge_hop", description=__doc__)
    p.add_argument("--quick", action="store_true", help="64 clients, 2 rounds, no breakdown")
    p.add_argument("--duration", type=int, default=1, help="seconds per slice (whole seconds)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per cell")
    p.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured load first")
    p.add_argument("--clients", default="1,16,64", help="connections, comma-separated")
    p.add_argument("--breakdown-clients", type=int, default=16, help="connections there")
    p.add_argument("--no-breakdown", action="store_true", help="skip the Lua-piece breakdown")
    p.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    p.add_argument("--models", type=Path, default=ROOT / "models")
    args = p.parse_args(argv)
    if args.quick:
        args.clients, args.rounds, args.no_breakdown = "64", 3, True
    args.client_counts = [int(c) for c in args.clients.split(",") if c.strip()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if shutil.which("wrk") is None:
        print("edge_hop: wrk not found: apt-get install wrk (make deps does)", file=sys.stderr)
        return 1
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.monotonic()
    load_before = "{:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())
    nginx = find_nginx()
    payload = make_payload(args.models, "digits", confs.SIDECAR_VERSION, "json")
    answer = confs.stub_answer(payload)
    tmp = Path(tempfile.mkdtemp(prefix="weir-edge-bench-"))
    edge: Edge | None = None
    try:
        logs = tmp / "logs"
        logs.mkdir()
        for name in ("stub", "bare"):
            (tmp / name).mkdir()
        stub_port = free_port()
        (tmp / "stub" / "nginx.conf").write_text(confs.stub_conf(tmp / "stub", stub_port, answer))
        stub = Server(
            "stub nginx",
            [nginx.path, "-p", str(tmp / "stub"), "-c", str(tmp / "stub" / "nginx.conf")],
            stub_port,
            logs / "stub.log",
        )
        sidecar = weir_target(args.models, logs, None, None, "weir sidecar").server
        with running([stub, sidecar]):
            bare_stub, bare_sidecar = free_port(), free_port()
            hops = [
                confs.BareHop(bare_stub, f"127.0.0.1:{stub.port}"),
                confs.BareHop(bare_sidecar, f"127.0.0.1:{sidecar.port}"),
            ]
            bare_path = tmp / "bare" / "nginx.conf"
            bare_path.write_text(confs.bare_conf(tmp / "bare", hops, 32, 16 * 1024**2))
            bare = Server(
                "bare nginx",
                [nginx.path, "-p", str(tmp / "bare"), "-c", str(bare_path)],
                bare_stub,
                logs / "bare.log",
            )
            edge_port, admin_port = free_port(), free_port()
            release = tmp / "release.yaml"
            release.write_text(
                confs.release_yaml(
                    edge_port,
                    admin_port,
                    f"127.0.0.1:{stub.port}",
                    f"127.0.0.1:{sidecar.port}",
                )
            )
            runtime = RuntimeDir(tmp / "runtime")
            edge = Edge(runtime, nginx).start(release)
            edge_pid = edge.pid
            assert edge_pid is not None
            variants = _variant_servers(args, runtime, nginx.path, logs)
            with running([bare, *variants]):
                killed = f"http://127.0.0.1:{admin_port}/admin/models/{confs.KILLED_MODEL}/kill"
                urllib.request.urlopen(urllib.request.Request(killed, method="POST"), timeout=5)
                cells, breakdown, phases = _run(
                    args, tmp, payload, stub, sidecar, bare, hops, edge_pid, edge_port, variants
                )
    finally:
        if edge is not None:
            edge.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = "{:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())
    table = results_table(cells)
    print(table)
    command = ".venv/bin/python -m tests.bench.edge_hop" + (
        " " + shlex.join(argv if argv is not None else sys.argv[1:])
        if (argv if argv is not None else sys.argv[1:])
        else ""
    )
    page, verdict_lines = render_page(
        cells=cells,
        breakdown=breakdown,
        phases=phases,
        started=started.strftime("%Y-%m-%d %H:%M"),
        seconds=time.monotonic() - t0,
        command=command,
        load_before=load_before,
        load_after=load_after,
        args=args,
        root=ROOT,
    )
    print("\n".join(verdict_lines))
    if not args.no_write:
        RESULTS.write_text(page)
        print(f"wrote {RESULTS}", file=sys.stderr)
    return 0


def _variant_servers(
    args: argparse.Namespace, runtime: RuntimeDir, nginx_path: str, logs: Path
) -> list[Server]:
    """One nginx master per breakdown variant, from copies of the edge's rendered config."""
    if args.no_breakdown:
        return []
    conf = (runtime.current / CONF_NAME).read_text()
    port, admin = free_port(), free_port()
    path = runtime.root / "timed.conf"
    path.write_text(confs.timed_conf(conf, port, admin, runtime.root / "timed.pid"))
    argv = [nginx_path, "-p", str(runtime.edge), "-c", str(path)]
    servers = [Server(TIMED, argv, port, logs / "timed.log", ready_path="/v2/health/live")]
    for i, (name, drop) in enumerate(confs.VARIANTS.items()):
        port, admin = free_port(), free_port()
        path = runtime.root / f"variant-{i}.conf"
        pid = runtime.root / f"variant-{i}.pid"
        path.write_text(confs.variant_conf(conf, drop, port, admin, pid))
        argv = [nginx_path, "-p", str(runtime.edge), "-c", str(path)]
        servers.append(
            Server(name, argv, port, logs / f"variant-{i}.log", ready_path="/v2/health/live")
        )
    return servers


def _run(
    args: argparse.Namespace,
    tmp: Path,
    payload: Payload,
    stub: Server,
    sidecar: Server,
    bare: Server,
    hops: list[confs.BareHop],
    edge_pid: int,
    edge_port: int,
    variants: list[Server],
) -> tuple[list[Cell], list[Cell], dict[str, float]]:
    work = tmp / "wrk"
    work.mkdir()
    base = {"Content-Type": "application/json", "X-User-Id": "user-42"}
    pinned = payload.path  # digits v2: the sidecar
    unpinned = f"/v2/models/{confs.HOP_MODEL}/infer"  # split: the stub's version
    stub_script = write_script(work, "stub", "POST", payload.body, base)
    sidecar_script = write_script(work, "sidecar", "POST", payload.body, payload.headers)

    def edge_pids() -> list[int]:
        return process_tree(edge_pid)

    def url(port: int, path: str) -> str:
        return f"http://127.0.0.1:{port}{path}"

    stub_routes = [
        Route("direct", url(stub.port, unpinned), stub_script, lambda: [], stub.pids),
        Route("bare nginx", url(hops[0].port, unpinned), stub_script, bare.pids, stub.pids),
        Route("edge", url(edge_port, unpinned), stub_script, edge_pids, stub.pids),
    ]
    special = [
        Route(
            "edge 429 (rate limit)",
            url(edge_port, f"/v2/models/{confs.LIMITED_MODEL}/infer"),
            stub_script,
            edge_pids,
            stub.pids,
        ),
        Route(
            "edge fallback (killed)",
            url(edge_port, f"/v2/models/{confs.KILLED_MODEL}/infer"),
            stub_script,
            edge_pids,
            stub.pids,
        ),
    ]
    sidecar_routes = [
        Route("direct", url(sidecar.port, pinned), sidecar_script, lambda: [], sidecar.pids),
        Route("bare nginx", url(hops[1].port, pinned), sidecar_script, bare.pids, sidecar.pids),
        Route("edge", url(edge_port, pinned), sidecar_script, edge_pids, sidecar.pids),
    ]
    # Every route answers what it should before anything is timed.
    for route in stub_routes:
        check_answer(route.url, payload, base)
    for route in sidecar_routes:
        check_answer(route.url, payload, payload.headers)
    with contextlib.suppress(AssertionError):  # the 1 r/m limit lets the first one through
        check_answer(special[0].url, payload, base, want=429)
    got = check_answer(special[0].url, payload, base, want=429)
    assert "Retry-After" in got, "the 429 has no Retry-After"
    got = check_answer(special[1].url, payload, base)
    assert got.get("X-Weir-Fallback") == "killed", f"no fallback mark: {got}"
    assert http_get(url(edge_port, "/v2/health/live"))[0] == 200

    cells: list[Cell] = []
    for clients in args.client_counts:
        cells += measure_group("stub", stub_routes + special, clients, args)
        cells += measure_group("sidecar", sidecar_routes, clients, args)
    breakdown: list[Cell] = []
    phases: dict[str, float] = {}
    if variants:
        timed, others = variants[0], variants[1:]
        routes = stub_routes[1:3] + [
            Route(v.label, url(v.port, unpinned), stub_script, v.pids, stub.pids) for v in others
        ]
        for route in routes[2:]:
            check_answer(route.url, payload, base)
        breakdown = measure_group("pieces", routes, args.breakdown_clients, args)
        # Split by sticky header (what the stub rows send), then pinned to the stub's version.
        stub_pinned = f"/v2/models/{confs.HOP_MODEL}/versions/{confs.STUB_VERSION}/infer"
        for label, path in (("split", unpinned), ("pinned", stub_pinned)):
            found = phase_cpu(url(timed.port, path), stub_script, url(timed.port, ""), label, args)
            phases |= {f"{label} {k}": v for k, v in found.items()}
    return cells, breakdown, phases


if __name__ == "__main__":
    sys.exit(main())
