"""JSON for the hot path: one strict parser (orjson), and the serializer.

Every request body goes through `loads`, which either returns a document that the rest of the
sidecar can handle without surprises or raises `BadRequest` saying what was wrong:

- UTF-8 only: no BOM, no invalid bytes, no lone UTF-16 surrogates (escaped or raw), so any
  string taken from a request (an `id`, a name) can be written back into a response;
- numbers a 64-bit float holds: `1e999` or a 400-digit integer is refused, not turned into inf
  (integers beyond 64 bits become floats, as orjson does);
- nesting bounded: the parsers' own bounds (orjson 1024 levels, the stdlib's recursion
  limit) both answer "nested too deeply", and `decode` holds every envelope field to
  `MAX_DEPTH` (`check_depth`) before anything recurses over it;
- no duplicate keys (`decode` proves their absence cheaply, `duplicate_key` finds one);
- NaN/Infinity literals are not JSON, but clients send them (Python's `json.dumps` does) and
  each model's NaN policy decides about them, so a body that orjson refused and that holds
  such a literal gets a second, equally strict parse by the stdlib: same rules, same answers.

orjson serializes numpy arrays natively (float32 in its shortest round-tripping form), so
output tensors never become Python lists.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson

from sidecar.errors import BadRequest

# Deeper than any tensor (numpy's 64 dimensions less the envelope's 3 levels is the most a
# model could take), far below Python's recursion limit, below orjson's own 1024 and below the
# 255 levels orjson.dumps writes.
MAX_DEPTH = 64
_CONTAINERS = (dict, list)
_BOM = b"\xef\xbb\xbf"
_NON_FINITE = (b"NaN", b"Infinity")
_INT_RANGE = (-(2**63), 2**64 - 1)  # orjson's integers; beyond them it makes floats
_HINT = (
    'send one V2 inference request, UTF-8 JSON: {"inputs": [{"name", "shape", "datatype", "data"}]}'
)


def _bad(what: str) -> BadRequest:
    return BadRequest(f"request body is not valid JSON: {what}; {_HINT}")


def too_deep() -> BadRequest:
    return _bad(f"it is nested more than {MAX_DEPTH} levels deep")


def loads(raw: bytes) -> Any:
    """Parse one strict JSON document (see the module docstring); raises BadRequest."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if not any(token in raw for token in _NON_FINITE):
            raise _orjson_error(exc) from None
        doc = _stdlib_loads(raw)
    return doc


def _orjson_error(exc: orjson.JSONDecodeError) -> BadRequest:
    text = str(exc.msg)
    if text.startswith("depth limit") or "recursion" in text:
        return too_deep()
    if "infinity" in text:
        return _bad(f"a number at char {exc.pos} is too large for a 64-bit float")
    if "not valid UTF-8" in text or "BOM" in text:
        return _bad("it must be UTF-8 without a byte order mark")
    if "surrogate" in text:
        return _bad(f"a string near char {exc.pos} holds a lone UTF-16 surrogate")
    return _bad(f"{text} at char {exc.pos}")


def count_keys(value: Any, level: int) -> int:
    """Keys of every object within `value`, found at nesting `level` of the document (the
    document itself is 1); raises if it reaches deeper than MAX_DEPTH. Iterative: it is what
    makes recursing over `value` safe afterwards."""
    if not value or (type(value) is not dict and type(value) is not list):
        return 0  # the common case: no parameters (an empty object has no depth to speak of)
    keys = 0
    stack = [(value, level)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise too_deep()
        children: Iterable[Any] = item
        if type(item) is dict:
            keys += len(item)
            children = item.values()
        stack.extend((child, depth + 1) for child in children if isinstance(child, _CONTAINERS))
    return keys


def count(raw: bytes, char: bytes, limit: int) -> int:
    """Occurrences of the single byte `char` in `raw`, or any number over `limit`. bytes.count
    looks at every byte, find and rfind skip (memchr): the last one is found from the end, and
    when it comes early (a request's tensor `data` usually comes last, after its keys) only
    what precedes it is counted; otherwise a few finds, `limit` + 1 at most."""
    last = raw.rfind(char)
    if last < 4096:
        return raw.count(char, 0, last) + 1 if last != -1 else 0
    found = 0
    at = raw.find(char)
    while at != -1 and found <= limit:
        found += 1
        at = raw.find(char, at + 1)
    return found


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return doc


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _parse_int(text: str) -> int | float:
    if len(text) > 30:  # beyond 64 bits whatever it is; int() of 5000 digits would raise
        return _parse_float(text)
    value = int(text)
    return value if _INT_RANGE[0] <= value <= _INT_RANGE[1] else float(value)


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _bad("a number is too large for a 64-bit float")
    return value


def _stdlib(text: str) -> Any:
    return json.loads(
        text,
        object_pairs_hook=_no_duplicates,
        parse_int=_parse_int,
        parse_float=_parse_float,
    )


def _stdlib_loads(raw: bytes) -> Any:
    """The strict second parse of a body holding NaN/Infinity literals."""
    if raw.startswith(_BOM):
        raise _bad("it must be UTF-8 without a byte order mark")
    try:
        text = raw.decode("utf-8")  # strict: refuses invalid bytes and encoded surrogates
    except UnicodeDecodeError:
        raise _bad("it must be UTF-8 without a byte order mark") from None
    try:
        doc = _stdlib(text)
    except _DuplicateKey as exc:
        raise duplicate_key_error(exc.key) from None
    except RecursionError:  # the C scanner's own bound, raised cleanly before ours applies
        raise too_deep() from None
    except ValueError as exc:
        raise _bad(str(exc)) from None
    count_keys(doc, 1)  # before orjson.dumps, whose own bound is 255 levels
    try:
        orjson.dumps(doc)  # refuses what orjson refuses on output: lone surrogates
    except orjson.JSONEncodeError:
        raise _bad("a string holds a lone UTF-16 surrogate") from None
    return doc


def duplicate_key_error(key: str) -> BadRequest:
    return _bad(f"the key {key!r} appears twice in one object; send each key once")


def duplicate_key(raw: bytes) -> str | None:
    """The first key that appears twice in one object of `raw` (a document `loads` accepted,
    so it parses and is shallow), or None."""
    try:
        _stdlib(raw.decode("utf-8"))
    except _DuplicateKey as exc:
        return exc.key
    except RecursionError:  # deep inside a tensor's `data`: refused there, not here
        return None
    return None


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialize {type(value).__name__}")


_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def dumps(doc: Any) -> bytes:
    """Serialize, numpy arrays included."""
    return orjson.dumps(doc, default=_default, option=_OPTIONS)
