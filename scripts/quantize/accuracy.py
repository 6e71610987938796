"""What the conversion cost in answers, and whether that is within the tolerance.

The loss the tolerance is held against:
- with labels: the relative drop in top-1 accuracy, (source - new) / source; a gain is 0;
- without labels, when the output is class probabilities (rows of non-negative scores that
  sum to 1): the source's probabilities stand in for the labels. The loss is the relative
  drop in the accuracy the source expects: sum of p_source[row, top-1 of source] against
  sum of p_source[row, top-1 of new]. A row whose answer changed between two classes the
  source held nearly equal costs nearly nothing; a row that left a confident answer costs
  its confidence. Plain top-1 disagreement counts both alike, and refuses the random-weight
  `cnn` sample (near-uniform probabilities: 5 of 256 rows swap two classes whose
  probabilities differ by less than 0.02) although nothing a label could see changed;
- without labels or probabilities: the share of rows whose top-1 class changed.
Top-1 agreement is reported in every case. All compare the model's first output, read as
[rows, classes] scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Accuracy:
    rows: int
    source_accuracy: float | None  # None without labels
    new_accuracy: float | None
    top1_agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    # Accuracy the source's own probabilities expect of each version (None: not probabilities).
    expected_source: float | None = None
    expected_new: float | None = None

    @property
    def loss(self) -> float:
        if self.source_accuracy is not None and self.new_accuracy is not None:
            return _relative_drop(self.source_accuracy, self.new_accuracy)
        if self.expected_source is not None and self.expected_new is not None:
            return _relative_drop(self.expected_source, self.expected_new)
        return 1.0 - self.top1_agreement

    @property
    def loss_measure(self) -> str:
        if self.source_accuracy is not None:
            return "relative top-1 accuracy loss against the labels"
        if self.expected_source is not None:
            return "relative loss of the accuracy the source's probabilities expect (no labels)"
        return "top-1 disagreement with the source version (no labels)"

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "source_accuracy": self.source_accuracy,
            "new_accuracy": self.new_accuracy,
            "top1_agreement": self.top1_agreement,
            "max_abs_diff": self.max_abs_diff,
            "mean_abs_diff": self.mean_abs_diff,
            "expected_source_accuracy": self.expected_source,
            "expected_new_accuracy": self.expected_new,
            "loss": self.loss,
            "loss_measure": self.loss_measure,
        }


def _relative_drop(before: float, after: float) -> float:
    return max(0.0, (before - after) / before) if before > 0 else 0.0


def _top1(scores: np.ndarray) -> np.ndarray:
    top: np.ndarray = scores.reshape(len(scores), -1).argmax(axis=1)
    return top


def probabilities(scores: np.ndarray) -> np.ndarray | None:
    """The scores as [rows, classes] probabilities, or None when they are not (logits...)."""
    if scores.ndim != 2 or scores.shape[1] < 2 or not np.issubdtype(scores.dtype, np.floating):
        return None
    if scores.min() < 0 or not np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
        return None
    return scores.astype(np.float64)


def compare(source: np.ndarray, new: np.ndarray, labels: np.ndarray | None) -> Accuracy:
    """Both versions' first outputs on the same rows, and the rows' labels when known."""
    if source.shape != new.shape:
        raise ValueError(
            f"the new version's output has shape {new.shape}, the source's {source.shape}"
        )
    diff = np.abs(source.astype(np.float64) - new.astype(np.float64))
    top_source, top_new = _top1(source), _top1(new)
    source_accuracy = new_accuracy = expected_source = expected_new = None
    if labels is not None:
        source_accuracy = float(np.mean(top_source == labels))
        new_accuracy = float(np.mean(top_new == labels))
    p = probabilities(source)
    if p is not None:
        rows = np.arange(len(p))
        expected_source = float(p[rows, top_source].mean())
        expected_new = float(p[rows, top_new].mean())
    return Accuracy(
        rows=len(source),
        source_accuracy=source_accuracy,
        new_accuracy=new_accuracy,
        top1_agreement=float(np.mean(top_source == top_new)),
        max_abs_diff=float(diff.max()) if diff.size else 0.0,
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        expected_source=expected_source,
        expected_new=expected_new,
    )


@dataclass(frozen=True)
class Verdict:
    write: bool
    reason: str


def decide(accuracy: Accuracy, tolerance: float, accept_loss: bool) -> Verdict:
    """Whether to write the new version, and the sentence that says why."""
    figures = f"{accuracy.loss_measure}: {accuracy.loss:.2%}, tolerance {tolerance:.2%}"
    # Losses are ratios of row counts: 1 row in 100 must meet a tolerance of 0.01 exactly.
    if accuracy.loss <= tolerance + 1e-12:
        return Verdict(True, f"within tolerance ({figures})")
    if accept_loss:
        return Verdict(True, f"above tolerance, written as --accept-loss asks ({figures})")
    return Verdict(
        False,
        f"refused: {figures}. Nothing was written. Try more or better calibration rows "
        "(--calibration), --per-channel or --precision fp16; or pass --accept-loss to ship it "
        "anyway",
    )
