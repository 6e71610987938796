"""The loss a quantization is judged by, and the write-or-refuse decision."""

from __future__ import annotations

import numpy as np
import pytest

from scripts.quantize.accuracy import compare, decide, probabilities


def one_hot(classes: list[int], confidence: float = 0.9, width: int = 4) -> np.ndarray:
    rest = (1 - confidence) / (width - 1)
    scores = np.full((len(classes), width), rest, dtype=np.float32)
    scores[np.arange(len(classes)), classes] = confidence
    return scores


def test_with_labels_the_loss_is_the_relative_accuracy_drop() -> None:
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    source = one_hot([0, 1, 2, 3, 0, 1, 2, 3, 0, 0])  # 9 of 10 right
    new = one_hot([0, 1, 2, 3, 0, 1, 2, 3, 1, 0])  # 8 of 10 right
    acc = compare(source, new, labels)
    assert acc.source_accuracy == pytest.approx(0.9)
    assert acc.new_accuracy == pytest.approx(0.8)
    assert acc.top1_agreement == pytest.approx(0.9)
    assert acc.loss == pytest.approx(0.1 / 0.9)
    assert "labels" in acc.loss_measure


def test_a_gain_is_no_loss() -> None:
    labels = np.array([0, 1])
    acc = compare(one_hot([0, 0]), one_hot([0, 1]), labels)
    assert acc.new_accuracy == 1.0 and acc.loss == 0.0


def test_output_differences() -> None:
    source = np.array([[0.5, 0.5], [1.0, 0.0]], dtype=np.float32)
    new = np.array([[0.4, 0.6], [1.0, 0.0]], dtype=np.float32)
    acc = compare(source, new, None)
    assert acc.max_abs_diff == pytest.approx(0.1, abs=1e-6)
    assert acc.mean_abs_diff == pytest.approx(0.05, abs=1e-6)


def test_without_labels_a_near_tie_that_swaps_costs_almost_nothing() -> None:
    source = np.array([[0.501, 0.499], [0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    new = np.array([[0.499, 0.501], [0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    acc = compare(source, new, None)
    assert acc.top1_agreement == pytest.approx(2 / 3)
    assert acc.loss == pytest.approx(0.002 / (0.501 + 0.9 + 0.8), rel=1e-3)
    assert "probabilities" in acc.loss_measure


def test_without_labels_leaving_a_confident_answer_costs_its_confidence() -> None:
    source = np.array([[0.99, 0.01], [0.99, 0.01]], dtype=np.float32)
    new = np.array([[0.01, 0.99], [0.99, 0.01]], dtype=np.float32)
    acc = compare(source, new, None)
    assert acc.loss == pytest.approx(0.98 / 1.98, rel=1e-3)


def test_without_probabilities_the_loss_is_plain_disagreement() -> None:
    logits = np.array([[2.0, -1.0], [0.5, 3.0], [1.0, 0.0], [4.0, 1.0]], dtype=np.float32)
    new = logits.copy()
    new[0] = [-1.0, 2.0]
    acc = compare(logits, new, None)
    assert probabilities(logits) is None
    assert acc.loss == pytest.approx(0.25)
    assert "disagreement" in acc.loss_measure


def test_outputs_of_different_shapes_are_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        compare(np.zeros((2, 3)), np.zeros((2, 4)), None)


def test_within_tolerance_is_written() -> None:
    acc = compare(one_hot([0, 1]), one_hot([0, 1]), np.array([0, 1]))
    verdict = decide(acc, tolerance=0.01, accept_loss=False)
    assert verdict.write and "within tolerance" in verdict.reason


def test_above_tolerance_is_refused_with_the_figures() -> None:
    labels = np.array([0, 1, 2, 3])
    acc = compare(one_hot([0, 1, 2, 3]), one_hot([0, 1, 2, 0]), labels)
    verdict = decide(acc, tolerance=0.01, accept_loss=False)
    assert not verdict.write
    assert "25.00%" in verdict.reason and "tolerance 1.00%" in verdict.reason
    assert "Nothing was written" in verdict.reason and "--accept-loss" in verdict.reason


def test_accept_loss_writes_and_says_so() -> None:
    labels = np.array([0, 1, 2, 3])
    acc = compare(one_hot([0, 1, 2, 3]), one_hot([0, 1, 2, 0]), labels)
    verdict = decide(acc, tolerance=0.01, accept_loss=True)
    assert verdict.write and "--accept-loss" in verdict.reason and "25.00%" in verdict.reason


def test_the_tolerance_is_inclusive() -> None:
    labels = np.array([0] * 100)
    new = one_hot([0] * 99 + [1])
    acc = compare(one_hot([0] * 100), new, labels)
    assert acc.loss == pytest.approx(0.01)
    assert decide(acc, tolerance=0.01, accept_loss=False).write
