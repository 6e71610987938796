"""Sidecar pools in the release: good shapes, and refusals that say what to write instead."""

from __future__ import annotations

import pytest

from scripts.release import ReleaseError, parse_release

BASE = """
revision: 3
sidecars:
  devices: cpu
  pools:
{pools}
models:
  digits: {{versions: {{"1": {{}}}}{digits}}}
  cnn: {{versions: {{"1": {{}}}}{cnn}}}
"""


def release(pools: str = "", digits: str = "", cnn: str = ""):
    text = BASE.format(pools=pools or "    {}", digits=digits, cnn=cnn)
    if not pools:
        text = text.replace("  pools:\n    {}\n", "")
    return parse_release(text, "r.yaml")


def refusal(**parts: str) -> str:
    with pytest.raises(ReleaseError) as caught:
        release(**parts)
    return str(caught.value)


def test_without_pools_every_model_is_in_the_default_pool_with_the_sidecars_defaults() -> None:
    r = release()
    assert list(r.pools()) == ["default"]
    assert r.pools()["default"].model_dump() == {"workers": None, "cpus": None, "memory": None}
    assert r.pool_models("default") == ["digits", "cnn"]
    assert r.pools()["default"].intra_op_threads is None


def test_pools_with_their_settings_and_models() -> None:
    r = release(
        "    light: {workers: 1, cpus: [0], memory: 1g}\n    heavy: {workers: 2, cpus: [1, 2, 3]}",
        cnn=", pool: heavy",
        digits=", pool: light",
    )
    assert list(r.pools()) == ["light", "heavy"]
    light, heavy = r.pools()["light"], r.pools()["heavy"]
    assert (light.workers, light.cpus, light.memory) == (1, [0], 1024**3)
    assert heavy.memory is None
    assert light.intra_op_threads == 1
    assert heavy.intra_op_threads == 1  # 3 CPUs over 2 workers: never more threads than CPUs
    assert r.pool_models("heavy") == ["cnn"]


def test_the_default_pool_runs_only_with_a_model_in_it_and_may_be_configured() -> None:
    r = release("    default: {memory: 512m}\n    heavy: {cpus: [1]}", cnn=", pool: heavy")
    assert list(r.pools()) == ["default", "heavy"]
    assert r.pools()["default"].memory == 512 * 1024**2
    only_heavy = release(
        "    heavy: {}\n    unused: {}", cnn=", pool: heavy", digits=", pool: heavy"
    )
    assert list(only_heavy.pools()) == ["heavy"]  # neither default nor unused runs


def test_a_model_in_an_undeclared_pool_names_the_pool_and_the_declared_ones() -> None:
    message = refusal(pools="    light: {}\n    heavy: {}", cnn=", pool: haevy")
    assert "r.yaml:" in message and "models.cnn.pool" in message
    assert "pool haevy, which sidecars.pools does not declare (it declares light, heavy)" in message
    assert "leave pool out (the default pool)" in message
    assert "it declares none" in refusal(digits=", pool: light")


@pytest.mark.parametrize(
    ("pools", "expected"),
    [
        ("    Heavy: {}", "pool name 'Heavy' is not allowed"),
        ("    heavy_1: {}", "pool name 'heavy_1' is not allowed"),
        ("    heavy-: {}", "pool name 'heavy-' is not allowed"),
        (f"    {'x' * 33}: {{}}", "at most 32 characters"),
        ("    heavy: {workers: 0}", "sidecars.pools.heavy.workers"),
        ("    heavy: {cpus: []}", "list CPU indexes once each"),
        ("    heavy: {cpus: [1, 1]}", "list CPU indexes once each"),
        ("    heavy: {cpus: [-1]}", "sidecars.pools.heavy.cpus.0"),
        ("    heavy: {memory: 10m}", "a size must lie between 64m and 1024g"),
        ("    heavy: {memory: lots}", "expected a size such as 512k, 16m or 1g"),
        ("    heavy: {threads: 4}", "unknown key 'threads'; allowed keys: workers, cpus, memory"),
    ],
)
def test_bad_pools_are_refused_with_what_is_allowed(pools: str, expected: str) -> None:
    assert expected in refusal(pools=pools)


def test_a_pool_name_on_a_model_is_checked_like_a_declared_one() -> None:
    assert "expected a pool name" in refusal(cnn=', pool: "a;b"')
    assert "expected a pool name" in refusal(cnn=", pool: 3")
