"""Shadow traffic in the release: its defaults, and errors at the shadow's own line."""

from __future__ import annotations

import pytest

from scripts.release import ReleaseError, parse_release

HEAD = 'revision: 3\nmodels:\n  digits:\n    versions: {"1": {}, "3": {}}\n'


def _parse(shadow: str, head: str = HEAD):
    return parse_release(head + "    shadow: " + shadow + "\n", "r.yaml")


def _error(shadow: str, head: str = HEAD) -> str:
    with pytest.raises(ReleaseError) as info:
        _parse(shadow, head)
    return str(info.value)


def test_the_documented_shape_parses() -> None:
    shadow = _parse('{version: "3", sample: 10%}').models["digits"].shadow
    assert shadow is not None
    assert shadow.version == "3" and shadow.sample == pytest.approx(0.1)


def test_the_sample_defaults_to_ten_percent() -> None:
    shadow = _parse('{version: "3"}').models["digits"].shadow
    assert shadow is not None and shadow.sample == pytest.approx(0.1)


def test_a_release_without_shadow_has_none() -> None:
    assert parse_release(HEAD).models["digits"].shadow is None


def test_an_unknown_key_names_its_line() -> None:
    text = _error('{version: "3", share: 10%}')
    assert "r.yaml:5: models.digits.shadow.share: unknown key" in text


def test_a_shadow_that_is_no_version_is_named_at_its_line() -> None:
    text = _error('{version: "4"}')
    assert "r.yaml:5: models.digits.shadow.version" in text and "versions: 1, 3" in text


@pytest.mark.parametrize(("sample", "problem"), [("0%", "greater than 0"), ("0.1", "with %")])
def test_a_sample_is_a_percentage_over_zero(sample: str, problem: str) -> None:
    assert problem in _error(f'{{version: "3", sample: {sample}}}')


def test_a_shadow_served_by_other_sidecars_is_refused() -> None:
    head = (
        "revision: 3\nmodels:\n  digits:\n"
        '    versions: {"1": {}, "3": {upstreams: ["127.0.0.1:9000"]}}\n'
    )
    text = _error('{version: "3"}', head)
    assert "models.digits.shadow.version" in text and "same sidecars" in text
