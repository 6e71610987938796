"""The predicted class of every answered row, counted per model version
(`weir_predicted_class_total`): with the confidence histogram, what a rollout compares between
a canary and its stable version, and what drifts.

The top-1 class is the argmax of the output the confidence histogram reads
(`config.yaml`'s `confidence_output`, else the first output: `ModelVersion` picks it);
`confidence: none` counts nothing, nor does an output with one column (a regression, no
classes). Counted per batch run, beside the confidence histogram: one argmax and one counter
increment per class present in the batch.
"""

from __future__ import annotations

import numpy as np

from sidecar.metric_slots import Value, value_of
from sidecar.metrics import MAX_CLASS_LABELS, PREDICTED_CLASS

OTHER = f"{MAX_CLASS_LABELS}+"


class ClassCounter:
    """One model version's counters, their children resolved on first use; `index`: the
    output read (None: no classes to count)."""

    __slots__ = ("children", "index", "model", "version")

    def __init__(self, model: str, version: str, index: int | None) -> None:
        self.model, self.version, self.index = model, version, index
        self.children: dict[int, Value] = {}

    def child(self, cls: int) -> Value:
        found = self.children.get(cls)
        if found is None:
            label = str(cls) if cls < MAX_CLASS_LABELS else OTHER
            found = self.children[cls] = value_of(
                PREDICTED_CLASS.labels(self.model, self.version, label)
            )
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
            self.child(int(rows[0].argmax())).inc()
            return
        counts = np.bincount(rows.argmax(axis=1))
        for cls in np.flatnonzero(counts).tolist():
            self.child(cls).inc(int(counts[cls]))
