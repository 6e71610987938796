"""Uploads on the infer URL: `multipart/form-data` image files or a raw `image/*` body, turned
into the V2 request a client would have sent (one BYTES row per image).

A lab client (`requests.post(url, files={"image": f})`) only changes its URL. Every file
part must be named `image` (or after the model's BYTES input); each is one batch row, in the
order sent. A raw `image/png` or `image/jpeg` body is one row. Only the envelope is built
here: the bytes are decoded by the model's pre-processing, within its limits.
"""

from __future__ import annotations

import struct
from email.message import Message

from sidecar.codec.decode import InferRequest, InputTensor
from sidecar.errors import BadRequest

FIELD = "image"
MULTIPART = "multipart/form-data"
# Bounds on what the parser walks: a part's header block, and parts per body.
MAX_PART_HEADER_BYTES = 8 * 1024
MAX_PARTS = 1024
# A Content-Type or Content-Disposition value, at most: their parameters are parsed by
# `email.message`, whose cost grows with the square of a value's length.
MAX_PARAMETERS_BYTES = 1024


def media_type(content_type: str | None) -> str:
    """`type/subtype` of a Content-Type value, lower case ("" when absent)."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def is_upload(content_type: str | None) -> bool:
    """Whether a body of this type is an upload rather than a V2 JSON (or binary) request."""
    kind = media_type(content_type)
    return kind == MULTIPART or kind.startswith("image/")


def upload_request(body: bytes, content_type: str, input_name: str) -> InferRequest:
    """The V2 request an upload stands for: `input_name` BYTES [n] holding the n files."""
    kind = media_type(content_type)
    files = [body] if kind.startswith("image/") else multipart_files(body, content_type, input_name)
    # The binary extension's layout (4-byte little-endian length, then the bytes): the data
    # then takes the same path as a tritonclient request's.
    raw = b"".join(struct.pack("<I", len(f)) + f for f in files)
    tensor = InputTensor(input_name, "BYTES", [len(files)], raw=memoryview(raw))
    return InferRequest(None, [tensor])


def _boundary(content_type: str) -> bytes:
    if len(content_type) > MAX_PARAMETERS_BYTES:  # email's parameter parser is quadratic
        raise BadRequest(
            f"the Content-Type of a multipart/form-data body is over {MAX_PARAMETERS_BYTES} "
            "bytes; send just the type and its boundary"
        )
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not 1 <= len(boundary) <= 70:
        raise BadRequest(
            "a multipart/form-data body needs a boundary parameter (1 to 70 characters) in "
            "its Content-Type; let the HTTP client build the body (curl -F, requests' files=)"
        )
    return boundary.encode("latin-1")


def _disposition(head: bytes, index: int) -> tuple[str | None, str | None]:
    """(name, filename) of a part from its header block."""
    header = Message()
    for line in head.decode("latin-1").split("\r\n"):
        key, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(f"multipart part {index}: malformed header line {line[:60]!r}")
        if key.strip().lower() == "content-disposition":
            if len(value) > MAX_PARAMETERS_BYTES:  # email's parameter parser is quadratic
                raise BadRequest(
                    f"multipart part {index}: its Content-Disposition is over "
                    f"{MAX_PARAMETERS_BYTES} bytes; send a name and a short file name"
                )
            header["content-disposition"] = value.strip()
    if header["content-disposition"] is None:
        raise BadRequest(f"multipart part {index} has no Content-Disposition header")
    name = header.get_param("name", header="content-disposition")
    filename = header.get_param("filename", header="content-disposition")
    return (
        name if isinstance(name, str) else None,
        filename if isinstance(filename, str) else None,
    )


def multipart_files(body: bytes, content_type: str, input_name: str) -> list[bytes]:
    """The file parts' contents, in order (RFC 7578); 400 for anything else in the body."""
    delimiter = b"--" + _boundary(content_type)
    start = body.find(delimiter)
    if start < 0:
        raise BadRequest(
            "multipart/form-data body does not contain its boundary; the body and its "
            "Content-Type do not match"
        )
    names = {FIELD, input_name}
    files: list[bytes] = []
    pos = start + len(delimiter)
    while True:
        if body.startswith(b"--", pos):  # the closing delimiter
            break
        if not body.startswith(b"\r\n", pos):
            raise BadRequest("multipart/form-data body is malformed after a boundary")
        pos += 2
        head_end = body.find(b"\r\n\r\n", pos, pos + MAX_PART_HEADER_BYTES + 4)
        index = len(files) + 1
        if head_end < 0:
            if len(body) - pos <= MAX_PART_HEADER_BYTES:
                raise BadRequest(f"multipart part {index} is truncated within its headers")
            raise BadRequest(
                f"multipart part {index}: its headers do not end within "
                f"{MAX_PART_HEADER_BYTES} bytes"
            )
        name, filename = _disposition(body[pos:head_end], index)
        end = body.find(b"\r\n" + delimiter, head_end + 4)
        if end < 0:
            raise BadRequest(
                f"multipart part {index} is not closed by the boundary: the body is truncated"
            )
        if name not in names:
            raise BadRequest(
                f"multipart field {name!r} is not accepted: send each image as a file in "
                f"field '{FIELD}' (curl -F image=@digit.png)"
            )
        if filename is None and name == FIELD:
            raise BadRequest(
                f"multipart field '{FIELD}' must be a file (curl -F image=@digit.png, with the @)"
            )
        files.append(body[head_end + 4 : end])
        if len(files) > MAX_PARTS:
            raise BadRequest(f"more than {MAX_PARTS} images in one request; send fewer")
        pos = end + 2 + len(delimiter)
    if not files:
        raise BadRequest(f"multipart/form-data body holds no '{FIELD}' file")
    return files
