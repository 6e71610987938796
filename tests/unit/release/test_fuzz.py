"""Property: whatever text, bytes or YAML structure the loader is given, it returns a Release or
raises ReleaseError (a message with the file and line), never anything else.

Fast by default (200 examples a property); `WEIR_FUZZ=long` runs 20 times as many.
"""

from __future__ import annotations

import os

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scripts.release import Release, ReleaseError, parse_release

EXAMPLES = 4000 if os.environ.get("WEIR_FUZZ") == "long" else 200
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KEYS = [
    "revision", "edge", "sidecars", "models", "digits", "versions", "1", "2", "release",
    "split", "sticky_key", "force_header", "rate_limit", "rate", "burst", "key", "delay",
    "breaker", "failures", "window", "open_for", "max_open_for", "probes", "fallback",
    "version", "status", "body", "timeout", "batching", "max_batch_size", "upstreams",
    "listen", "admin_listen", "max_body", "workers", "devices", "admin_auth", "<<",
]  # fmt: skip
WORDS = [
    "1", "2", "1\n", "500ms", "2s", "16m", "500r/s", "header:X-User-Id", "remote_addr",
    "127.0.0.1:9901", "0.0.0.0:8080", "auto", "cpu", "open", "token", "X-Weir-Version",
    "unix:/tmp/a.sock", "2024-13-01", "1_000", "0x10", ".nan", "~", "yes", "&a", "*a",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=20),
)
structures = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=5),
    ),
    max_leaves=40,
)
VALID = (
    "revision: 3\nedge: {listen: 8080, max_body: 16m}\nmodels:\n  digits:\n"
    "    versions: {1: {}, 2: {batching: {max_batch_size: 8}}}\n"
    "    release: {split: {1: 90, 2: 10}, force_header: X-Weir-Version}\n"
    "    fallback: {status: 200, body: {x: 1}}\n    timeout: 2s\n"
)


def _loads_or_refuses(text: str | bytes) -> None:
    try:
        result = parse_release(text, "fuzz.yaml")
    except ReleaseError as exc:
        assert str(exc).startswith("fuzz.yaml"), str(exc)
    else:
        assert isinstance(result, Release)


@FUZZ
@given(st.text(max_size=400))
def test_any_text(text: str) -> None:
    _loads_or_refuses(text)


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes(data: bytes) -> None:
    _loads_or_refuses(data)


@FUZZ
@given(structures)
def test_any_yaml_structure(data: object) -> None:
    _loads_or_refuses(yaml.safe_dump(data, allow_unicode=True))


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS), structures, max_size=6))
def test_any_structure_under_a_valid_release(extra: dict[str, object]) -> None:
    # Mutations of a valid release reach deep into the schema's validators.
    base = yaml.safe_load(VALID)
    base["models"]["digits"].update(extra)
    _loads_or_refuses(yaml.safe_dump(base, allow_unicode=True))


@FUZZ
@given(st.integers(min_value=0, max_value=len(VALID)), st.text(max_size=12))
def test_any_edit_of_a_valid_release(at: int, inserted: str) -> None:
    _loads_or_refuses(VALID[:at] + inserted + VALID[at:])
