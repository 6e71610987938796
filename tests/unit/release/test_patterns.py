"""Every validation pattern of the release package matches whole values only: `$` would match
before a trailing newline, and `"1\n"` would pass as a version."""

from __future__ import annotations

import re

import pytest

from scripts.release import schema, values

# One value each pattern accepts; a new pattern without a sample fails the first test.
SAMPLES = {
    "NAME_RE": "digits",
    "POOL_RE": "heavy-1",
    "VERSION_RE": "12",
    "HEADER_RE": "X-Weir-Version",
    "DURATION_RE": "500ms",
    "SIZE_RE": "16m",
    "RATE_RE": "500r/s",
    "HOSTPORT_RE": "127.0.0.1:8080",
    "UNIX_RE": "unix:/run/weir/sidecar-0.sock",
}


def _patterns() -> dict[str, re.Pattern[str]]:
    found = {}
    for module in (values, schema):
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                found[name] = value
    return found


def test_every_pattern_has_a_sample() -> None:
    assert set(_patterns()) == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("tail", ["\n", "\r\n", " ", "\n;"])
def test_no_pattern_accepts_a_trailing_newline_or_space(name: str, tail: str) -> None:
    pattern = _patterns()[name]
    assert pattern.fullmatch(SAMPLES[name])
    # However a caller uses it: match, fullmatch, or search.
    assert not pattern.match(SAMPLES[name] + tail)
    assert not pattern.fullmatch(SAMPLES[name] + tail)
    assert not pattern.search(SAMPLES[name] + tail)
    assert not pattern.match(tail + SAMPLES[name])
