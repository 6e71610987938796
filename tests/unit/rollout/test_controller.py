"""The controller's pure parts: step weights, noticing a hand on the controls, the persisted
state, the promoted release and the status text."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from scripts.release import parse_release
from scripts.rollout import state as st
from scripts.rollout.controller import interference, promoted_release, same_weights, weights_at
from scripts.rollout.counts import Histogram, Signals
from scripts.rollout.report import describe
from scripts.runtime import RuntimeDir


def make_state(**kw: object) -> st.RolloutState:
    base: dict[str, object] = {
        "model": "digits",
        "canary": "3",
        "stable": {"1": 100.0},
        "steps": [1, 5, 25, 50, 100],
        "interval": 60.0,
        "min_requests": 200,
        "analysis": {},
        "revision": 4,
    }
    return st.RolloutState(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stable", "percent", "expected"),
    [
        ({"1": 100.0}, 5, {"1": 95.0, "3": 5.0}),
        ({"1": 90.0, "2": 10.0}, 25, {"1": 67.5, "2": 7.5, "3": 25.0}),
        ({"1": 1.0, "2": 1.0, "4": 1.0}, 1, {"1": 33.0, "2": 33.0, "4": 33.0, "3": 1.0}),
        ({"1": 100.0}, 0, {"1": 100.0, "3": 0.0}),
        ({"1": 100.0}, 100, {"1": 0.0, "3": 100.0}),
    ],
)
def test_step_weights_share_the_rest_as_the_release_did(
    stable: dict[str, float], percent: float, expected: dict[str, float]
) -> None:
    weights = weights_at("3", stable, percent)
    assert weights == expected
    assert sum(weights.values()) == pytest.approx(100.0)
    assert all(round(w, 1) == w for w in weights.values())


def live(override: object, killed: bool = False, killed_version: str | None = None) -> dict:
    return {
        "killed": killed,
        "versions": {v: {"killed": v == killed_version} for v in ("1", "3")},
        "weights": {"override": override},
    }


def test_what_it_set_is_no_interference() -> None:
    state = make_state(set_weights={"1": 95.0, "3": 5.0})
    assert interference(live({"1": 95, "3": 5}), state) is None
    assert same_weights({"1": 95, "3": 5, "2": 0}, {"1": 95.0, "3": 5.0})


@pytest.mark.parametrize(
    ("live_state", "said"),
    [
        (live({"1": 50, "3": 50}), "changed it by hand"),
        (live(None), "the release's (no override)"),
        (live({"1": 95, "3": 5}, killed=True), "kill switch of digits is on"),
        (live({"1": 95, "3": 5}, killed_version="3"), "kill switch of digits/3 is on"),
    ],
)
def test_a_kill_switch_or_a_manual_split_is_named(live_state: dict, said: str) -> None:
    reason = interference(live_state, make_state(set_weights={"1": 95.0, "3": 5.0}))
    assert reason is not None and said in reason


def test_the_state_survives_a_round_trip_with_its_windows(tmp_path: Path) -> None:
    runtime = RuntimeDir(tmp_path)
    reading = {"3": Signals(10, 1, 2, Histogram((0.1, math.inf), (4.0, 6.0)), None, {"1": 3.0})}
    state = make_state(baseline=st.signals_to_json(reading))
    state.record("step", "canary 3 at 1%")
    st.save_state(runtime, state)
    again = st.load_state(runtime, "digits")
    assert again is not None and again.decisions[0]["text"] == "canary 3 at 1%"
    assert st.signals_from_json(again.baseline or {}) == reading


def test_a_finished_rollout_is_kept_beside_the_next(tmp_path: Path) -> None:
    runtime = RuntimeDir(tmp_path)
    state = make_state(status=st.PROMOTED, started=0.0)
    st.save_state(runtime, state)
    kept = st.archive_state(runtime, state)
    assert kept.name == "digits-19700101T000000.json"
    assert json.loads(kept.read_text())["status"] == st.PROMOTED


def test_an_unreadable_state_says_which_file_and_what_to_do(tmp_path: Path) -> None:
    runtime = RuntimeDir(tmp_path)
    st.rollouts_dir(runtime).mkdir()
    st.state_path(runtime, "digits").write_text("{not json")
    with pytest.raises(st.StateError, match=r"digits\.json cannot be read.*Move the file away"):
        st.load_state(runtime, "digits")


def test_a_command_from_another_shell_is_taken_once(tmp_path: Path) -> None:
    runtime = RuntimeDir(tmp_path)
    ident = st.send_control(runtime, "digits", "pause", "load test")
    control = st.take_control(runtime, "digits")
    assert control == {"id": ident, "command": "pause", "reason": "load test"}
    assert st.take_control(runtime, "digits") is None


def test_only_one_controller_holds_a_model(tmp_path: Path) -> None:
    runtime = RuntimeDir(tmp_path)
    with (
        st.controller_lock(runtime, "digits") as first,
        st.controller_lock(runtime, "digits") as second,
    ):
        assert first and not second


RELEASE = """\
revision: 4
models:
  digits:
    versions: {"1": {}, "3": {}}
    release: {split: {"1": 100}, sticky_key: header:X-User-Id}
    rollout: {canary: "3", interval: 2s}
