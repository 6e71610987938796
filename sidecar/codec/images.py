"""Encoded images (PNG, JPEG) from clients into decoded Pillow images, within limits.

A V2 JSON request carries BYTES as text, so there an image is sent base64-encoded (plain, or
as a `data:image/png;base64,...` URL); anything that does not start like a PNG or JPEG file is
read as base64 first. The binary extension and uploads carry the file's own bytes.

Every refusal is the client's (`BadRequest`, a 400) and says what was wrong: too many bytes,
not an accepted format, too many pixels (checked from the header, before any pixel is
decoded: a 40 KB PNG may declare 40000 x 40000), or a file that does not decode whole
(truncated, corrupt). Pillow's own decompression-bomb guard stays on, far beyond ours.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from sidecar.errors import BadRequest

# Ours (`ImageLimits.max_pixels`, at most 64 Mi) is what refuses, with the image's size in the
# message; Pillow's own guard, which raises in `Image.open` at twice this value, is raised out
# of its way and stays as a last resort. Its warning below that is noise here.
Image.MAX_IMAGE_PIXELS = 1 << 31
warnings.simplefilter("ignore", Image.DecompressionBombWarning)

FORMATS = ("PNG", "JPEG")
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """What one encoded image may be: bytes, decoded pixels (width x height), formats. The
    defaults of a model's limits are `sidecar.serving.model_config.Images`'."""

    max_bytes: int
    max_pixels: int
    formats: tuple[str, ...] = FORMATS


def _formats_text(formats: Sequence[str]) -> str:
    return " or ".join(formats) if len(formats) <= 2 else ", ".join(formats)


def _unbase64(data: bytes) -> bytes:
    """Base64 text (a data: URL's included) decoded; anything else as it was."""
    text = data.strip()
    if text.startswith(b"data:"):
        text = text.partition(b",")[2]
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return data
    return decoded if decoded.startswith(_MAGIC) else data


def decode_image(
    data: bytes, limits: ImageLimits, draft: tuple[int, int] | None = None, what: str = "image"
) -> Image.Image:
    """`data` decoded, or a 400 naming `what` (e.g. "image 2"). `draft` lets a JPEG decode at
    a reduced scale no smaller than that size (much cheaper when the model wants it small)."""
    if not data:
        formats = _formats_text(limits.formats)
        raise BadRequest(f"{what} is empty: send the bytes of a {formats} file")
    if not data.startswith(_MAGIC) and len(data) <= limits.max_bytes * 4 // 3 + 64:
        data = _unbase64(data)
    if len(data) > limits.max_bytes:
        raise BadRequest(
            f"{what} is {len(data)} bytes, the limit is {limits.max_bytes} bytes; send a "
            "smaller file"
        )
    try:
        image = Image.open(io.BytesIO(data), formats=list(limits.formats))
    except Image.DecompressionBombError:
        raise BadRequest(
            f"{what} declares more pixels than any image this sidecar decodes (a "
            f"decompression bomb?); the limit is {limits.max_pixels} pixels"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise BadRequest(
            f"{what} is not a {_formats_text(limits.formats)} image ({len(data)} bytes that "
            "no accepted format recognises); send the file itself, not text or base64"
        ) from None
    width, height = image.size
    if width * height > limits.max_pixels:
        image.close()
        raise BadRequest(
            f"{what} is {width}×{height} ({width * height} pixels), the limit is "  # noqa: RUF001
            f"{limits.max_pixels} pixels; send a smaller image"
        )
    if width == 0 or height == 0:
        image.close()
        raise BadRequest(f"{what} is {width}×{height}: it has no pixels")  # noqa: RUF001
    try:
        if draft is not None and image.format == "JPEG":
            image.draft(image.mode, draft)
        image.load()
    except MemoryError:
        raise
    except Exception:  # whatever the decoder says about a broken file is the file's fault
        image.close()
        raise BadRequest(
            f"{what} is a {image.format} file that does not decode whole (truncated or "
            "corrupt); send the complete file"
        ) from None
    try:
        image.getexif()  # parsed lazily, after the pixels: a broken EXIF block is the file's too
    except MemoryError:
        raise
    except Exception:
        image.close()
        raise BadRequest(
            f"{what} is a {image.format} file whose EXIF metadata does not parse; send it "
            "without EXIF, or as its camera wrote it"
        ) from None
    return image
