"""Measuring the edge-hop routes: wrk slices with the CPU every process spent on them, rounds
interleaved, answers checked first, and the Lua hooks' own CPU read back from inside nginx.

CPU comes from /proc/PID/stat (utime, stime) of the nginx in the middle and of the upstream,
and from getrusage of our children for wrk, before and after each slice.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.bench import edge_confs as confs
from tests.bench.edge_report import Cell, Route, Slice
from tests.bench.loadgen import run_wrk
from tests.bench.payloads import Payload, decode_output
from tests.bench.procs import http_get

CLK_TCK = os.sysconf("SC_CLK_TCK")
TIMED = "edge, Lua phases timed inside"
PAUSE = 0.2  # between slices: the last configuration's processes go idle


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of `pids` so far: fields 14 and 15 of /proc/PID/stat."""
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11])
        system += int(fields[12])
    return user / CLK_TCK, system / CLK_TCK


def children_cpu() -> float:
    """CPU of our waited-for children: wrk's, once run_wrk has returned."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(route: Route, clients: int, seconds: int, warmup: int) -> Slice:
    if warmup:
        run_wrk(route.url, route.script, clients, warmup)
    proxy, upstream = route.proxy(), route.upstream()
    p0, u0, w0 = cpu_seconds(proxy), cpu_seconds(upstream), children_cpu()
    load = run_wrk(route.url, route.script, clients, seconds)
    p1, u1, w1 = cpu_seconds(proxy), cpu_seconds(upstream), children_cpu()
    time.sleep(PAUSE)
    return Slice(
        load,
        proxy_user=p1[0] - p0[0],
        proxy_sys=p1[1] - p0[1],
        upstream_cpu=sum(u1) - sum(u0),
        wrk_cpu=w1 - w0,
    )


def measure_group(
    group: str, routes: list[Route], clients: int, args: argparse.Namespace
) -> list[Cell]:
    """Every route in turn, `rounds` times; every other round in reverse order, so that no
    route always follows the same one."""
    slices: dict[str, list[Slice]] = {r.name: [] for r in routes}
    for i in range(args.rounds):
        order = routes if i % 2 == 0 else routes[::-1]
        for route in order:
            one = measure(route, clients, args.duration, args.warmup if i == 0 else 0)
            slices[route.name].append(one)
            load = one.load
            print(
                f"{group:8} c{clients:<3} r{i + 1}/{args.rounds} {route.name:34} "
                f"{load.rps:8,.0f} req/s  p50 {load.p50_ms:6.3f} ms  p99 {load.p99_ms:6.2f} ms  "
                f"non-2xx {load.non2xx:<6} sock err {load.socket_errors:<3} "
                f"nginx {one.per_request(one.proxy_user):5.1f} user "
                f"{one.per_request(one.proxy_sys):5.1f} sys µs/req",
                file=sys.stderr,
                flush=True,
            )
    return [Cell(group, clients, r, slices[r.name]) for r in routes]


def check_answer(
    url: str, payload: Payload, headers: dict[str, str], want: int = 200
) -> dict[str, str]:
    """One request: the status we expect, and for 200 with outputs the numbers ORT computes."""
    req = urllib.request.Request(url, data=payload.body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, body, got_headers = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        status, body, got_headers = exc.code, exc.read(), dict(exc.headers)
    if status != want:
        raise AssertionError(f"{url} answered {status} (wanted {want}): {body[:200]!r}")
    if status == 200 and json.loads(body).get("outputs"):
        out = decode_output(body, None)
        if out.shape != payload.expected.shape or abs(out - payload.expected).max() > 1e-4:
            raise AssertionError(f"{url} answered {out.ravel()[:4]}, ORT gives the other")
    return got_headers


def _phase_totals(base: str) -> dict[str, float]:
    status, body = http_get(base + confs.PHASES_PATH)
    if status != 200:
        raise RuntimeError(f"{base}{confs.PHASES_PATH} answered {status}: {body[:200]!r}")
    return {k: float(v or 0) for k, v in json.loads(body).items()}


def phase_cpu(
    target: str, script: Path, base: str, label: str, args: argparse.Namespace
) -> dict[str, float]:
    """µs of worker CPU per request inside each Lua hook, the timer's own share taken out."""
    before = _phase_totals(base)
    load = run_wrk(target, script, args.breakdown_clients, max(2, args.duration * 3))
    time.sleep(0.3)  # the last log phases run after wrk has its answers
    after = _phase_totals(base)
    raw = {
        k: after.get(k, 0.0) - before.get(k, 0.0)
        for k in ("access", "access_n", "log", "log_n", "clock")
    }
    calls = raw["access_n"] + raw["log_n"]
    clock = raw["clock"] / calls
    out = {p: (raw[p] / raw[f"{p}_n"] - clock) * 1e6 for p in ("access", "log")}
    print(
        f"pieces   c{args.breakdown_clients:<3} {TIMED + ', ' + label:39} {load.rps:8,.0f} "
        f"req/s  access {out['access']:.1f} µs/req, log {out['log']:.1f} µs/req "
        f"(timer {clock * 1e6:.1f} µs a reading, {calls:.0f} hooks)",
        file=sys.stderr,
        flush=True,
    )
    return {**out, "timer": clock * 1e6, "requests": raw["access_n"]}
