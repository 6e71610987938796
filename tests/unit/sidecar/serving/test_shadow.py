"""Shadow copies in the sidecar: the comparison of two answers, the bound on copies in flight,
and failures counted apart from everything a client or a breaker sees."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from sidecar.errors import InferenceFailed, NotFound, QueueFull
from sidecar.serving.batching import Pending
from sidecar.serving.onnx_session import TensorSpec
from sidecar.serving.shadow import UNKNOWN, Shadows, compare

INPUTS = [TensorSpec("input", "FP32", (None, 4))]
OUTPUTS = [TensorSpec("probabilities", "FP32", (None, 3)), TensorSpec("score", "FP32", (None,))]


class Parked:
    """A shadow's driver whose copies wait until released, then get `answer`."""

    def __init__(self, answer: list[np.ndarray] | None = None, error: Exception | None = None):
        self.release = asyncio.Event()
        self.answer, self.error = answer, error
        self.submitted = 0

    async def submit(self, item: Pending) -> None:
        self.submitted += 1
        await self.release.wait()
        if self.error is not None:
            raise self.error
        item.outputs = self.answer


def version(v: str, driver: Any = None, inputs: list[TensorSpec] = INPUTS) -> Any:
    return SimpleNamespace(
        name="m",
        version=v,
        inputs=inputs,
        outputs=OUTPUTS,
        output_index={s.name: i for i, s in enumerate(OUTPUTS)},
        config=SimpleNamespace(confidence="auto", confidence_output=None),
        driver=driver,
    )


class Repo:
    def __init__(self, *versions: Any) -> None:
        self.found = {v.version: v for v in versions}

    def get(self, name: str, v: str | None = None) -> Any:
        if v not in self.found:
            raise NotFound(f"no version {v}")
        return self.found[v]


def answered(probabilities: list[list[float]]) -> Pending:
    rows = len(probabilities)
    item = Pending({"input": np.zeros((rows, 4), np.float32)}, rows)
    item.outputs = [np.array(probabilities, np.float32), np.arange(rows, dtype=np.float32)]
    return item


def value(shadows: Shadows, v: str, s: str, metric: str, reason: str = "") -> float:
    pair = shadows.metrics("m", v, s)
    child = pair.failures.get(reason) if metric == "failures" else getattr(pair, metric)
    return 0.0 if child is None else child._value.get()  # type: ignore[union-attr]


def test_rows_agree_where_their_argmax_does_and_differences_are_per_row() -> None:
    live = [np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]], np.float32), np.zeros(2, np.float32)]
    other = [np.array([[0.6, 0.3, 0.1], [0.1, 0.1, 0.8]], np.float32), np.zeros(2, np.float32)]
    diffs, agreed = compare(version("1"), version("2"), live, other)
    assert agreed is not None and agreed.tolist() == [True, False]
    assert diffs is not None and diffs == pytest.approx([0.1, 0.7])


def test_a_shadow_without_the_class_output_is_compared_on_differences_only() -> None:
    shadow = version("2")
    shadow.output_index = {"score": 0}
    diffs, agreed = compare(version("1"), shadow, answered([[1, 0, 0]]).outputs, [np.ones(1)])
    assert agreed is None and diffs is not None and diffs.tolist() == [1.0]


def test_copies_beyond_the_bound_are_shed_and_the_rest_compared() -> None:
    async def run() -> Shadows:
        parked = Parked([np.array([[0.9, 0.05, 0.05]], np.float32), np.zeros(1, np.float32)])
        live = version("1")
        shadows = Shadows(Repo(live, version("7", parked)), max_in_flight=2)  # type: ignore[arg-type]
        for _ in range(5):
            shadows.start(live, answered([[0.8, 0.1, 0.1]]), "7")
        await asyncio.sleep(0)
        assert parked.submitted == 2 and shadows.in_flight[("m", "7")] == 2
        parked.release.set()
        while shadows.in_flight[("m", "7")]:
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        return shadows

    shadows = asyncio.run(run())
    assert value(shadows, "1", "7", "shed") == 3
    assert value(shadows, "1", "7", "comparisons") == 2
    assert value(shadows, "1", "7", "agreements") == 2


@pytest.mark.parametrize(
    ("error", "counted"),
    [(QueueFull("full"), "shed"), (InferenceFailed("broken"), "inference_error")],
)
def test_a_shadow_refusing_or_failing_is_counted_never_raised(
    error: Exception, counted: str
) -> None:
    async def run() -> Shadows:
        parked = Parked(error=error)
        parked.release.set()
        live = version("1")
        shadows = Shadows(Repo(live, version("4", parked)))  # type: ignore[arg-type]
        shadows.start(live, answered([[1, 0, 0]]), "4")
        for _ in range(3):
            await asyncio.sleep(0)
        return shadows

    shadows = asyncio.run(run())
    if counted == "shed":
        assert value(shadows, "1", "4", "shed") == 1
    else:
        assert value(shadows, "1", "4", "failures", counted) == 1


def test_an_unknown_or_incompatible_shadow_is_a_failure_and_no_label_of_its_own() -> None:
    async def run() -> Shadows:
        live = version("1")
        other = version("5", Parked(), inputs=[TensorSpec("pixels", "FP32", (None, 4))])
        shadows = Shadows(Repo(live, other))  # type: ignore[arg-type]
        shadows.start(live, answered([[1, 0, 0]]), "99")
        shadows.start(live, answered([[1, 0, 0]]), "5")
        shadows.start(live, answered([[1, 0, 0]]), "1")  # itself: nothing to do
        return shadows

    shadows = asyncio.run(run())
    assert value(shadows, "1", UNKNOWN, "failures", "not_found") == 1
    assert value(shadows, "1", "5", "failures", "incompatible") == 1
    assert ("m", "1", "1") not in shadows._metrics
