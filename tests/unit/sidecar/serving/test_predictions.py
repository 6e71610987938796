"""The predicted-class counter: per version, the argmax of the confidence output."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sidecar.metrics import MAX_CLASS_LABELS, PREDICTED_CLASS
from sidecar.serving.predictions import OTHER, count_predictions


@dataclass
class Config:
    confidence_output: str | None = None
    confidence: str = "auto"


@dataclass
class Spec:
    name: str


@dataclass(eq=False)
class Found:  # the fields of a ModelVersion the counter reads
    name: str
    version: str
    outputs: list[Spec] = field(default_factory=lambda: [Spec("probabilities")])
    config: Config = field(default_factory=Config)

    @property
    def output_index(self) -> dict[str, int]:
        return {spec.name: i for i, spec in enumerate(self.outputs)}


def counted(model: str, version: str, cls: str) -> float:
    return PREDICTED_CLASS.labels(model, version, cls)._value.get()


def test_one_row_counts_its_top_class() -> None:
    found = Found("pred-one", "1")
    count_predictions(found, [np.array([[0.1, 0.7, 0.2]], dtype=np.float32)])  # type: ignore[arg-type]
    assert counted("pred-one", "1", "1") == 1


def test_many_rows_count_each_class_once_per_row() -> None:
    found = Found("pred-many", "2")
    rows = np.eye(4, dtype=np.float32)[[0, 2, 2, 3, 2]]
    count_predictions(found, [rows])  # type: ignore[arg-type]
    assert [counted("pred-many", "2", c) for c in "0123"] == [1, 0, 3, 1]


def test_the_confidence_output_named_in_the_config_is_the_one_read() -> None:
    found = Found(
        "pred-named", "1", [Spec("logits"), Spec("scores")], Config(confidence_output="scores")
    )
    outputs = [np.array([[9.0, 0.0]]), np.array([[0.0, 1.0]])]
    count_predictions(found, outputs)  # type: ignore[arg-type]
    assert counted("pred-named", "1", "1") == 1 and counted("pred-named", "1", "0") == 0


def test_no_classes_no_count() -> None:
    none = Found("pred-none", "1", config=Config(confidence="none"))
    count_predictions(none, [np.array([[0.2, 0.8]])])  # type: ignore[arg-type]
    regression = Found("pred-regression", "1")
    count_predictions(regression, [np.array([[3.5]])])  # type: ignore[arg-type]
    assert counted("pred-none", "1", "1") == 0 and counted("pred-regression", "1", "0") == 0


def test_class_indexes_past_the_label_cap_share_one_label() -> None:
    found = Found("pred-wide", "1")
    row = np.zeros((1, MAX_CLASS_LABELS + 10), dtype=np.float32)
    row[0, MAX_CLASS_LABELS + 5] = 1.0
    count_predictions(found, [row])  # type: ignore[arg-type]
    assert counted("pred-wide", "1", OTHER) == 1
