"""Digits rendered as image files, and the `handwriting` sample model trained on them.

scikit-learn's digits are 8x8 grids of ink (0-16). `render` draws one as a PNG or JPEG of a
given size, colours and placement, so that the model is trained and scored exactly as it
serves: every rendered file goes through the model class's own `preprocess` (decoding
included, models/handwriting/model.py). Training uses styles drawn at random (sizes 20-320
px, any colours with contrast either way, PNG or JPEG, grey, RGB or transparent); the score
is on the held-out digits, never trained on, in the fixed `TEST_STYLES`.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
MODEL_FILE = HERE / "handwriting" / "model.py"
LABELS = [str(i) for i in range(10)]
TRAIN_RENDERS = 4  # random styles per training digit


@dataclass(frozen=True)
class Style:
    """How one digit is drawn: canvas size, digit height as a share of it, where, colours."""

    name: str
    size: tuple[int, int]  # width, height of the file
    height: float  # the digit's 8x8 box, as a share of the canvas height
    offset: tuple[float, float]  # the box's centre, as shares of width and height
    ink: tuple[int, int, int]
    paper: tuple[int, int, int]
    mode: str  # L, RGB or RGBA (RGBA: paper fully transparent)
    fmt: str  # PNG or JPEG
    quality: int = 90
    noise: float = 0.0  # Gaussian noise, 0-255 scale

    def describe(self) -> str:
        kind = {"L": "grey", "RGB": "colour", "RGBA": "RGBA"}[self.mode]
        if self.mode == "RGBA":
            shade = "ink on a transparent background"
        else:
            shade = "dark on light" if sum(self.ink) < sum(self.paper) else "light on dark"
        return f"{self.size[0]}x{self.size[1]} {self.fmt} {kind}, {shade}"


TEST_STYLES = (
    Style("small-png", (28, 28), 0.8, (0.5, 0.5), (0, 0, 0), (255, 255, 255), "L", "PNG"),
    Style("jpeg-dark", (64, 64), 0.7, (0.5, 0.5), (250, 250, 250), (5, 5, 5), "L", "JPEG", 85),
    Style(
        "blue-yellow", (200, 200), 0.6, (0.45, 0.55), (20, 40, 160), (250, 230, 120), "RGB", "PNG"
    ),
    Style(
        "pencil-photo",
        (480, 480),
        0.5,
        (0.55, 0.45),
        (90, 90, 95),
        (235, 232, 225),
        "RGB",
        "JPEG",
        75,
        6.0,
    ),
    Style("transparent", (96, 96), 0.75, (0.5, 0.5), (10, 10, 10), (0, 0, 0), "RGBA", "PNG"),
    Style("wide-slate", (300, 180), 0.7, (0.3, 0.5), (160, 230, 160), (40, 50, 60), "RGB", "JPEG"),
)


def render(digit: np.ndarray, style: Style, seed: int = 0) -> bytes:
    """One 8x8 digit (0-16) as an image file in `style`."""
    width, height = style.size
    box = max(4, round(height * style.height))
    glyph = Image.fromarray((digit / 16.0).astype(np.float32)).resize(
        (box, box), Image.Resampling.BICUBIC
    )
    alpha = np.zeros((height, width), dtype=np.float32)
    left = round(style.offset[0] * width - box / 2)
    top = round(style.offset[1] * height - box / 2)
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(width, left + box), min(height, top + box)
    alpha[y0:y1, x0:x1] = np.asarray(glyph)[y0 - top : y1 - top, x0 - left : x1 - left]
    np.clip(alpha, 0.0, 1.0, out=alpha)
    ink, paper = np.array(style.ink, np.float32), np.array(style.paper, np.float32)
    if style.mode == "RGBA":
        pixels = np.empty((height, width, 4), dtype=np.float32)
        pixels[..., :3] = ink
        pixels[..., 3] = alpha * 255.0
    else:
        pixels = paper + (ink - paper) * alpha[..., None]
        if style.noise:
            pixels += np.random.default_rng(seed).normal(0.0, style.noise, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if style.mode == "L":
        image = image.convert("L")
    out = io.BytesIO()
    if style.fmt == "JPEG":
        image.save(out, "JPEG", quality=style.quality)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def _luminance(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def random_style(rng: np.random.Generator) -> Style:
    """A training style: any size, placement, colours with contrast, format and mode."""
    width = int(rng.integers(20, 321))
    height = int(np.clip(width * rng.uniform(0.6, 1.6), 16, 400))
    paper = rng.integers(0, 256, 3)
    ink = rng.integers(0, 256, 3)
    while abs(_luminance(ink) - _luminance(paper)) < 80:
        ink = rng.integers(0, 256, 3)
    mode = str(rng.choice(["L", "RGB", "RGB", "RGBA"]))
    fmt = "PNG" if mode == "RGBA" else str(rng.choice(["PNG", "JPEG"]))
    share = rng.uniform(0.4, 0.9)
    spare = (1.0 - share) / 2
    offset = (
        0.5 + rng.uniform(-spare, spare) * height / width * 0.8,
        0.5 + rng.uniform(-spare, spare) * 0.8,
    )
    return Style(
        "random",
        (width, height),
        share,
        offset,
        (int(ink[0]), int(ink[1]), int(ink[2])),
        (int(paper[0]), int(paper[1]), int(paper[2])),
        mode,
        fmt,
        int(rng.integers(60, 96)),
        float(rng.choice([0.0, 0.0, 4.0, 8.0])),
    )


def model_class() -> ModuleType:
    """models/handwriting/model.py, loaded as the sidecar loads it (by path)."""
    spec = importlib.util.spec_from_file_location("weir_model_handwriting", MODEL_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def preprocessor() -> Callable[[bytes], np.ndarray]:
    """File bytes -> the model's 64 features, through the model class's own `preprocess`."""
    from sidecar.serving.model_class import ModelContext

    model = model_class().Model(ModelContext("handwriting", "1", LABELS))

    def features(data: bytes) -> np.ndarray:
        return model.preprocess({"image": np.array([data], dtype=object)})["input"][0]

    return features


def build_handwriting(
    repository: Path, dense_graph: Callable[..., Any], save: Callable[..., None]
) -> dict[str, float]:
    """Train on rendered training digits, write handwriting/1, score on held-out renders."""
    import onnxruntime as ort
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
    features = preprocessor()
    rng = np.random.default_rng(11)
    train_x, train_y = [], []
    for i, (digit, label) in enumerate(zip(x_train, y_train, strict=True)):
        for r in range(TRAIN_RENDERS):
            style = random_style(rng)
            train_x.append(features(render(digit.reshape(8, 8), style, seed=i * 8 + r)))
            train_y.append(label)
    mlp = MLPClassifier(hidden_layer_sizes=(128,), max_iter=800, random_state=0)
    mlp.fit(np.array(train_x), np.array(train_y))
    layers = list(zip(mlp.coefs_, mlp.intercepts_, strict=True))
    path = repository / "handwriting" / "1" / "model.onnx"
    save(dense_graph("handwriting_v1", layers), path)
    # Scored by the ONNX file itself, as the sidecar runs it.
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    scores: dict[str, float] = {}
    hits = 0
    for style in TEST_STYLES:
        rows = [features(render(d.reshape(8, 8), style, seed=i)) for i, d in enumerate(x_test)]
        (probabilities,) = session.run(None, {"input": np.array(rows, dtype=np.float32)})
        right = int((probabilities.argmax(axis=1) == y_test).sum())
        scores[f"handwriting/1 {style.name}"] = right / len(y_test)
        hits += right
    scores["handwriting/1"] = hits / (len(y_test) * len(TEST_STYLES))
    scores["handwriting/1 images"] = len(y_test) * len(TEST_STYLES)
    return scores


def held_out_features() -> np.ndarray:
    """The held-out digits rendered in every test style, through the model's preprocessing:
    the inputs handwriting/1 is scored on (and its drift reference is built from)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    _, x_test, _, _ = train_test_split(x, y, test_size=0.25, random_state=0)
    features = preprocessor()
    rows = [
        features(render(d.reshape(8, 8), style, seed=i))
        for style in TEST_STYLES
        for i, d in enumerate(x_test)
    ]
    return np.array(rows, dtype=np.float32)