"""


def test_the_promoted_release_is_valid_and_says_what_to_commit(tmp_path: Path) -> None:
    runtime = RuntimeDir(tmp_path)
    revision = runtime.revisions / "r4-x"
    revision.mkdir(parents=True)
    (revision / "release.yaml").write_text(RELEASE)
    (revision / "settings.json").write_text('{"revision": 4, "checksum": "c", "wiring": "w"}')
    runtime.current.symlink_to(revision)
    number, path, change = promoted_release(runtime, make_state())
    assert number == 5
    release = parse_release(Path(path).read_text())
    assert release.revision == 5
    assert release.models["digits"].weights() == {"1": 0.0, "3": 100.0}
    assert release.models["digits"].rollout is None
    assert release.models["digits"].release.sticky_key == "header:X-User-Id"
    assert 'models.digits.release.split: {"1": 0, "3": 100}' in change
    assert "revision: 5" in change and "rollout: remove it" in change
    assert "shadow" not in change


@pytest.mark.parametrize("shadowed, dropped", [("3", True), ("1", False)])
def test_a_promotion_drops_a_shadow_of_the_promoted_version_only(
    tmp_path: Path, shadowed: str, dropped: bool
) -> None:
    runtime = RuntimeDir(tmp_path)
    revision = runtime.revisions / "r4-x"
    revision.mkdir(parents=True)
    text = RELEASE.replace(
        "    rollout:", f'    shadow: {{version: "{shadowed}", sample: 10%}}\n    rollout:'
    )
    (revision / "release.yaml").write_text(text)
    (revision / "settings.json").write_text('{"revision": 4, "checksum": "c", "wiring": "w"}')
    runtime.current.symlink_to(revision)
    _, path, change = promoted_release(runtime, make_state())
    release = parse_release(Path(path).read_text())
    assert (release.models["digits"].shadow is None) == dropped
    assert ("models.digits.shadow: remove it" in change) == dropped


def test_status_says_what_happens_and_why() -> None:
    state = make_state(window_started=100.0)
    state.record("pass", "step 1 (1%) passed: server errors canary 0.00% ...")
    state.step = 1
    text = describe(state, controller_running=True, now=130.0)
    assert "RUNNING step 2 of 5: canary at 5%; window open 30s, judged every 60s" in text
    assert "passed: server errors" in text and "steps passed: 1%" in text
    paused = make_state(status=st.PAUSED, reason="the kill switch of digits/3 is on")
    text = describe(paused, controller_running=True, now=0)
    assert "PAUSED at step 1 (1%): the kill switch of digits/3 is on" in text
    assert "weir rollout resume digits" in text
    assert "NO CONTROLLER RUNS" in describe(make_state(), controller_running=False, now=0)
