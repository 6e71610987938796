"""A new version folder appears whole or not at all.

Sidecars rescan the repository while they serve (`sidecar/serving/repository.py:scan` loads
every `<name>/<digits>/model.onnx` it sees), so a version folder must never exist half
written. The files are written into a staging folder beside it, named so no scan takes it
for a version (a leading dot, not digits), then renamed into place: one rename(2) on one
file system.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MODEL_FILE = "model.onnx"
REPORT_FILE = "quantization.json"


class PublishError(RuntimeError):
    """The version could not be put in place; nothing half-written is left behind."""


def stage(model_dir: Path, new: str) -> Path:
    """An empty staging folder inside the model's folder (the same file system)."""
    staging = Path(tempfile.mkdtemp(prefix=f".quantize-{new}-", dir=model_dir))
    # mkdtemp makes it 0700; a sidecar may run as another user (uid 10001 in the image).
    staging.chmod(0o755)
    return staging


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(staging: Path, target: Path) -> None:
    """Rename the complete staging folder to `target`; the staging folder is gone either way."""
    try:
        for entry in staging.iterdir():
            entry.chmod(0o644)
            _sync(entry)  # the data is on disk before the name that exposes it
        if target.exists():
            raise PublishError(
                f"{target} appeared while quantizing (another `weir quantize`?); "
                "nothing was written: choose another --to version"
            )
        os.rename(staging, target)
        _sync(target.parent)
    except BaseException:
        discard(staging)
        raise


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
