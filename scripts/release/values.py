"""The release file's value types: names, versions, durations, sizes, listeners.

Every value that reaches an nginx template is checked here first, against a pattern that cannot
carry whitespace, `;`, braces, quotes or `$`: a release cannot inject nginx directives.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
VERSION_RE = re.compile(r"^[1-9][0-9]{0,8}$")
HEADER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")
DURATION_RE = re.compile(r"^([0-9]{1,6})(ms|s|m|h)$")
SIZE_RE = re.compile(r"^([0-9]{1,6})([kmg]?)$", re.IGNORECASE)
RATE_RE = re.compile(r"^([1-9][0-9]{0,6})r/([sm])$")
HOSTPORT_RE = re.compile(
    r"^(?P<host>[A-Za-z0-9.-]{1,253}|\[[0-9a-fA-F:]{2,39}\]):(?P<port>[0-9]{1,5})$"
)
UNIX_RE = re.compile(r"^unix:/[A-Za-z0-9_./-]{1,200}$")
LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")


def parse_duration(value: Any) -> float:
    """'500ms' | '2s' | '1m' | '1h' -> seconds."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("expected a duration such as 500ms, 2s, 1m")
    text = f"{value}s" if isinstance(value, int) else value.strip()
    match = DURATION_RE.match(text)
    if not match:
        raise ValueError("expected a duration such as 500ms, 2s, 1m or 1h")
    number, unit = int(match.group(1)), match.group(2)
    seconds = number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    if seconds <= 0:
        raise ValueError("a duration must be longer than zero")
    return seconds


def parse_size(value: Any) -> int:
    """'16m' | '512k' | 1048576 -> bytes."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("expected a size such as 512k, 16m or 1g")
    match = SIZE_RE.match(str(value).strip())
    if not match:
        raise ValueError("expected a size such as 512k, 16m or 1g")
    number, unit = int(match.group(1)), match.group(2).lower()
    size = number * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]
    if not 1024 <= size <= 4 * 1024**3:
        raise ValueError("a size must lie between 1k and 4g")
    return size


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


def version_key(value: Any) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not VERSION_RE.match(text):
        raise ValueError(f"version {value!r} is not allowed: versions are positive integers")
    return text


def check_listen(value: Any, *, loopback: bool) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{'127.0.0.1' if loopback else '0.0.0.0'}:{value}"
    if not isinstance(value, str):
        raise ValueError("expected a port (8080) or host:port (127.0.0.1:8080)")
    match = HOSTPORT_RE.match(value)
    if not match or not 1 <= int(match.group("port")) <= 65535:
        raise ValueError("expected a port (8080) or host:port (127.0.0.1:8080), port 1-65535")
    if loopback and match.group("host") not in LOOPBACK_HOSTS:
        raise ValueError("the admin listener must be on loopback: 127.0.0.1:PORT or [::1]:PORT")
    return value
