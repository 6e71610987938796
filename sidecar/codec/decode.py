"""Decode a V2 infer request: the envelope (JSON), split from the binary extension's tensors.

Pure functions, no HTTP framework: the transport passes the raw body and one header. Only the
wire format is checked here; tensor data is decoded in `tensors`, and shapes and datatypes are
checked against the model in `sidecar.serving.validation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sidecar.codec import json_backend
from sidecar.codec.datatypes import V2_TO_NUMPY
from sidecar.codec.wire import HEADER_LENGTH
from sidecar.errors import BadRequest


@dataclass(slots=True)
class InputTensor:
    """One request input as sent: shape and datatype as claimed, data still undecoded."""

    name: str
    datatype: str
    shape: list[int]
    data: Any = None
    raw: memoryview | None = None


@dataclass(slots=True)
class InferRequest:
    """A decoded request envelope."""

    id: str | None
    inputs: list[InputTensor]
    # None: every output, as JSON. Otherwise output name -> binary?
    outputs: dict[str, bool] | None = None
    binary_default: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)
    # Output name -> K: Triton's classification extension, the top K as "score:index:label".
    classification: dict[str, int] = field(default_factory=dict)


def _header_length(value: str, body_length: int) -> int:
    # Digits only: int() would also take " 12", "+12" and "1_2".
    if not (value.isascii() and value.isdigit()) or len(value) > 19:
        raise BadRequest(
            f"{HEADER_LENGTH} must be the byte length of the JSON part (digits only), "
            f"got {value[:40]!r}"
        )
    json_len = int(value)
    if not 0 < json_len <= body_length:
        raise BadRequest(
            f"{HEADER_LENGTH} is {json_len} but the body has {body_length} bytes: "
            "it must be the length of the JSON part that starts the body"
        )
    return json_len


def _check_duplicates(raw: bytes, keys: int) -> None:
    """Refuse duplicate keys (orjson keeps the last silently). Every key is followed by a
    colon, so when the JSON holds exactly as many colons as the keys counted in the envelope,
    no key was given twice. Otherwise (colons inside strings, objects inside `data`) look for
    a duplicate properly."""
    if json_backend.count(raw, b":", keys) != keys:
        key = json_backend.duplicate_key(raw)
        if key is not None:
            raise json_backend.duplicate_key_error(key)


def _others(obj: dict[str, Any], known: frozenset[str], level: int) -> int:
    """Keys within the fields of `obj` (at `level`) that V2 does not define: ignored, but held
    to the same depth bound and counted for the duplicate check."""
    if known.issuperset(obj):  # the common case: nothing else
        return 0
    return sum(json_backend.count_keys(v, level + 1) for k, v in obj.items() if k not in known)


def _show(value: Any) -> str:
    """A client's value for an error message: short, and never a recursive repr."""
    if isinstance(value, (list, dict)):
        return f"a JSON {'array' if isinstance(value, list) else 'object'}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_NO_BINARY = memoryview(b"")
_NO_PARAMS: dict[str, Any] = {}  # read only
_ENVELOPE = frozenset(("id", "inputs", "outputs", "parameters"))
_INPUT = frozenset(("name", "shape", "datatype", "data", "parameters"))
_OUTPUT = frozenset(("name", "parameters"))


def _shape(value: Any, name: str) -> list[int]:
    if type(value) is list:
        for d in value:
            if type(d) is not int or d < 0:
                break
        else:
            return value
    raise BadRequest(f"input '{name}': 'shape' must be a list of non-negative integers")


def _params(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise BadRequest(f"{where} must be an object, got {_show(value)}")
    return value


def _flag(params: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{where}: {key} must be true or false, got {_show(value)}")
    return value


def decode_request(body: bytes, header_length: str | None) -> InferRequest:
    """Split JSON and binary parts and check the envelope's structure."""
    if header_length is not None:
        json_len = _header_length(header_length, len(body))
        head = body[:json_len]
        rest = memoryview(body)[json_len:]
    else:
        head = body
        rest = _NO_BINARY
    doc = json_backend.loads(head)
    if type(doc) is not dict:
        raise BadRequest(
            f"request body must be a JSON object with an 'inputs' list, got {_show(doc)}"
        )
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest("request needs a non-empty 'inputs' list")
    request_id = doc.get("id")
    if request_id is not None and type(request_id) is not str:
        raise BadRequest(f"'id' must be a string, got {_show(request_id)}")
    params = _params(doc.get("parameters"), "'parameters'")
    keys = len(doc) + json_backend.count_keys(params, 2) + _others(doc, _ENVELOPE, 1)

    inputs: list[InputTensor] = []
    offset = 0
    for item in raw_inputs:
        if type(item) is not dict:
            raise BadRequest(f"each entry of 'inputs' must be an object, got {_show(item)}")
        name = item.get("name")
        if type(name) is not str:
            raise BadRequest("each input needs a 'name' string")
        datatype = item.get("datatype")
        if not isinstance(datatype, str) or datatype not in V2_TO_NUMPY:
            raise BadRequest(
                f"input '{name}': unknown datatype {_show(datatype)}; "
                f"use one of {', '.join(V2_TO_NUMPY)}"
            )
        tensor = InputTensor(name, datatype, _shape(item.get("shape"), name))
        iparams = item.get("parameters")
        if iparams is None:
            iparams = _NO_PARAMS
        elif type(iparams) is not dict:
            _params(iparams, f"input '{name}': 'parameters'")  # raises
        keys += len(item) + json_backend.count_keys(iparams, 4) + _others(item, _INPUT, 3)
        size = iparams.get("binary_data_size")
        if size is not None:
            if type(size) is not int or size < 0:
                raise BadRequest(
                    f"input '{name}': binary_data_size must be a byte count (a non-negative "
                    f"integer), got {_show(size)}"
                )
            if offset + size > len(rest):
                raise BadRequest(
                    f"input '{name}': binary_data_size {size} runs past the end of the body "
                    f"({len(rest) - offset} bytes left after the JSON header)"
                )
            tensor.raw = rest[offset : offset + size]
            offset += size
        elif "data" not in item:
            raise BadRequest(f"input '{name}' has no 'data' and no binary_data_size")
        else:
            tensor.data = item["data"]
        inputs.append(tensor)
    if offset != len(rest):
        raise BadRequest(
            f"{len(rest) - offset} bytes of binary data are not claimed by any input's "
            "binary_data_size"
        )

    outputs = None
    classification: dict[str, int] = {}
    raw_outputs = doc.get("outputs")
    binary_default = _flag(params, "binary_data_output", False, "'parameters'")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list):
            raise BadRequest("'outputs' must be a list of {name, parameters}")
        outputs = {}
        for out in raw_outputs:
            if type(out) is not dict or type(out.get("name")) is not str:
                raise BadRequest("each entry of 'outputs' needs a 'name' string")
            where = f"output '{out['name']}': 'parameters'"
            oparams = _params(out.get("parameters"), where)
            keys += len(out) + json_backend.count_keys(oparams, 4) + _others(out, _OUTPUT, 3)
            outputs[out["name"]] = _flag(oparams, "binary_data", binary_default, where)
            top = oparams.get("classification")
            if top is not None:
                if type(top) is not int or top < 1:
                    raise BadRequest(
                        f"{where}: classification must be the number of top classes to "
                        f"return (an integer of at least 1), got {_show(top)}"
                    )
                classification[out["name"]] = top
    _check_duplicates(head, keys)
    return InferRequest(request_id, inputs, outputs, binary_default, params, classification)
