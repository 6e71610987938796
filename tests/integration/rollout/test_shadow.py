"""Shadow traffic through a real `weir up` (nginx + Lua edge, a CPU sidecar, real ONNX models):
identical versions agree on every row, the permuted one on about a tenth; a client cannot ask
for shadow work; a slow shadow is shed while the clients' answers keep the live version's pace;
a shadow that fails every copy touches no breaker and no client; and a canary whose predictions
are all wrong but whose distributions do not move is rolled back on agreement alone."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests import rollout_models
from tests.integration.rollout import test_rollout as base
from tests.weir_up import READY_BANNER

# version -> how it is built from digits v1 (1 is the sample itself)
VERSIONS = {"3": "healthy", "4": "failing", "7": "permuted", "8": "slow"}
WAIT_S = 120


class ShadowStack(base.Stack):
    canaries = VERSIONS
    shadow = ""  # the release's models.digits.shadow, as YAML

    def release_file(self, rollout: str | None) -> Path:
        # The slow one computes one row per run (its warm-up too: a batch of 64 would take a while).
        versions = ", ".join(f'"{v}": {{}}' for v in ["1", *self.canaries] if v != "8")
        text = f"""\
revision: {self.revision}
edge: {{listen: 127.0.0.1:{self.port}, admin_listen: 127.0.0.1:{self.admin_port}}}
sidecars: {{devices: cpu}}
models:
  digits:
    versions: {{{versions}, "8": {{batching: {{max_batch_size: 1}}}}}}
    release: {{split: {{"1": 100}}, sticky_key: header:X-User-Id, force_header: X-Weir-Version}}
    breaker: {{failures: 3, window: 30s}}
    fallback: {{version: "3"}}
"""
        if self.shadow:
            text += f"    shadow: {self.shadow}\n"
        if rollout:
            text += f"    rollout: {rollout}\n"
        path = self.tmp / f"release-{self.revision}.yaml"
        path.write_text(text)
        return path

    def apply_shadow(self, shadow: str) -> None:
        self.shadow = shadow
        self.revision += 1
        done = self.weir("apply", str(self.release_file(None)))
        assert done.returncode == 0, done.stdout + done.stderr

    def sidecar_samples(self) -> list[tuple[str, dict[str, str], float]]:
        text = self.admin("GET", "/metrics/sidecars/cpu").text
        return [
            (s.name, s.labels, s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.labels.get("model") == "digits"
        ]

    def shadow_counts(self) -> dict[tuple[str, str, str], float]:
        """(metric, live version, shadow version) -> value, failures summed over reasons."""
        found: dict[tuple[str, str, str], float] = defaultdict(float)
        for name, labels, value in self.sidecar_samples():
            if name.startswith("weir_shadow_") and "le" not in labels:
                found[(name, labels["version"], labels["shadow"])] += value
        return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShadowStack]:
    stack = ShadowStack(tmp_path_factory.mktemp("shadow"))
    try:
        stack.wait_for_log(READY_BANNER)
        yield stack
    finally:
        stack.kill_tree()


def _send(
    stack: ShadowStack, count: int, poison: bool = False, **headers: str
) -> list[requests.Response]:
    url = f"http://127.0.0.1:{stack.port}/v2/models/digits/infer"
    bodies = rollout_models.digits_bodies(1 if poison else None)
    with requests.Session() as session:
        return [
            session.post(url, data=bodies[i % len(bodies)], headers=headers, timeout=30)
            for i in range(count)
        ]


def _settled(stack: ShadowStack, live: str, shadow: str, copies: float) -> dict[str, float]:
    """The pair's counters once every copy sent since `copies` were counted (compared, shed
    or failed): the copies finish after the clients' answers (bounded wait)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        counts = stack.shadow_counts()
        pair = {
            kind: counts.get((f"weir_shadow_{kind}_total", live, shadow), 0.0)
            for kind in ("comparisons", "agreements", "shed", "failures")
        }
        if pair["comparisons"] + pair["shed"] + pair["failures"] >= copies:
            return pair
        assert time.monotonic() < deadline, (pair, copies)
        time.sleep(0.2)


