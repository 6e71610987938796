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


def _load_json(raw: bytes | memoryview) -> Any:
    try:
        return json_backend.loads(bytes(raw) if isinstance(raw, memoryview) else raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(
            "request body is not valid JSON: send a V2 inference request "
            '{"inputs": [{"name", "shape", "datatype", "data"}]}'
        ) from None


def _shape(value: Any, name: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise BadRequest(f"input '{name}': 'shape' must be a list of non-negative integers")
    return value


def _params(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be an object, got {type(value).__name__}")
    return value


def _flag(params: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{where}: {key} must be true or false, got {value!r}")
    return value


def decode_request(body: bytes, header_length: str | None) -> InferRequest:
    """Split JSON and binary parts and check the envelope's structure."""
    view = memoryview(body)
    if header_length is not None:
        try:
            json_len = int(header_length)
        except ValueError:
            raise BadRequest(f"{HEADER_LENGTH} must be an integer, got {header_length!r}") from None
        if not 0 < json_len <= len(body):
            raise BadRequest(
                f"{HEADER_LENGTH} is {json_len} but the body has {len(body)} bytes: "
                "it must be the length of the JSON part that starts the body"
            )
        doc = _load_json(view[:json_len])
        rest = view[json_len:]
    else:
        doc = _load_json(body)
        rest = view[len(body) :]
    if not isinstance(doc, dict):
        raise BadRequest("request body must be a JSON object with an 'inputs' list")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest("request needs a non-empty 'inputs' list")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("'id' must be a string")
    params = _params(doc.get("parameters"), "'parameters'")

    inputs: list[InputTensor] = []
    offset = 0
    for item in raw_inputs:
        if not isinstance(item, dict):
            raise BadRequest("each entry of 'inputs' must be an object")
        name = item.get("name")
        if not isinstance(name, str):
            raise BadRequest("each input needs a 'name' string")
        datatype = item.get("datatype")
        if not isinstance(datatype, str) or datatype not in V2_TO_NUMPY:
            raise BadRequest(
                f"input '{name}': unknown datatype {datatype!r}; "
                f"use one of {', '.join(V2_TO_NUMPY)}"
            )
        tensor = InputTensor(name, datatype, _shape(item.get("shape"), name))
        iparams = _params(item.get("parameters"), f"input '{name}': 'parameters'")
        size = iparams.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise BadRequest(
                    f"input '{name}': binary_data_size must be a byte count (a non-negative "
                    f"integer), got {size!r}"
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
    raw_outputs = doc.get("outputs")
    binary_default = _flag(params, "binary_data_output", False, "'parameters'")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list):
            raise BadRequest("'outputs' must be a list of {name, parameters}")
        outputs = {}
        for out in raw_outputs:
            if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                raise BadRequest("each entry of 'outputs' needs a 'name' string")
            where = f"output '{out['name']}': 'parameters'"
            oparams = _params(out.get("parameters"), where)
            outputs[out["name"]] = _flag(oparams, "binary_data", binary_default, where)
    return InferRequest(request_id, inputs, outputs, binary_default, params)
