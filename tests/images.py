"""Image files for tests: digits drawn as PNG/JPEG (models/rendered.py), and hostile files."""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache

import numpy as np
from PIL import Image, PngImagePlugin

from models import rendered

SEVEN = rendered.HERE / "handwriting" / "seven.png"


@cache
def held_out_digits() -> tuple[np.ndarray, np.ndarray]:
    """The held-out split the sample models were scored on: (8x8 digits, labels)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    _, x_test, _, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
    return x_test.reshape(-1, 8, 8), y_test


def digit_file(index: int, style: int = 0) -> tuple[bytes, int]:
    """Held-out digit `index` in test style `style`: (file bytes, its label)."""
    digits, labels = held_out_digits()
    return rendered.render(digits[index], rendered.TEST_STYLES[style], index), int(labels[index])


def png(width: int, height: int, colour: int = 255) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def gif() -> bytes:
    out = io.BytesIO()
    Image.new("L", (8, 8), 0).save(out, "GIF")
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height (its data is a few bytes): a
    decompression bomb as far as the header goes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def zlib_bomb(side: int = 4000) -> bytes:
    """A real PNG of side x side black pixels: a few KB that decode to side² bytes."""
    return png(side, side, 0)


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def png_with_metadata(exif: bytes | None = None, text: dict[str, str] | None = None) -> bytes:
    """A valid 32x32 PNG carrying an `eXIf` chunk and/or text chunks as given (e.g. EXIF that
    is not EXIF, or a "Raw profile type exif" text that is not hex)."""
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    kwargs = {"exif": exif} if exif is not None else {}
    Image.new("L", (32, 32), 255).save(buffer, "PNG", pnginfo=info, **kwargs)
    return buffer.getvalue()
