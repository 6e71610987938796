"""The predicted-class counter: per version, the argmax of the confidence output's rows."""

from __future__ import annotations

import numpy as np

from sidecar.metrics import MAX_CLASS_LABELS, PREDICTED_CLASS
from sidecar.serving.predictions import OTHER, ClassCounter


def counted(model: str, version: str, cls: str) -> float:
    return PREDICTED_CLASS.labels(model, version, cls)._value.get()


def test_one_row_counts_its_top_class() -> None:
    ClassCounter("pred-one", "1", 0).count([np.array([[0.1, 0.7, 0.2]], dtype=np.float32)])
    assert counted("pred-one", "1", "1") == 1


def test_many_rows_count_each_class_once_per_row() -> None:
    rows = np.eye(4, dtype=np.float32)[[0, 2, 2, 3, 2]]
    ClassCounter("pred-many", "2", 0).count([rows])
    assert [counted("pred-many", "2", c) for c in "0123"] == [1, 0, 3, 1]


def test_the_output_at_its_index_is_the_one_read() -> None:
    outputs = [np.array([[9.0, 0.0]]), np.array([[0.0, 1.0]])]
    ClassCounter("pred-named", "1", 1).count(outputs)
    assert counted("pred-named", "1", "1") == 1 and counted("pred-named", "1", "0") == 0


def test_no_classes_no_count() -> None:
    ClassCounter("pred-none", "1", None).count([np.array([[0.2, 0.8]])])
    ClassCounter("pred-regression", "1", 0).count([np.array([[3.5]])])
    assert counted("pred-none", "1", "1") == 0 and counted("pred-regression", "1", "0") == 0


def test_class_indexes_past_the_label_cap_share_one_label() -> None:
    row = np.zeros((1, MAX_CLASS_LABELS + 10), dtype=np.float32)
    row[0, MAX_CLASS_LABELS + 5] = 1.0
    ClassCounter("pred-wide", "1", 0).count([row])
    assert counted("pred-wide", "1", OTHER) == 1
