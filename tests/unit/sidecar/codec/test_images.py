"""Encoded images decode within their limits; every refusal is a 400 that says why."""

from __future__ import annotations

import base64

import pytest

from sidecar.codec.images import ImageLimits, decode_image
from sidecar.errors import BadRequest
from tests import images

LIMITS = ImageLimits(max_bytes=64 * 1024, max_pixels=1000 * 1000)


def _refused(data: bytes, limits: ImageLimits = LIMITS) -> str:
    with pytest.raises(BadRequest) as err:
        decode_image(data, limits)
    assert err.value.status == 400
    return err.value.message


def test_png_and_jpeg_decode_and_jpeg_drafts_to_a_smaller_scale():
    seven = images.SEVEN.read_bytes()
    assert decode_image(seven, LIMITS).size == (96, 96)
    jpeg, _ = images.digit_file(0, style=3)  # 480x480 JPEG
    assert decode_image(jpeg, LIMITS).size == (480, 480)
    assert decode_image(jpeg, LIMITS, draft=(64, 64)).size == (120, 120)


def test_base64_and_data_urls_are_read_as_the_file_they_encode():
    seven = images.SEVEN.read_bytes()
    encoded = base64.b64encode(seven)
    assert decode_image(encoded, LIMITS).size == (96, 96)
    assert decode_image(b"data:image/png;base64," + encoded, LIMITS).size == (96, 96)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "image is empty"),
        (b"hello, not an image", "not a PNG or JPEG image"),
        (images.gif(), "not a PNG or JPEG image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not a PNG or JPEG image"),
    ],
)
def test_what_is_not_an_accepted_image_is_refused_by_name(data, needle):
    assert needle in _refused(data)


def test_a_file_over_the_byte_limit_is_refused_before_decoding():
    message = _refused(images.png(600, 600, 7), ImageLimits(max_bytes=100, max_pixels=1 << 20))
    assert "the limit is 100 bytes" in message


def test_a_header_declaring_too_many_pixels_is_refused_before_any_is_decoded():
    message = _refused(images.png_declaring(40000, 40000))
    expected = "image is 40000×40000 (1600000000 pixels), the limit is 1000000 pixels"  # noqa: RUF001
    assert expected in message


def test_pillows_own_bomb_guard_is_a_400_too():
    limits = ImageLimits(max_bytes=1 << 20, max_pixels=1 << 40)  # Pillow's refuses, not ours
    assert "decompression bomb" in _refused(images.png_declaring(100000, 100000), limits)


def test_a_truncated_file_is_refused_as_such():
    jpeg, _ = images.digit_file(0, style=3)
    assert "does not decode whole" in _refused(images.truncated(jpeg))
    assert "does not decode whole" in _refused(images.truncated(images.zlib_bomb(800)))
