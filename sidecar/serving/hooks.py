"""Optional per-model post-processing, loaded from a Python file in the model's folder.

The file (named by `hook:` in config.yaml) defines

    def postprocess(outputs: dict[str, numpy.ndarray], labels: list[str] | None)
        -> dict[str, numpy.ndarray]

called per request with that request's rows; what it returns is added to the response (a
returned name equal to a model output replaces it). It may declare what it adds, for model
metadata and for clients that select outputs:

    OUTPUTS = [{"name": "top_label", "datatype": "BYTES", "shape": [-1, 1]}]
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sidecar.errors import InferenceFailed
from sidecar.serving.onnx_session import TensorSpec

log = logging.getLogger(__name__)

PostProcess = Callable[[dict[str, np.ndarray], list[str] | None], dict[str, np.ndarray]]


class Hook:
    """A loaded hook file: its `postprocess` and the outputs it declares."""

    def __init__(self, model_dir: Path, filename: str, labels: list[str] | None) -> None:
        # Judged by the name, not the resolved path: `weir up`'s view of the repository links
        # each file to its source, so a hook legitimately resolves elsewhere.
        relative = Path(filename)
        path = model_dir / relative
        if relative.is_absolute() or ".." in relative.parts or not path.is_file():
            raise ValueError(f"hook {filename!r} must be a file inside {model_dir}")
        spec = importlib.util.spec_from_file_location(f"weir_hook_{model_dir.name}", path)
        if spec is None or spec.loader is None:
            raise ValueError(f"hook {path} cannot be imported")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        postprocess = getattr(module, "postprocess", None)
        if not callable(postprocess):
            raise ValueError(f"hook {path} must define postprocess(outputs, labels)")
        self.name = model_dir.name
        self._postprocess: PostProcess = postprocess
        self.labels = labels
        self.outputs = [
            TensorSpec(o["name"], o["datatype"], tuple(None if d < 0 else d for d in o["shape"]))
            for o in getattr(module, "OUTPUTS", [])
        ]

    def apply(self, pairs: list[tuple[str, np.ndarray]]) -> list[tuple[str, np.ndarray]]:
        """Model outputs in, model outputs plus the hook's out, in that order."""
        outputs = dict(pairs)
        try:
            extra = self._postprocess(dict(outputs), self.labels)
        except Exception:
            log.exception("post-processing hook of model %s failed", self.name)
            raise InferenceFailed(
                f"the post-processing hook of model '{self.name}' failed on this request"
            ) from None
        outputs.update({name: np.asarray(value) for name, value in extra.items()})
        return list(outputs.items())
