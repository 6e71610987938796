"""Uploads become the V2 request a client would have sent: one BYTES row per image file."""

from __future__ import annotations

import numpy as np
import pytest
import urllib3

from sidecar.codec.tensors import tensor_from_raw
from sidecar.codec.uploads import is_upload, upload_request
from sidecar.errors import BadRequest


def _form(*fields: tuple[str, object]) -> tuple[bytes, str]:
    """A multipart body as requests and curl build it (urllib3's encoder)."""
    return urllib3.encode_multipart_formdata(list(fields), boundary="wEiRbOuNdArY")


def _rows(body: bytes, content_type: str) -> list[bytes]:
    request = upload_request(body, content_type, "image")
    (tensor,) = request.inputs
    assert (tensor.name, tensor.datatype) == ("image", "BYTES")
    return list(tensor_from_raw(tensor, tensor.shape[0]).reshape(-1))


@pytest.mark.parametrize(
    ("content_type", "upload"),
    [
        ("multipart/form-data; boundary=x", True),
        ("image/png", True),
        ("IMAGE/JPEG", True),
        ("application/json", False),
        ("application/octet-stream", False),
        (None, False),
    ],
)
def test_uploads_are_told_from_v2_bodies_by_content_type(content_type, upload):
    assert is_upload(content_type) is upload


def test_each_image_file_is_one_row_in_the_order_sent():
    body, content_type = _form(
        ("image", ("a.png", b"\x89PNG first", "image/png")),
        ("image", ("b.jpg", b"\xff\xd8\xff second\r\n--almost", "image/jpeg")),
    )
    assert _rows(body, content_type) == [b"\x89PNG first", b"\xff\xd8\xff second\r\n--almost"]


def test_a_raw_image_body_is_one_row():
    assert _rows(b"\x89PNG whole body", "image/png") == [b"\x89PNG whole body"]


def test_a_file_in_the_models_input_name_is_accepted_too():
    body, content_type = _form(("pixels", ("a.png", b"data", "image/png")))
    (tensor,) = upload_request(body, content_type, "pixels").inputs
    assert tensor.name == "pixels" and tensor.shape == [1]
    assert np.array_equal(tensor_from_raw(tensor, 1), np.array([b"data"], dtype=object))


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ((("photo", ("a.png", b"x", "image/png")),), "field 'photo' is not accepted"),
        ((("image", "seven.png"),), "must be a file (curl -F image=@digit.png"),
        ((), "holds no 'image' file"),
    ],
)
def test_a_form_without_image_files_is_refused_saying_how_to_send_them(fields, needle):
    body, content_type = _form(*fields)
    with pytest.raises(BadRequest, match=needle.replace("(", r"\(").replace(".", r"\.")):
        upload_request(body, content_type, "image")


def test_a_truncated_or_mismatched_body_is_refused():
    body, content_type = _form(("image", ("a.png", b"x" * 100, "image/png")))
    with pytest.raises(BadRequest, match="truncated within its headers"):
        upload_request(body[:60], content_type, "image")
    with pytest.raises(BadRequest, match="not closed by the boundary"):
        upload_request(body[:180], content_type, "image")
    with pytest.raises(BadRequest, match="does not contain its boundary"):
        upload_request(body, "multipart/form-data; boundary=other", "image")
    with pytest.raises(BadRequest, match="needs a boundary"):
        upload_request(body, "multipart/form-data", "image")


def test_parameter_values_long_enough_to_be_slow_to_parse_are_refused_unparsed():
    # email's parameter parser is quadratic in `;` within a quoted value: 65,000 of them
    # took seconds of CPU. Refused on length, before parsing.
    body, content_type = _form(("image", ("a.png", b"x", "image/png")))
    slow = content_type + '; x="' + ";" * 65_000 + '"'
    with pytest.raises(BadRequest, match="Content-Type of a multipart/form-data body is over"):
        upload_request(body, slow, "image")
    padded = body.replace(b'filename="a.png"', b'filename="a.png"; z="' + b";" * 8000 + b'"')
    with pytest.raises(BadRequest, match="part 1: its Content-Disposition is over 1024 bytes"):
        upload_request(padded, content_type, "image")
