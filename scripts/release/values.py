"""The release file's value types: names, versions, durations, sizes, listeners.

Every value that reaches an nginx template is checked here first, against a pattern that cannot
carry whitespace, `;`, braces, quotes or `$`: a release cannot inject nginx directives. Every
pattern is anchored with `\\A` and `\\Z` and used with `fullmatch`: `$` would match before a
trailing newline, so `"1\\n"` would pass as a version (tests/unit/release/test_patterns.py).
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,62}\Z")
# A sidecar pool's name becomes part of a Kubernetes container name (`sidecar-<pool>-<device>`,
# a DNS label of at most 63 characters) and of file names: a DNS label of at most 32.
POOL_RE = re.compile(r"\A[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?\Z")
VERSION_RE = re.compile(r"\A[1-9][0-9]{0,8}\Z")
HEADER_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9-]{0,62}\Z")
DURATION_RE = re.compile(r"\A([0-9]{1,6})(ms|s|m|h)\Z")
SIZE_RE = re.compile(r"\A([0-9]{1,6})([kmg]?)\Z", re.IGNORECASE)
RATE_RE = re.compile(r"\A([1-9][0-9]{0,6})r/([sm])\Z")
HOSTPORT_RE = re.compile(
    r"\A(?P<host>[A-Za-z0-9.-]{1,253}|\[[0-9a-fA-F:]{2,39}\]):(?P<port>[0-9]{1,5})\Z"
)
UNIX_RE = re.compile(r"\Aunix:/[A-Za-z0-9_./-]{1,200}\Z")
LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")


def parse_duration(value: Any) -> float:
    """'500ms' | '2s' | '1m' | '1h' -> seconds."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("expected a duration such as 500ms, 2s, 1m")
    text = f"{value}s" if isinstance(value, int) else value
    match = DURATION_RE.fullmatch(text)
    if not match:
        raise ValueError("expected a duration such as 500ms, 2s, 1m or 1h")
    number, unit = int(match.group(1)), match.group(2)
    seconds = number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    if seconds <= 0:
        raise ValueError("a duration must be longer than zero")
    return seconds


def parse_size(value: Any, low: str = "1k", high: str = "4g") -> int:
    """'16m' | '512k' | 1048576 -> bytes, between `low` and `high` (sizes themselves)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("expected a size such as 512k, 16m or 1g")
    match = SIZE_RE.fullmatch(str(value))
    if not match:
        raise ValueError("expected a size such as 512k, 16m or 1g")
    number, unit = int(match.group(1)), match.group(2).lower()
    size = number * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]
    if not _bytes(low) <= size <= _bytes(high):
        raise ValueError(f"a size must lie between {low} and {high}")
    return size


def _bytes(size: str) -> int:
    return int(size[:-1]) * {"k": 1024, "m": 1024**2, "g": 1024**3}[size[-1]]


def parse_memory(value: Any) -> int:
    """A memory limit: '512m' | '2g' -> bytes. Below 64m no sidecar with a model even starts."""
    return parse_size(value, low="64m", high="1024g")


# A placeholder answer stands in for the model: 200 (a default prediction), 429 (come back
# later) or a server error a client retries on. 204 and 3xx cannot carry the JSON body, 4xx
# other than 429 would blame the client for the model's outage, 599 is no status at all.
FALLBACK_STATUSES = (200, 429, 500, 502, 503, 504)
FALLBACK_BODY_BYTES = 64 * 1024


def _check_json(value: Any, depth: int = 0) -> None:
    """Only what JSON can say: a YAML date or a NaN would fail the render, not the validation."""
    if depth > 16:
        raise ValueError("the fallback body nests deeper than 16 levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"fallback body keys are strings: quote {key!r}")
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("JSON has no NaN or Infinity: use a number or null")
    elif not (value is None or isinstance(value, str | int | bool)):
        raise ValueError(
            f"{type(value).__name__} {value!r} is not JSON: quote it to make it a string"
        )


def check_fallback_body(value: Any) -> Any:
    """A fallback body: JSON values only, and small."""
    _check_json(value)
    size = len(json.dumps(value, separators=(",", ":")).encode())
    if size > FALLBACK_BODY_BYTES:
        raise ValueError(
            f"the fallback body is {size} bytes as JSON, over {FALLBACK_BODY_BYTES}: a "
            "placeholder is small (the edge keeps it in shared memory)"
        )
    return value


def check_pool_name(value: Any) -> Any:
    if not isinstance(value, str) or not POOL_RE.fullmatch(value):
        raise ValueError(
            "expected a pool name: lowercase letters, digits and -, as declared under "
            "sidecars.pools (or default)"
        )
    return value


PoolName = Annotated[str, BeforeValidator(check_pool_name)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
MemorySize = Annotated[int, BeforeValidator(parse_memory)]


def version_key(value: Any) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not VERSION_RE.fullmatch(text):
        raise ValueError(f"version {value!r} is not allowed: versions are positive integers")
    return text


def check_listen(value: Any, *, loopback: bool) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{'127.0.0.1' if loopback else '0.0.0.0'}:{value}"
    if not isinstance(value, str):
        raise ValueError("expected a port (8080) or host:port (127.0.0.1:8080)")
    match = HOSTPORT_RE.fullmatch(value)
    if not match or not 1 <= int(match.group("port")) <= 65535:
        raise ValueError("expected a port (8080) or host:port (127.0.0.1:8080), port 1-65535")
    if loopback and match.group("host") not in LOOPBACK_HOSTS:
        raise ValueError("the admin listener must be on loopback: 127.0.0.1:PORT or [::1]:PORT")
    return value


def check_key(value: str, plain: tuple[str, ...]) -> str:
    """A per-client key: one of `plain`, or header:NAME."""
    if value in plain:
        return value
    if value.startswith("header:") and HEADER_RE.fullmatch(value[7:]):
        return value
    raise ValueError(f"expected {', '.join(plain)} or header:NAME (NAME: letters, digits and -)")


def check_upstreams(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("name at least one upstream, or leave the key out")
    for item in value:
        hostport = HOSTPORT_RE.fullmatch(item)
        port_ok = hostport is not None and 1 <= int(hostport.group("port")) <= 65535
        if not (UNIX_RE.fullmatch(item) or port_ok):
            raise ValueError(
                f"upstream {item!r} is not allowed: use host:port (127.0.0.1:9000) "
                "or unix:/absolute/path.sock (letters, digits, _ . / - only)"
            )
    if len(set(value)) != len(value):
        raise ValueError("an upstream is listed twice")
    return value
