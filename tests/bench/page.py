"""The RESULTS.md page: when, where and how the run was made, then every table."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from tests.bench.ceiling import Sweep
from tests.bench.report import (
    Row,
    cpu_table,
    goals_table,
    results_table,
    sweep_table,
    worker_class_table,
)
from tests.bench.servers import BATCH_METRIC, COMPUTE_METRIC


@dataclass(frozen=True)
class IsolationPart:
    """The isolation section, rendered (tests/bench/isolation_report.py)."""

    table: str
    method: str
    seconds: float
    load_before: str  # load average (1, 5, 15 min) when the section began
    load_after: str


@dataclass(frozen=True)
class RunInfo:
    started: str  # UTC
    seconds: float
    command: str
    load_before: str
    load_after: str
    duration: int
    rounds: int
    warmup: int
    wrk_threads: int
    workers: int
    threads: int
    default: str  # the sidecar's default configuration, in words
    bare_spinning: bool
    bare_json: str
    root: Path


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions = f"Python {platform.python_version()}, onnxruntime {ort.__version__}"
    return f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, {versions}"


def commit(root: Path) -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        argv = ["git", "rev-parse", "--short", "HEAD"]
        out = subprocess.run(argv, cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True)
        return out.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")
    return "unknown"


GEVENT = """\
gevent (`gevent+weir`, `tests/bench/gevent_weir.py`): gunicorn's gevent worker runs Weir's real
stack unchanged, `build_worker(Settings.from_env(), threaded_driver)` built after the worker's
monkey-patching, so it is measured, but what it measures is not thread isolation: under
`monkey.patch_all()` the batching threads of `ThreadedDriver` are greenlets and their Condition
and Event are gevent's, so requests still batch (up to `max_queue_delay`), yet each batch runs
`session.run` on the hub's own OS thread. ONNX Runtime releases the GIL, but no other greenlet
(health, metadata, other models, the next batch's decoding) runs until it returns: the same
seam as meinheld, by construction. Real threads under gevent would need a driver that hands
`session.run` to gevent's thread pool and wakes the waiting greenlet through the hub, which the
sidecar does not have; the bench does not invent one."""


def _servers_part(info: RunInfo, rows: list[Row], sweeps: list[Sweep]) -> str:
    goals, _ = goals_table(rows)
    return f"""
## Targets (issue 2, "Speed"), on the sidecar's default configuration

{goals}

## Server comparison

Every server here runs Weir's real worker stack except flask and bare (the baselines) and the
ceiling (no server). **bold**: the sidecar's default configuration; "x default": req/s over the
default's in the same group, same run. CPU ms/req: CPU time of the server's process tree per
request answered (wrk not counted). RSS and PSS: peak over the cell, summed over the server's
process tree; RSS counts shared pages (libraries, forked memory) once per process, PSS splits
them: memory comparisons on this page use PSS.

{results_table(rows)}

## Sidecar configurations

busy: share of each worker's wall time spent in the model; model samples/s: samples per second
of model time, all workers together. req/s ~= busy x model samples/s: a gap to the ceiling is
either time the model does not run (HTTP, decoding, waiting) or the model running slower than
in the ceiling (CPU shared with request handling and wrk).

{worker_class_table(rows)}

## CPU cost: requests per CPU second of each server's processes

The ratios above are wall-clock, as the targets are; on this shared machine they move with
other work. CPU seconds per request barely do: "x ceiling" here is the share of the server's
CPU that ends up as model samples at the ceiling's efficiency.

{cpu_table(rows)}

## Ceiling sweep: in-process ONNX Runtime, samples/s by batch size

{sweep_table(sweeps)}
"""


def _isolation_part(iso: IsolationPart) -> str:
    return f"""
## Isolation (issue 9): a light model and the health probe while a heavy model is saturated

Measured in {iso.seconds:.0f} s; load average before the section: {iso.load_before}; after:
{iso.load_after}. Goals on this 2-core machine: same pool, health p99 <= 10 ms and light p99
<= 5x alone; separate pools, light p99 <= 1.5x alone.

{iso.table}

{iso.method}
"""


def render(
    info: RunInfo, rows: list[Row], sweeps: list[Sweep], iso: IsolationPart | None = None
) -> str:
    spin = "on" if info.bare_spinning else "off"
    servers = _servers_part(info, rows, sweeps) if rows else ""
    isolation = _isolation_part(iso) if iso is not None else ""
    return f"""# Weir benchmark results

- Date: {info.started} UTC, took {info.seconds:.0f} s; commit `{commit(info.root)}`
- Machine: {machine()}
- Load average (1, 5, 15 min) before the run: {info.load_before}; after: {info.load_after}
- Command: `{info.command}`: {info.rounds} interleaved round(s) of {info.duration} s per cell
  after {info.warmup} s of warmup (once per payload, at its first client count),
  `wrk -t{info.wrk_threads}`
{servers}{isolation}
## Method

- Load: `wrk -t{info.wrk_threads} -cN`, closed loop, keep-alive, one sample per request, the
  same request replayed (`tests/bench/loadgen.py`). wrk and the server share this machine's
  cores: one wrk thread (an epoll loop in C) keeps up with every server here while taking the
  least CPU from it (about 16% of a core at 3k req/s); a second thread only takes more CPU from
  the server it measures. Errors are wrk's socket errors (connect, read, write, timeout at 10 s)
  plus non-2xx answers. Each server's answer is checked against in-process ORT first.
- Groups: for each model, body and client count, every server is measured back to back,
  {info.rounds} round(s) in turn, each Weir-stack slice between two ceiling slices (flask, bare,
  C, weir1, C, weir2, C), and the rounds merged: requests add up, p50 is the request-weighted
  mean of the rounds', p99 the worst round's. A sidecar's "x ceiling" divides by the mean of
  the ceiling slices around its own slices (the ceiling row shows all of them merged). Servers
  are started once, up front; only one is loaded at a time. Ratios are taken within a group, so
  drift from other work on this shared machine hits both sides alike: compare ratios, not
  absolute numbers across runs.
- health GET: `GET /v2/health/ready` on every server, one slice each: no model, no body, only
  HTTP and the Python server. It is the most any server answers here, so it bounds the infer
  ratios this machine can show (e.g. "x flask" on infer cannot be far above bare's here).
- flask (`tests/bench/naive_flask.py`): `app.run()` (threaded dev server), ORT per request with
  default session options, JSON only; binary rows' "x flask" compares with its JSON row.
- bare (`tests/bench/bare_meinheld.py`): gunicorn + meinheld worker + Falcon, ORT per request,
  no validation, batching or metrics; {info.workers} worker(s), {info.threads} ORT intra-op
  thread(s), spinning {spin} (the sidecar's session options), JSON by {info.bare_json} (the
  sidecar uses orjson when installed): the comparison isolates what validation, batching and
  metrics cost.
- weir: the default configuration is `weir sidecar --models models --device cpu --port P`
  with no other flag (here: {info.default}); the others add `--workers N --worker-class CLASS`,
  one per class the sidecar's `Settings.worker_class` accepts (read from the field: a class
  added there is measured with no change to the bench).
  Mean batch: delta of its `{BATCH_METRIC}` histogram (`_sum` / `_count`) over the measured
  seconds; busy and model samples/s from `{COMPUTE_METRIC}` the same way. RSS: peak over the
  cell of VmRSS summed over the server's process tree (shared pages counted per process); PSS:
  the same from `/proc/PID/smaps_rollup` (shared pages split between the processes mapping them).
- granian (`granian+weir`, `tests/bench/granian_weir.py`): granian's WSGI interface,
  {info.workers} worker process(es), blocking threads as many as the sidecar's gthread threads,
  each worker building Weir's real stack as the gthread worker does,
  `build_worker(Settings.from_env(), threaded_driver)`, with PROMETHEUS_MULTIPROC_DIR set: only
  the HTTP server differs from `weir sidecar --worker-class gthread`.
- {GEVENT}
- ceiling (`tests/bench/ceiling.py`): `session.run` on a ready batch in a loop, in
  {info.workers} process(es) with {info.threads} intra-op thread(s) each, all at once, like the
  sidecar's workers, at the best batch size and spinning setting of the sweep; its req/s column
  is samples/s and its latencies are per batch run. "x ceiling" = requests/s (one sample each)
  / ceiling samples/s.
"""
