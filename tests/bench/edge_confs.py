"""What the edge-hop benchmark runs: the stub upstream, the bare nginx hop, the edge's release,
and copies of the edge's rendered nginx.conf with one piece of its Lua taken out.

Every nginx here is the edge's own binary (`find_nginx()`), in a temporary directory, on
loopback ports picked at start. The bare hop copies the edge's non-Lua http settings (worker
count, keep-alive to the upstream, buffers, no access log) so the two differ only in what Weir
adds: the regex location, limit_req, access/log Lua, the variable upstream and its headers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.bench.payloads import Payload

# Models of the bench release, in this order: the hop model first so its location is the first
# regex nginx tries (as the only model of a release would be).
HOP_MODEL = "digits"  # v1 -> stub, v2 -> the real sidecar
LIMITED_MODEL = "limited"  # 1 request a minute: nearly every request gets 429
KILLED_MODEL = "killed"  # killed through the admin API: answers its placeholder
STUB_VERSION = "1"
SIDECAR_VERSION = "2"
FALLBACK_BODY = {"outputs": [], "note": "placeholder while the model is switched off"}


def stub_answer(payload: Payload) -> bytes:
    """The V2 JSON answer the sidecar gives for `payload`, fixed, for the stub to return."""
    out: np.ndarray = payload.expected
    answer = {
        "model_name": payload.model,
        "model_version": payload.version,
        "id": "bench",
        "outputs": [
            {
                "name": "output",
                "shape": list(out.shape),
                "datatype": "FP32",
                "data": [float(v) for v in out.ravel()],
            }
        ],
    }
    return json.dumps(answer).encode()


def _common(tmp: Path, load_modules: tuple[str, ...] = ()) -> str:
    loads = "".join(f"load_module {m};\n" for m in load_modules)
    return f"""{loads}daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
"""


def _temp_paths(tmp: Path) -> str:
    return "".join(
        f"    {kind}_temp_path {tmp}/{kind.split('_')[0]};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )


def stub_conf(tmp: Path, port: int, answer: bytes) -> str:
    """One worker answering every request with `answer` (nginx `return 200`: no Python)."""
    # An nginx string in single quotes: JSON of numbers and plain words has no quote or `$`.
    text = answer.decode()
    if "'" in text or "$" in text or "\\" in text:
        raise ValueError("the stub answer must not hold quotes, $ or backslashes")
    return f"""{_common(tmp)}worker_processes 1;
events {{ worker_connections 4096; }}
http {{
{_temp_paths(tmp)}    access_log off;
    server_tokens off;
    default_type application/json;
    keepalive_requests 10000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ return 200 '{text}'; }}
    }}
}}
"""


@dataclass(frozen=True)
class BareHop:
    """A listen port proxying everything to one upstream."""

    port: int
    upstream: str  # host:port


def bare_conf(tmp: Path, hops: list[BareHop], keepalive: int, max_body: int) -> str:
    """Plain `proxy_pass`, with the edge's worker count, buffers and upstream keep-alive."""
    blocks = []
    for i, hop in enumerate(hops):
        blocks.append(
            f"""    upstream up{i} {{
        server {hop.upstream} max_fails=0;
        keepalive {keepalive};
    }}
    server {{
        listen 127.0.0.1:{hop.port} backlog=4096;
        location / {{ proxy_pass http://up{i}; }}
    }}
"""
        )
    return f"""{_common(tmp)}worker_processes auto;
events {{ worker_connections 4096; }}
http {{
{_temp_paths(tmp)}    access_log off;
    server_tokens off;
    default_type application/json;
    client_max_body_size {max_body};
    client_body_buffer_size {min(max_body, 1024 * 1024)};
    keepalive_requests 10000;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering on;
{"".join(blocks)}}}
"""


def release_yaml(listen: int, admin: int, stub: str, sidecar: str) -> str:
    """The bench release: every edge feature on, a rate limit that never rejects on the hop."""
    release = {
        "revision": 1,
        "edge": {
            "listen": f"127.0.0.1:{listen}",
            "admin_listen": f"127.0.0.1:{admin}",
            "admin_auth": "open",  # loopback only, in a temporary runtime directory
        },
        "sidecars": {"devices": "cpu"},
        "models": {
            HOP_MODEL: {
                "versions": {
                    STUB_VERSION: {"upstreams": [stub]},
                    SIDECAR_VERSION: {"upstreams": [sidecar]},
                },
                # Stub requests name no version: the sticky header goes through split_clients
                # and the weights (the dearest version choice); sidecar requests pin v2.
                "release": {
                    "split": {STUB_VERSION: 100, SIDECAR_VERSION: 0},
                    "sticky_key": "header:X-User-Id",
                    "force_header": "X-Weir-Version",
                },
                # One key (every request comes from 127.0.0.1), far above any rate here.
                "rate_limit": {"rate": "1000000r/s", "burst": 10000, "key": "remote_addr"},
                "breaker": {"failures": 5, "window": "10s", "open_for": "5s", "probes": 3},
                "fallback": {"version": STUB_VERSION},
                "timeout": "2s",
            },
            LIMITED_MODEL: {
                "versions": {"1": {"upstreams": [stub]}},
                "rate_limit": {"rate": "1r/m", "burst": 0, "key": "global"},
                "fallback": {"status": 503, "body": {"error": "limited"}},
            },
            KILLED_MODEL: {
                "versions": {"1": {"upstreams": [stub]}},
                "fallback": {"status": 200, "body": FALLBACK_BODY},
            },
        },
    }
    return json.dumps(release, indent=2) + "\n"  # JSON is YAML


