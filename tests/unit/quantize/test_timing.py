"""The side-by-side timing's rounds and bounds (with stand-in sessions: no clock is asserted)."""

from __future__ import annotations

import numpy as np

from scripts.quantize.timing import BATCH, side_by_side


class Recorder:
    """Stands in for an ONNX Runtime session: records the batch size of each run."""

    def __init__(self, name: str, log: list[tuple[str, int]]) -> None:
        self.name, self.log = name, log

    def run(self, outputs: object, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.log.append((self.name, len(feeds["x"])))
        return [feeds["x"]]


def test_rounds_interleave_and_stop_at_the_sample_counts() -> None:
    log: list[tuple[str, int]] = []
    feeds = {"x": np.zeros((5, 2), np.float32)}
    source, new = side_by_side(
        (Recorder("a", log), Recorder("b", log)), feeds, budget_s=60, one_row=20, batches=4
    )
    assert source.samples == new.samples == 20
    assert source.batch_samples == new.batch_samples == 4
    measured = [entry for entry in log if entry[1] == 1][6:]  # after 3 warm-up calls each
    # Alternating order: a b, b a, a b, ...
    assert [name for name, _ in measured[:4]] == ["a", "b", "b", "a"]
    # Batches of 32 are built from 5 rows by repeating them.
    assert (("a", BATCH) in log) and (("b", BATCH) in log)


def test_a_spent_budget_still_measures_one_round() -> None:
    log: list[tuple[str, int]] = []
    feeds = {"x": np.zeros((1, 2), np.float32)}
    source, new = side_by_side((Recorder("a", log), Recorder("b", log)), feeds, budget_s=0)
    assert source.samples == new.samples == 1
    assert source.batch_samples == 1
    assert source.p50_ms >= 0 and source.batch_rows_per_s > 0
