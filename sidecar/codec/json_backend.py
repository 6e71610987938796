"""JSON for the hot path: orjson when installed (10x faster both ways), else the stdlib.

orjson serializes numpy arrays natively (float32 in its shortest round-tripping form), so
output tensors never become Python lists. It refuses NaN/Infinity literals, which are not
JSON; the stdlib parser accepts them, so it gets a second look at what orjson refused and
the NaN/Inf policy can answer with its own message.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

try:
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson is absent
    orjson = None  # type: ignore[assignment]


def loads(raw: bytes) -> Any:
    """Parse JSON; raises ValueError when it is not JSON."""
    if orjson is not None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialize {type(value).__name__}")


if orjson is not None:
    _OPTIONS = orjson.OPT_SERIALIZE_NUMPY

    def dumps(doc: Any) -> bytes:
        """Serialize, numpy arrays included."""
        return orjson.dumps(doc, default=_default, option=_OPTIONS)

else:  # pragma: no cover

    def dumps(doc: Any) -> bytes:
        """Serialize, numpy arrays included."""
        return json.dumps(doc, separators=(",", ":"), default=_default).encode()
