"""`handwriting`: a PNG or JPEG of one handwritten digit in, its label and confidence out.

The ONNX model (models/build_samples.py) is an MLP on scikit-learn's 8x8 digits: 64 values,
each the share of "on" pixels in a 4x4 block of a 32x32 bitmap. `features` makes those 64
from any reasonable image: any size, colour or grey (transparency included), dark ink on a
light background or light on dark. build_samples trains on what `features` makes of rendered
digits, so serving and training share this one function.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageOps

from sidecar.serving.model_class import BadRequest, ModelContext

# Large photos are shrunk to this before anything else (cheap; a digit needs few pixels).
WORKING_SIZE = 256
CANVAS = 32  # the digits data set's bitmaps: 32x32, counted in 4x4 blocks
BLOCK = 4
INK = 0.35  # of the strongest ink: what counts as the digit when cropping to it
BLANK = 24.0  # ink contrast (0-255) below which there is no digit to read
ORIENTATION = 0x0112  # the EXIF tag


def _grey(image: Image.Image) -> np.ndarray:
    """Luminance 0-255 as float32; transparent parts take the colour that contrasts with
    what is drawn (ink on a transparent background is the digit, whatever its colour)."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        la = np.asarray(image.convert("LA"), dtype=np.float32)
        lum, alpha = la[..., 0], la[..., 1] / 255.0
        if alpha.min() < 1.0:
            drawn = float((lum * alpha).sum() / max(float(alpha.sum()), 1.0))
            background = 0.0 if drawn > 127.5 else 255.0
            return lum * alpha + background * (1.0 - alpha)
        return lum
    return np.asarray(image.convert("L"), dtype=np.float32)


def features(image: Image.Image) -> np.ndarray:
    """The 64 digits features (0..1, row-major 8x8) of an image of one digit."""
    if image.getexif().get(ORIENTATION, 1) != 1:  # a phone photo taken sideways
        image = ImageOps.exif_transpose(image)
    width, height = image.size
    if max(width, height) > WORKING_SIZE:  # a new, small image: the large one is not copied
        scale = WORKING_SIZE / max(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.BOX, reducing_gap=2.0)
    grey = _grey(image)
    h, w = grey.shape
    edge = max(1, min(h, w) // 16)
    border = np.concatenate(
        [grey[:edge].ravel(), grey[-edge:].ravel(), grey[:, :edge].ravel(), grey[:, -edge:].ravel()]
    )
    background = float(np.median(border))
    # Ink is whatever departs furthest from the paper: darker or lighter than it.
    darkest, lightest = np.percentile(grey, (1, 99))
    ink = background - grey if background - darkest > lightest - background else grey - background
    np.clip(ink, 0.0, None, out=ink)
    strongest = float(ink.max())
    if strongest < BLANK:
        raise BadRequest(
            "the image holds no digit: it is all one shade; send a photo or scan of one "
            "handwritten digit"
        )
    ink /= strongest
    rows = np.flatnonzero((ink > INK).any(axis=1))
    cols = np.flatnonzero((ink > INK).any(axis=0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    # Fit the digit's box in the 32x32 canvas, aspect kept, centred (as the data set's were).
    h, w = ink.shape
    scale = CANVAS / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    fitted = np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.BILINEAR))
    canvas = np.zeros((CANVAS, CANVAS), dtype=np.float32)
    top, left = (CANVAS - size[1]) // 2, (CANVAS - size[0]) // 2
    canvas[top : top + size[1], left : left + size[0]] = fitted
    bitmap = (canvas > 0.5).astype(np.float32)
    blocks = bitmap.reshape(CANVAS // BLOCK, BLOCK, CANVAS // BLOCK, BLOCK).mean(axis=(1, 3))
    return blocks.reshape(-1)


class Model:
    """The model class (sidecar/serving/model_class.py): images in, labels out."""

    inputs = [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    outputs = [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "confidence", "datatype": "FP32", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
    ]

    def __init__(self, context: ModelContext) -> None:
        self.context = context
        self.labels = context.labels or [str(i) for i in range(10)]

    def preprocess(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        images = inputs["image"].reshape(-1)
        rows = np.empty((len(images), 64), dtype=np.float32)
        for i, data in enumerate(images):
            what = "image" if len(images) == 1 else f"image {i + 1}"
            # JPEGs decode at a reduced scale, at least the working size: far cheaper.
            with self.context.decode_image(data, what, (WORKING_SIZE, WORKING_SIZE)) as image:
                try:
                    rows[i] = features(image)
                except BadRequest as exc:
                    raise BadRequest(f"{what}: {exc.message}") from None
        return {"input": rows}

    def postprocess(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        probabilities = outputs["probabilities"]
        top = probabilities.argmax(axis=1)
        return {
            "label": np.array([self.labels[i].encode() for i in top.tolist()], dtype=object),
            "confidence": probabilities[np.arange(len(top)), top].astype(np.float32),
            "probabilities": probabilities,
        }
