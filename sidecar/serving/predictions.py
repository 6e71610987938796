"""The predicted class of every answered row, counted per model version
(`weir_predicted_class_total`): with the confidence histogram, what a rollout compares between
a canary and its stable version, and what drifts.

The top-1 class is the argmax of the output the confidence histogram reads
(`config.yaml`'s `confidence_output`, else the first output); `confidence: none` counts
nothing, nor does an output with one column (a regression, no classes). Cost on the data
plane: one argmax and one counter increment per request (a single row: plain Python).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numpy as np

from sidecar.metrics import MAX_CLASS_LABELS, PREDICTED_CLASS, add

if TYPE_CHECKING:
    from sidecar.serving.model import ModelVersion

OTHER = f"{MAX_CLASS_LABELS}+"


class ClassCounter:
    """One model version's counters, their children resolved on first use."""

    __slots__ = ("children", "index", "model", "version")

    def __init__(self, model: str, version: str, index: int | None) -> None:
        self.model, self.version, self.index = model, version, index
        self.children: dict[int, object] = {}

    def child(self, cls: int) -> object:
        found = self.children.get(cls)
        if found is None:
            label = str(cls) if cls < MAX_CLASS_LABELS else OTHER
            found = self.children[cls] = PREDICTED_CLASS.labels(self.model, self.version, label)
        return found

    def count(self, outputs: list[np.ndarray]) -> None:
        if self.index is None:
            return
        values = outputs[self.index]
        if values.ndim == 0 or values.shape[0] == 0:
            return
        rows = values.reshape(values.shape[0], -1)
        if rows.shape[1] < 2:
            return
        if rows.shape[0] == 1:
            add(self.child(int(rows[0].argmax())))  # type: ignore[arg-type]
            return
        counts = np.bincount(rows.argmax(axis=1))
        for cls in np.flatnonzero(counts).tolist():
            add(self.child(cls), int(counts[cls]))  # type: ignore[arg-type]


_COUNTERS: weakref.WeakKeyDictionary[ModelVersion, ClassCounter] = weakref.WeakKeyDictionary()


def _counter_for(found: ModelVersion) -> ClassCounter:
    counter = _COUNTERS.get(found)
    if counter is None:
        config = found.config
        name = config.confidence_output or (found.outputs[0].name if found.outputs else None)
        index = None if config.confidence == "none" else found.output_index.get(name or "")
        counter = _COUNTERS[found] = ClassCounter(found.name, found.version, index)
    return counter


def count_predictions(found: ModelVersion, outputs: list[np.ndarray]) -> None:
    """Count the top-1 classes of one answered request's outputs."""
    _counter_for(found).count(outputs)
