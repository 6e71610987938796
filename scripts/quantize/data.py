"""The rows a quantization is calibrated on and judged on.

Either a `--calibration FILE.npz` (one array per model input, named after it, plus an optional
`labels` array of class indices), or, for the bundled sample models, their own held-out data:

- `digits`: scikit-learn's bundled digits with exactly the split `models/build_samples.py`
  trained on (calibrated on the training rows, judged on the held-out 25%, with labels);
- `cnn`: fixed random weights and no labels, so seeded synthetic images (a colour cast per
  image plus noise of varying strength: plain noise alone makes the model answer one class for
  every row, and agreement on one class proves nothing).

A file is split the same way: its first 75% of rows calibrate, the last 25% judge, so the
figures never come from the rows the ranges were fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

Feeds = dict[str, np.ndarray]
LABELS = "labels"
HELD_OUT = 0.25


class DataError(ValueError):
    """The evaluation data cannot be used; the message says why and what to pass instead."""


@dataclass(frozen=True)
class EvalData:
    calibration: Feeds
    evaluation: Feeds
    labels: np.ndarray | None  # class index per evaluation row, when known
    source: str  # where the rows came from, for the report

    @property
    def rows(self) -> int:
        return len(next(iter(self.evaluation.values())))


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training rows, held-out rows and held-out labels of `digits`.

    `build_samples.build_digits` does not expose its split, so it is rebuilt here with the same
    data, scaling and arguments (test_size=0.25, random_state=0): change one, change both.
    (Not imported from there either: `models/` is not an installed package, and `weir` runs
    from any directory.) scikit-learn is what built the model, so it is there where it was.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise DataError(
            "digits' held-out data comes from scikit-learn, which is not installed here: "
            "install it (pip install scikit-learn) or pass --calibration FILE.npz"
        ) from None

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_train, x_test, _, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
    return x_train, x_test, y_test.astype(np.int64)


def cnn_images(rows: int, seed: int) -> np.ndarray:
    """Seeded [rows, 3, 64, 64] FP32 images: a colour cast per image plus noise whose strength
    varies per image, so the model's answers spread over several classes."""
    rng = np.random.default_rng(seed)
    cast = rng.uniform(-1, 1, (rows, 3, 1, 1)).astype(np.float32)
    strength = rng.random((rows, 1, 1, 1), dtype=np.float32)
    return cast + strength * rng.standard_normal((rows, 3, 64, 64), dtype=np.float32)


def builtin(model: str, inputs: list[str]) -> EvalData | None:
    """The sample model's own data, or None for any other model (or a model of that name
    with more than one input, which cannot be the sample)."""
    if len(inputs) != 1:
        return None
    (name,) = inputs
    if model == "digits":
        x_train, x_test, y_test = digits_split()
        source = (
            f"scikit-learn digits: calibrated on the {len(x_train)} training rows, judged on "
            f"the {len(x_test)} held out"
        )
        return EvalData({name: x_train}, {name: x_test}, y_test, source)
    if model == "cnn":
        source = "seeded synthetic images (no labels): 64 to calibrate, 256 others to judge"
        calibration, evaluation = cnn_images(64, seed=1), cnn_images(256, seed=2)
        return EvalData({name: calibration}, {name: evaluation}, None, source)
    return None


def from_npz(path: Path, inputs: list[str]) -> EvalData:
    """A calibration file holding one array per model input (and optionally `labels`)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read calibration file {path}: {exc}") from None
    missing = [name for name in inputs if name not in arrays]
    if missing:
        raise DataError(
            f"calibration file {path} has no array for input(s) {', '.join(missing)}; it holds "
            f"{', '.join(sorted(arrays)) or 'nothing'}. Save one array per model input, named "
            f"after it (np.savez(FILE, {inputs[0]}=rows, labels=classes))"
        )
    rows = {len(arrays[name]) for name in inputs}
    labels = arrays.get(LABELS)
    if labels is not None:
        rows.add(len(labels))
    if len(rows) != 1 or min(rows) < 2:
        raise DataError(
            f"calibration file {path}: every array (and `labels`) needs the same number of "
            f"rows, at least 2; found {sorted(rows)}"
        )
    if labels is not None and not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"calibration file {path}: `labels` must be class indices (integers), not "
            f"{labels.dtype}"
        )
    (count,) = rows
    cut = count - max(1, round(count * HELD_OUT))
    source = f"{path}: calibrated on rows 0-{cut - 1}, judged on rows {cut}-{count - 1}"
    return EvalData(
        {name: arrays[name][:cut] for name in inputs},
        {name: arrays[name][cut:] for name in inputs},
        None if labels is None else labels[cut:].astype(np.int64),
        source,
    )


def for_model(model: str, inputs: list[str], calibration: Path | None) -> EvalData:
    """The file when given, else the sample model's own data; a clear error otherwise."""
    if calibration is not None:
        return from_npz(calibration, inputs)
    data = builtin(model, inputs)
    if data is None:
        raise DataError(
            f"model '{model}' has no built-in evaluation data (only digits and cnn do): pass "
            "--calibration FILE.npz with one array per model input, named after it, and "
            "optionally `labels` (class indices) to measure accuracy"
        )
    return data
