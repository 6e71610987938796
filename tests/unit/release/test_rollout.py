"""The rollout policy in the release: defaults, bounds, and errors at the rollout's own line."""

from __future__ import annotations

import pytest

from scripts.release import ReleaseError, parse_release

HEAD = 'revision: 3\nmodels:\n  digits:\n    versions: {"1": {}, "3": {}}\n'
SPLIT = '    release: {split: {"1": 100}}\n'


def _parse(rollout: str, split: str = SPLIT):
    return parse_release(HEAD + split + "    rollout:\n" + rollout, "r.yaml")


def _error(rollout: str, split: str = SPLIT) -> str:
    with pytest.raises(ReleaseError) as info:
        _parse(rollout, split)
    return str(info.value)


def test_a_canary_alone_takes_every_default() -> None:
    rollout = _parse('      canary: "3"\n').models["digits"].rollout
    assert rollout is not None
    assert rollout.steps == [1, 5, 25, 50, 100]
    assert rollout.interval == 60 and rollout.min_requests == 200
    analysis = rollout.analysis
    assert analysis.max_error_ratio_delta == pytest.approx(0.005)
    assert analysis.max_p99_ratio == 1.3 and analysis.p99_slack == pytest.approx(0.005)
    assert analysis.max_confidence_psi == 0.2 and analysis.max_class_psi == 0.2
    assert analysis.min_shadow_agreement == pytest.approx(0.95)


def test_the_documented_shape_parses() -> None:
    rollout = (
        _parse(
            '      {canary: "3", steps: [1, 5, 25, 50, 100], interval: 2s, min_requests: 50,\n'
            "       analysis: {max_error_ratio_delta: 1.5%, max_p99_ratio: 2,\n"
            "                  max_class_psi: 0.1}}\n"
        )
        .models["digits"]
        .rollout
    )
    assert rollout is not None
    assert rollout.interval == 2 and rollout.min_requests == 50
    assert rollout.analysis.max_error_ratio_delta == pytest.approx(0.015)


def test_a_release_without_rollout_has_none() -> None:
    assert parse_release(HEAD + SPLIT).models["digits"].rollout is None


def test_an_unknown_key_names_its_line_and_the_allowed_keys() -> None:
    text = _error('      canary: "3"\n      analysis: {max_p99: 2}\n')
    assert "r.yaml:8: models.digits.rollout.analysis.max_p99: unknown key" in text
    assert "max_p99_ratio" in text


def test_a_canary_that_is_no_version_is_named_at_its_line() -> None:
    text = _error('      canary: "4"\n')
    assert "r.yaml:7: models.digits.rollout.canary" in text and "versions: 1, 3" in text


def test_a_canary_with_no_stable_version_beside_it_is_refused() -> None:
    text = _error('      canary: "3"\n', split='    release: {split: {"1": 0, "3": 100}}\n')
    assert "no stable version" in text


def test_without_a_split_the_newest_version_is_no_stable_for_itself() -> None:
    assert "no stable version" in _error('      canary: "3"\n', split="")


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        ("[5, 1, 100]", "must increase"),
        ("[1, 5, 50]", "last step must be 100"),
        ("[0, 100]", "greater than 0"),
        ("[1.25, 100]", "at most 1 decimal"),
        ("[]", "at least 1"),
    ],
)
def test_steps_increase_and_end_at_100(steps: str, problem: str) -> None:
    text = _error(f'      canary: "3"\n      steps: {steps}\n')
    assert "models.digits.rollout.steps" in text and problem in text


@pytest.mark.parametrize("value", ["0.5", "0.5 %", "101%", "half", "1e-3%"])
def test_a_ratio_bound_is_a_percentage_with_its_sign(value: str) -> None:
    text = _error(f'      canary: "3"\n      analysis: {{max_error_ratio_delta: "{value}"}}\n')
    assert "max_error_ratio_delta" in text and "%" in text


def test_a_p99_ratio_below_one_is_refused() -> None:
    assert "max_p99_ratio" in _error('      canary: "3"\n      analysis: {max_p99_ratio: 0.9}\n')


def test_an_interval_is_a_duration_of_at_least_a_second() -> None:
    assert "between 1s and 24h" in _error('      canary: "3"\n      interval: 200ms\n')
    assert "duration" in _error('      canary: "3"\n      interval: soon\n')
