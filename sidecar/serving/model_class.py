"""A model's own Python: pre- and post-processing and the signature clients see.

`config.yaml` names a file in the model's folder (`model_class: model.py`). It defines

    class Model:
        inputs = [{"name": "image", "datatype": "BYTES", "shape": [-1]}]       # optional
        outputs = [{"name": "label", "datatype": "BYTES", "shape": [-1]}, ...]  # optional

        def __init__(self, context: ModelContext) -> None: ...                # optional
        def preprocess(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...
        def postprocess(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

`inputs` and `outputs` are what clients send and get (model metadata reports them, requests
are validated against them); left out, they are the ONNX model's. `preprocess` turns one
request's validated inputs into the ONNX feeds (before batching, off the event loop);
`postprocess` turns one request's ONNX outputs into what the client gets. Either may be left
out. A bad input is refused by raising `BadRequest` (400, its message sent as it is:
`ModelContext.decode_image` does so for images); any other exception is the model's own
failure, logged and answered 500.

The older post-processing hook (`hook: hook.py`, a module-level `postprocess(outputs,
labels)` returning outputs to add, and `OUTPUTS` listing them) is loaded the same way and
keeps its meaning: a file without a `Model` class is such a hook.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image

from sidecar.codec.datatypes import V2_TO_NUMPY
from sidecar.codec.images import ImageLimits, decode_image
from sidecar.errors import BadRequest, InferenceFailed, WeirError
from sidecar.serving.model_config import Images
from sidecar.serving.onnx_session import TensorSpec

log = logging.getLogger(__name__)

__all__ = ["BadRequest", "ModelClass", "ModelContext"]

Arrays = dict[str, np.ndarray]
Pairs = list[tuple[str, np.ndarray]]


@dataclass(frozen=True)
class ModelContext:
    """What a model class is built with: its model, version, labels and image limits."""

    name: str
    version: str
    labels: list[str] | None = None
    images: ImageLimits = field(default_factory=lambda: Images().limits())

    def decode_image(
        self, data: bytes, what: str = "image", draft: tuple[int, int] | None = None
    ) -> Image.Image:
        """One encoded image, decoded within this model's limits (a 400 otherwise)."""
        return decode_image(data, self.images, draft, what)


def _specs(declared: Any, where: str) -> list[TensorSpec]:
    specs = []
    for entry in declared:
        try:
            name, datatype, shape = entry["name"], entry["datatype"], entry["shape"]
        except (KeyError, TypeError):
            raise ValueError(f"{where}: each entry needs name, datatype and shape") from None
        if datatype not in V2_TO_NUMPY:
            raise ValueError(f"{where}: {name!r} has unknown datatype {datatype!r}")
        specs.append(TensorSpec(name, datatype, tuple(None if d < 0 else d for d in shape)))
    return specs


def _import(model_dir: Path, filename: str) -> ModuleType:
    # Judged by the name, not the resolved path: `weir up`'s view of the repository links
    # each file to its source, so a model's file legitimately resolves elsewhere.
    relative = Path(filename)
    path = model_dir / relative
    if relative.is_absolute() or ".." in relative.parts or not path.is_file():
        raise ValueError(f"model file {filename!r} must be a file inside {model_dir}")
    spec = importlib.util.spec_from_file_location(f"weir_model_{model_dir.name}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"model file {path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ModelClass:
    """A loaded model file: the client-facing signature, and the calls around each batch."""

    def __init__(
        self,
        model_dir: Path,
        filename: str,
        context: ModelContext,
        onnx_inputs: list[TensorSpec],
        onnx_outputs: list[TensorSpec],
    ) -> None:
        module = _import(model_dir, filename)
        self.name = context.name
        self._onnx_inputs = {spec.name: spec for spec in onnx_inputs}
        self._preprocess: Callable[[Arrays], Arrays] | None = None
        self._postprocess: Callable[[Arrays], Arrays] | None = None
        where = str(model_dir / filename)
        cls = getattr(module, "Model", None)
        if cls is None:  # a post-processing hook file
            hook = getattr(module, "postprocess", None)
            if not callable(hook):
                raise ValueError(
                    f"{where} must define a class Model, or postprocess(outputs, labels)"
                )
            self.inputs = list(onnx_inputs)
            self.outputs = [*onnx_outputs, *_specs(getattr(module, "OUTPUTS", []), where)]
            labels = context.labels
            self._postprocess = lambda outputs: {**outputs, **hook(dict(outputs), labels)}
            return
        instance = cls(context)
        declared_in = getattr(instance, "inputs", None)
        declared_out = getattr(instance, "outputs", None)
        self.inputs = _specs(declared_in, where) if declared_in else list(onnx_inputs)
        self.outputs = _specs(declared_out, where) if declared_out else list(onnx_outputs)
        self._preprocess = getattr(instance, "preprocess", None)
        self._postprocess = getattr(instance, "postprocess", None)
        if declared_in and self._preprocess is None:
            raise ValueError(f"{where}: Model declares its own inputs, so it needs preprocess()")

    @property
    def preprocesses(self) -> bool:
        return self._preprocess is not None

    def preprocess(self, inputs: Arrays) -> Arrays:
        """One request's validated inputs → ONNX feeds, checked against the ONNX model."""
        assert self._preprocess is not None
        try:
            feeds = self._preprocess(inputs)
        except WeirError:
            raise
        except Exception:
            log.exception("pre-processing of model %s failed", self.name)
            raise InferenceFailed(
                f"the pre-processing of model '{self.name}' failed on this request; the "
                "sidecar's log says why"
            ) from None
        self._check_feeds(feeds)
        return feeds

    def _check_feeds(self, feeds: Arrays) -> None:
        """The model class's feeds must be what the ONNX model takes: a mismatch is the
        model's own bug (500), not the client's."""
        problem = None
        if not isinstance(feeds, dict) or set(feeds) != set(self._onnx_inputs):
            problem = f"feeds {sorted(feeds) if isinstance(feeds, dict) else type(feeds)}"
        else:
            for name, arr in feeds.items():
                spec = self._onnx_inputs[name]
                want = V2_TO_NUMPY[spec.datatype]
                if not isinstance(arr, np.ndarray) or arr.dtype != want:
                    problem = f"'{name}' is not a numpy array of {want}"
                elif arr.ndim != len(spec.shape) or any(
                    d is not None and d != got for d, got in zip(spec.shape, arr.shape, strict=True)
                ):
                    problem = f"'{name}' has shape {list(arr.shape)}"
                if problem:
                    break
        if problem is not None:
            log.error(
                "pre-processing of model %s returned %s; the ONNX model takes %s",
                self.name,
                problem,
                [spec.metadata() for spec in self._onnx_inputs.values()],
            )
            raise InferenceFailed(
                f"the pre-processing of model '{self.name}' produced inputs its ONNX model "
                "does not take; the sidecar's log says how"
            )

    def postprocess(self, pairs: Pairs) -> Pairs:
        """One request's ONNX outputs → what the client gets, in order."""
        if self._postprocess is None:
            return pairs
        try:
            result = self._postprocess(dict(pairs))
            return [(name, np.asarray(value)) for name, value in result.items()]
        except WeirError:
            raise
        except Exception:
            log.exception("post-processing of model %s failed", self.name)
            raise InferenceFailed(
                f"the post-processing of model '{self.name}' failed on this request"
            ) from None
