"""Shadow agreement in a rollout's analysis: the canary against stable on the same requests."""

from __future__ import annotations

import pytest

from scripts.release.rollout import Analysis
from scripts.rollout.analysis import FAIL, INCONCLUSIVE, PASS, agreement, check_shadow, judge
from scripts.rollout.counts import Signals, combine, window
from scripts.rollout.signals import parse_text
from scripts.rollout.stats import agreement_upper

BOUNDS = Analysis()  # at least 95% on 100 rows


def test_identical_answers_pass_once_enough_rows_were_compared() -> None:
    assert check_shadow(BOUNDS, 100, 100).verdict == PASS
    few = check_shadow(BOUNDS, 40, 40)
    assert few.verdict == INCONCLUSIVE and "only 40 of 100" in few.text


def test_a_permuted_canary_fails_on_a_handful_of_rows() -> None:
    failed = check_shadow(BOUNDS, 2, 20)
    assert failed.verdict == FAIL and "10.00% (2/20 rows), under 95.00%" in failed.text


def test_a_little_under_the_bound_on_few_rows_holds_for_more() -> None:
    held = check_shadow(BOUNDS, 90, 100)
    assert held.verdict == INCONCLUSIVE and "by chance" in held.text
    assert check_shadow(BOUNDS, 9000, 10000).verdict == FAIL


def test_no_rows_compared_is_inconclusive_never_a_pass() -> None:
    assert check_shadow(BOUNDS, 0, 0).verdict == INCONCLUSIVE


def test_a_canary_at_the_bound_rarely_fails_by_chance() -> None:
    # The Wilson upper end at z 3.09 over the observed rate: at the bound's own rate, it is
    # above the bound, so a canary that truly agrees 95% of the time is not failed.
    upper = agreement_upper(95, 100)
    assert upper is not None and upper > 0.95
    assert agreement_upper(0, 0) is None


def test_the_verdict_fails_on_agreement_alone() -> None:
    stable = Signals(1000, classes={"1": 1000}, shadow_compared={"3": 100}, shadow_agreed={"3": 9})
    canary = Signals(1000, classes={"1": 1000})
    verdict = judge(
        BOUNDS, 200, stable, canary, shadow=agreement({"1": stable, "3": canary}, "3", ["1"])
    )
    assert [c.name for c in verdict.failed] == ["shadow"]


def test_agreement_sums_both_directions_over_every_stable_version() -> None:
    signals = {
        "1": Signals(shadow_compared={"3": 10}, shadow_agreed={"3": 9}),
        "2": Signals(shadow_compared={"3": 5, "4": 7}, shadow_agreed={"3": 5, "4": 1}),
        "3": Signals(shadow_compared={"1": 4}, shadow_agreed={"1": 4}),
    }
    assert agreement(signals, "3", ["1", "2"]) == (18, 19)


def test_windows_and_sums_carry_the_shadow_counts() -> None:
    early = Signals(10, shadow_compared={"3": 5}, shadow_agreed={"3": 5})
    late = Signals(30, shadow_compared={"3": 25}, shadow_agreed={"3": 20})
    delta = window(early, late)
    assert delta is not None
    assert delta.shadow_compared == {"3": 20} and delta.shadow_agreed == {"3": 15}
    assert window(late, early) is None  # the counters went back: a restart
    assert combine([delta, delta]).shadow_compared == {"3": 40}


def test_the_sidecars_counters_become_signals() -> None:
    text = (
        "# TYPE weir_shadow_comparisons_total counter\n"
        'weir_shadow_comparisons_total{model="digits",version="1",shadow="3"} 50\n'
        "# TYPE weir_shadow_agreements_total counter\n"
        'weir_shadow_agreements_total{model="digits",version="1",shadow="3"} 45\n'
        'weir_shadow_agreements_total{model="other",version="1",shadow="3"} 7\n'
    )
    signals = parse_text([text], "digits")
    assert signals["1"].shadow_compared == {"3": 50}
    assert signals["1"].shadow_agreed == {"3": 45}


@pytest.mark.parametrize("compared", [100, 1000])
def test_the_bound_itself_passes(compared: int) -> None:
    assert check_shadow(BOUNDS, 0.95 * compared, compared).verdict == PASS