# ---------------------------------------------------------------------------- variants

# Copies of the rendered config with pieces of the hop model's infer location taken out or
# emptied. Without the access phase, `set $weir_version` to the stub's version stands in for
# the choice; "empty" keeps a Lua hook that runs nothing: the price of entering Lua at all.
VARIANTS: dict[str, tuple[str, ...]] = {
    "edge, no log_by_lua": ("log",),
    "edge, no access_by_lua": ("access",),
    "edge, no limit_req": ("limit",),
    "edge wiring, no Lua, no limit_req": ("log", "access", "limit"),
    "edge wiring + empty access/log Lua, no limit_req": ("empty_log", "empty_access", "limit"),
}
_PIECES = {  # piece: (the line it changes, what it becomes)
    "log": (r"^\s*log_by_lua_block ", ""),
    "access": (r"^\s*access_by_lua_block ", f"set $weir_version {STUB_VERSION};"),
    "limit": (r"^\s*(limit_req |error_page 429 )", ""),
    "empty_log": (r"^\s*log_by_lua_block ", "log_by_lua_block { }"),
    "empty_access": (
        r"^\s*access_by_lua_block ",
        f"set $weir_version {STUB_VERSION}; access_by_lua_block {{ }}",
    ),
}


def _infer_block(lines: list[str], model: str) -> tuple[int, int]:
    start = next(
        i
        for i, line in enumerate(lines)
        if line.strip().startswith(f"location ~ ^/v2/models/{model}(") and "/infer$" in line
    )
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = next(i for i in range(start + 1, len(lines)) if lines[i] == " " * indent + "}")
    return start, end


def variant_conf(conf: str, drop: tuple[str, ...], listen: int, admin: int, pid: Path) -> str:
    """The edge's rendered `conf` on other ports and pid file, without the pieces in `drop`."""
    lines = conf.splitlines()
    start, end = _infer_block(lines, HOP_MODEL)
    for piece in drop:
        pattern, replacement = _PIECES[piece]
        hits = [i for i in range(start, end) if re.match(pattern, lines[i])]
        if not hits:
            raise ValueError(f"no {piece} line in the {HOP_MODEL} infer location: template moved")
        for i in hits:
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            lines[i] = indent + replacement
    text = "\n".join(lines) + "\n"
    data = r"(?m)^(\s*listen )127\.0\.0\.1:\d+ backlog"
    text, listens = re.subn(data, rf"\g<1>127.0.0.1:{listen} backlog", text)
    admin_line = r"(?m)^(\s*listen )127\.0\.0\.1:\d+;"
    text, admins = re.subn(admin_line, rf"\g<1>127.0.0.1:{admin};", text)
    text, pids = re.subn(r"(?m)^pid .*;$", f"pid {pid};", text)
    if (listens, admins, pids) != (1, 1, 1):
        raise ValueError("the rendered config's listen/pid lines moved: update variant_conf")
    return text


# The hop model's two Lua hooks wrapped in os.clock() (the worker's CPU time): what each phase
# costs, measured inside nginx, summed in a shared dict and read back from PHASES_PATH. "clock"
# sums the gap between two back-to-back readings: the timer's own share of each measurement.
PHASES_PATH = "/_bench/phases"
_TIMED = {
    "access_by_lua_block ": 'require("weir.phase.access").infer("{m}")',
    "log_by_lua_block ": 'require("weir.phase.log").infer("{m}")',
}


def timed_conf(conf: str, listen: int, admin: int, pid: Path) -> str:
    """A copy of the edge's config on other ports whose hop-model Lua hooks time themselves."""
    lines = variant_conf(conf, (), listen, admin, pid).splitlines()
    start, end = _infer_block(lines, HOP_MODEL)
    for i in range(start, end):
        for hook, call in _TIMED.items():
            if lines[i].strip().startswith(hook):
                phase = hook.split("_")[0]
                indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
                lines[i] = (
                    f"{indent}{hook}{{ local c, d = os.clock, ngx.shared.bench_phases; "
                    f"local t = c(); {call.format(m=HOP_MODEL)}; local u = c(); local v = c(); "
                    f'd:incr("{phase}", u - t, 0); d:incr("{phase}_n", 1, 0); '
                    f'd:incr("clock", v - u, 0) }}'
                )
    http = next(i for i, line in enumerate(lines) if line.strip() == "http {")
    lines.insert(http + 1, "    lua_shared_dict bench_phases 1m;")
    root = next(i for i, line in enumerate(lines) if line.strip() == "location = /v2 {")
    lines.insert(
        root,
        f"        location = {PHASES_PATH} {{ content_by_lua_block {{ local d = "
        'ngx.shared.bench_phases; ngx.say(require("cjson").encode({access = d:get("access"), '
        'access_n = d:get("access_n"), log = d:get("log"), log_n = d:get("log_n"), '
        'clock = d:get("clock")})) } }',
    )
    return "\n".join(lines) + "\n"