def test_identical_versions_agree_on_every_row_and_the_permuted_one_on_a_tenth(
    stack: ShadowStack,
) -> None:
    stack.apply_shadow('{version: "3", sample: 100%}')
    answers = _send(stack, 400)
    assert {a.status_code for a in answers} == {200}
    assert {a.headers["X-Weir-Model-Version"] for a in answers} == {"1"}
    same = _settled(stack, "1", "3", 400)
    assert same["failures"] == 0 and same["shed"] == 0, same
    assert same["agreements"] == same["comparisons"] == 400, same
    zero = sum(
        v
        for name, labels, v in stack.sidecar_samples()
        if name == "weir_shadow_max_abs_diff_bucket"
        and labels["shadow"] == "3"
        and labels["le"] == "0.0"
    )
    assert zero == 400  # the same graph: the very same numbers

    stack.apply_shadow('{version: "7", sample: 100%}')
    answers = _send(stack, 1000)
    assert {a.status_code for a in answers} == {200}
    permuted = _settled(stack, "1", "7", 1000)
    rate = permuted["agreements"] / permuted["comparisons"]
    print(
        f"identical: {same['agreements']:g}/{same['comparisons']:g}; permuted: "
        f"{permuted['agreements']:g}/{permuted['comparisons']:g} = {rate:.1%}"
    )
    assert permuted["comparisons"] == 1000
    assert 0.05 <= rate <= 0.2, permuted


def test_a_client_cannot_ask_for_shadow_work(stack: ShadowStack) -> None:
    stack.apply_shadow('{version: "3", sample: 100%}')
    before = stack.shadow_counts()
    answers = _send(stack, 50, **{"X-Weir-Shadow": "7"})
    assert {a.status_code for a in answers} == {200}
    _settled(stack, "1", "3", before[("weir_shadow_comparisons_total", "1", "3")] + 50)
    after = stack.shadow_counts()
    assert after[("weir_shadow_comparisons_total", "1", "7")] == before.get(
        ("weir_shadow_comparisons_total", "1", "7"), 0.0
    )
    # Pinned to the shadow version itself: nothing to copy.
    url = f"http://127.0.0.1:{stack.port}/v2/models/digits/versions/3/infer"
    requests.post(
        url, data=rollout_models.digits_bodies()[0], headers={"X-Weir-Shadow": "7"}, timeout=30
    )
    assert ("weir_shadow_comparisons_total", "3", "7") not in stack.shadow_counts()


