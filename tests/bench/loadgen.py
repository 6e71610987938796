"""Closed-loop load with wrk: N keep-alive connections replaying one request for D seconds.

wrk (C, epoll) is the client so the client is not Python-bound. A generated Lua script loads the
body from a file (binary-safe) and, in `done()`, prints one JSON line with the request count,
latency percentiles and every error class wrk counts; that line is what we parse, not wrk's
human-readable summary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.bench.payloads import Payload

MARKER = "WEIR_BENCH_JSON "

_BODY = """\
local f = assert(io.open({body_path}, "rb"))
wrk.body = f:read("*a")
f:close()
"""

_SCRIPT = """\
wrk.method = {method}
{body}{header_lines}

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{marker}{{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of printable ASCII is a valid Lua string literal


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int  # connect + read + write + timeout
    non2xx: int  # wrk counts statuses above 399

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non2xx

    @classmethod
    def merge(cls, parts: list[LoadResult]) -> LoadResult:
        """Rounds of one cell as one result: counts add up; p50 and p90 are averaged weighted by
        requests, p99 and max are the worst round's (wrk's histograms are not mergeable)."""
        requests = sum(p.requests for p in parts)

        def weighted(values: list[float]) -> float:
            if not requests:
                return max(values)
            return sum(v * p.requests for v, p in zip(values, parts, strict=True)) / requests

        return cls(
            requests=requests,
            seconds=sum(p.seconds for p in parts),
            p50_ms=weighted([p.p50_ms for p in parts]),
            p90_ms=weighted([p.p90_ms for p in parts]),
            p99_ms=max(p.p99_ms for p in parts),
            max_ms=max(p.max_ms for p in parts),
            socket_errors=sum(p.socket_errors for p in parts),
            non2xx=sum(p.non2xx for p in parts),
        )


def write_script(
    workdir: Path,
    stem: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Path:
    """A wrk Lua script sending one request (its body goes next to it, in `workdir`)."""
    body_lua = ""
    if body is not None:
        body_path = workdir / f"{stem}.body"
        body_path.write_bytes(body)
        body_lua = _BODY.format(body_path=_lua_string(str(body_path)))
    lines = "\n".join(
        f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in (headers or {}).items()
    )
    script = workdir / f"{stem}.lua"
    text = _SCRIPT.format(
        method=_lua_string(method), body=body_lua, header_lines=lines, marker=MARKER
    )
    script.write_text(text)
    return script


def payload_script(
    payload: Payload, workdir: Path, extra_headers: dict[str, str] | None = None
) -> Path:
    """The wrk script POSTing `payload` (an edge hop adds its routing headers)."""
    headers = {**payload.headers, **(extra_headers or {})}
    return write_script(workdir, payload.key.replace("/", "_"), "POST", payload.body, headers)


def run_wrk(
    url: str,
    script: Path,
    connections: int,
    duration: int,
    threads: int = 1,
    timeout: int = 10,
    cpus: frozenset[int] | None = None,
) -> LoadResult:
    """Run wrk against `url` for `duration` whole seconds (wrk takes no fractions), pinned to
    `cpus` when given."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk not found: install it with `apt-get install wrk` (make deps does)")
    argv = [
        wrk,
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{duration}s",
        f"--timeout={timeout}s",
        "-s",
        str(script),
        url,
    ]
    pin = None if cpus is None else lambda: os.sched_setaffinity(0, cpus)
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=duration + timeout + 30,
        preexec_fn=pin,
    )
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            raw = json.loads(line[len(MARKER) :])
            break
    else:
        raise RuntimeError(
            f"wrk failed ({proc.returncode}): {proc.stdout[-500:]} {proc.stderr[-500:]}"
        )
    return LoadResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1e3,
        p90_ms=raw["p90_us"] / 1e3,
        p99_ms=raw["p99_us"] / 1e3,
        max_ms=raw["max_us"] / 1e3,
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        non2xx=raw["status"],
    )
