"""The model repository as the release wants it served: what `weir up` hands its sidecars.

Sidecars read batching from each model's `config.yaml`; the release may set it per version.
Rather than teach the sidecars the release, `weir up` builds a view of the repository in the
runtime directory: every model folder mirrored with symlinks (weights are never copied), and a
`config.yaml` that is the model's own with the release's batching laid over it per version.

Views are numbered generations under `repository.d/`, and `repository` is a symlink to the
latest: a new view is swapped in at once (sidecars rescan it and load what is new) and the
previous one can be pointed at again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from scripts.release import Release
from sidecar.generation import GENERATION_FILE, generation

CONFIG = "config.yaml"
# Generations kept besides the live one: a sidecar may still be reading the one before.
KEEP_VIEWS = 3


def _is_model_dir(path: Path) -> bool:
    return path.is_dir() and any(
        v.name.isdigit() and (v / "model.onnx").is_file() for v in path.iterdir()
    )


def merged_config(own: dict[str, Any], release: Release, name: str) -> dict[str, Any]:
    """The model's config with each release version's batching over its own per-version one."""
    model = release.models.get(name)
    if model is None:
        return own
    merged = {**own, "versions": dict(own.get("versions") or {})}
    for version, spec in model.versions.items():
        if spec.batching is not None:
            given = spec.batching.model_dump(exclude_unset=True)
            merged["versions"][version] = {**merged["versions"].get(version, {}), **given}
    if not merged["versions"]:
        del merged["versions"]
    return merged


def build_view(release: Release, models: Path, target: Path) -> Path:
    """(Re)build `target` as the release's view of the repository at `models`."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for model_dir in sorted(p for p in models.iterdir() if _is_model_dir(p)):
        mirror = target / model_dir.name
        mirror.mkdir()
        for entry in model_dir.iterdir():
            if entry.name != CONFIG:
                (mirror / entry.name).symlink_to(entry.resolve())
        own_path = model_dir / CONFIG
        own = (yaml.safe_load(own_path.read_text()) or {}) if own_path.is_file() else {}
        config = merged_config(own, release, model_dir.name)
        if config:
            (mirror / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def point(link: Path, target: Path) -> None:
    """Atomically make `link` a symlink to `target`."""
    if link.exists() and not link.is_symlink():
        shutil.rmtree(link)  # a plain-directory view left by an older Weir
    swap = link.with_name(link.name + ".swap")
    swap.unlink(missing_ok=True)
    swap.symlink_to(target)
    os.replace(swap, link)


def publish_view(release: Release, models: Path, link: Path) -> int:
    """Build the next generation of the view, point `link` at it, and return its number."""
    views = link.with_name(link.name + ".d")
    views.mkdir(parents=True, exist_ok=True)
    number = max([generation(link), *(int(p.name) for p in views.iterdir() if p.name.isdigit())])
    number += 1
    target = build_view(release, models, views / str(number))
    (target / GENERATION_FILE).write_text(f"{number}\n")
    point(link, target)
    for old in sorted((p for p in views.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)):
        if int(old.name) < number - KEEP_VIEWS:
            shutil.rmtree(old, ignore_errors=True)
    return number