def _histogram(stack: ShadowStack, name: str, version: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of one of the sidecar's histograms for a version."""
    return sorted(
        (float(labels["le"]), v)
        for n, labels, v in stack.sidecar_samples()
        if n == f"{name}_bucket" and labels["version"] == version
    )


def test_a_slow_shadow_is_shed_and_the_clients_keep_the_live_pace(stack: ShadowStack) -> None:
    stack.apply_shadow('{version: "8", sample: 100%}')
    live_before = _histogram(stack, "weir_request_duration_seconds", "1")
    answers = _send(stack, 60)
    assert {a.status_code for a in answers} == {200}
    assert {a.headers["X-Weir-Model-Version"] for a in answers} == {"1"}
    pair = _settled(stack, "1", "8", 60)
    assert pair["shed"] > 0, pair  # the bound held: not every copy was queued
    assert pair["failures"] == 0 and pair["agreements"] == pair["comparisons"], pair
    # The clients' answers never waited for a copy: the slowest live request of the run took
    # less than the fastest run of the shadow (both as the sidecar measured them).
    after = _histogram(stack, "weir_request_duration_seconds", "1")
    new = [(le, a - b) for (le, a), (_, b) in zip(after, live_before, strict=True)]
    slowest_live = min(le for le, count in new if count >= 60)
    shadow_runs = _histogram(stack, "weir_compute_duration_seconds", "8")
    fastest_shadow = max([0.0, *(le for le, count in shadow_runs if count == 0)])
    print(
        f"shed {pair['shed']:g} of 60; live requests all within {slowest_live}s, "
        f"every shadow run over {fastest_shadow}s"
    )
    assert slowest_live <= fastest_shadow, (new, shadow_runs)


def test_a_failing_shadow_touches_no_breaker_and_no_client(stack: ShadowStack) -> None:
    stack.apply_shadow('{version: "4", sample: 100%}')
    counts = stack.shadow_counts()
    failures_before = counts[("weir_shadow_failures_total", "1", "4")]
    shed_before = counts[("weir_shadow_shed_total", "1", "4")]
    answers = _send(stack, 30, poison=True)  # version 4 fails every one of these, 1 none
    assert {a.status_code for a in answers} == {200}
    assert {a.headers.get("X-Weir-Fallback", "") for a in answers} == {""}
    pair = _settled(stack, "1", "4", failures_before + shed_before + 30)
    # Every copy failed (or, while 8 were in flight, was shed): counted, and nowhere else.
    assert pair["comparisons"] == 0 and pair["failures"] - failures_before > 0, pair
    assert pair["failures"] - failures_before + pair["shed"] - shed_before == 30, pair
    status = stack.admin("GET", "/admin/models/digits").json()
    states = {v: s["breaker"]["state"] for v, s in status["versions"].items()}
    assert set(states.values()) == {"closed"}, states  # 30 failures; 3 would open one
    edge = [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(stack.admin("GET", "/metrics").text)
        for s in family.samples
        if s.labels.get("model") == "digits"
    ]
    assert sum(v for n, _, v in edge if n == "weir_edge_server_failures_total") == 0
    opened = [
        (labels, v)
        for n, labels, v in edge
        if n == "weir_edge_breaker_transitions_total" and labels.get("to") == "open"
    ]
    assert sum(v for _, v in opened) == 0, opened


def test_a_permuted_canary_is_rolled_back_on_agreement_alone(stack: ShadowStack) -> None:
    stack.shadow = '{version: "7", sample: 100%}'
    stack.apply_rollout(
        "7",
        "steps: [25, 50, 100], interval: 2s, min_requests: 100, "
        "analysis: {min_shadow_comparisons: 100}",
    )
    with base.Traffic(stack):
        controller = base.Controller(stack)
        code = controller.finished()
    state = stack.state()
    assert state["status"] == "rolled_back" and code == 1, "".join(controller.lines)
    final = state["decisions"][-1]
    by_name = base.checks(final)
    assert by_name["shadow"]["verdict"] == "fail", by_name
    assert by_name["shadow"]["figures"]["agreement"] < 0.3
    # Fast, error-free, and its distributions did not move: only agreement caught it.
    for name in ("errors", "p99", "confidence", "classes"):
        assert by_name[name]["verdict"] != "fail", by_name[name]
    assert "shadow agreement" in final["text"]
    assert base.effective(stack)["7"] == 0
    print("".join(controller.lines))


def test_an_identical_canary_passes_agreement_at_every_step_and_is_promoted(
    stack: ShadowStack,
) -> None:
    stack.shadow = '{version: "3", sample: 100%}'
    stack.apply_rollout(
        "3",
        "steps: [50, 100], interval: 2s, min_requests: 100, "
        "analysis: {min_shadow_comparisons: 100}",
    )
    with base.Traffic(stack):
        controller = base.Controller(stack)
        assert controller.finished() == 0, "".join(controller.lines)
    state = stack.state()
    assert state["status"] == "promoted", "".join(controller.lines)
    passed = [d for d in state["decisions"] if d["kind"] == "pass"]
    assert [d["weight"] for d in passed] == [50]
    shadow = base.checks(passed[0])["shadow"]
    assert shadow["verdict"] == "pass" and shadow["figures"]["agreement"] == 1.0, shadow
    assert shadow["figures"]["compared"] >= 100
    print("".join(controller.lines))
