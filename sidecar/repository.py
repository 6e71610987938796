"""The model repository on disk (`<name>/<version>/model.onnx`) and the loaded versions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sidecar.batching import BatchPolicy
from sidecar.errors import NotFound
from sidecar.model import DriverFactory, ModelVersion
from sidecar.model_config import ModelConfig, load_model_config

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Entry:
    """A model version found on disk, not yet loaded."""

    name: str
    version: str
    path: Path


def scan(root: Path) -> list[Entry]:
    """Every `<name>/<numeric version>/model.onnx` under root, sorted by name then version."""
    if not root.is_dir():
        raise FileNotFoundError(f"model repository {root} is not a directory")
    entries = []
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for version_dir in model_dir.iterdir():
            if version_dir.name.isdigit() and (version_dir / "model.onnx").is_file():
                entries.append(Entry(model_dir.name, version_dir.name, version_dir / "model.onnx"))
    entries.sort(key=lambda e: (e.name, int(e.version)))
    return entries


class Repository:
    """Loaded model versions by name; the highest version answers when none is asked for."""

    def __init__(self) -> None:
        self._models: dict[str, dict[str, ModelVersion]] = {}
        self._latest: dict[str, ModelVersion] = {}

    @classmethod
    def load(
        cls,
        root: Path,
        defaults: BatchPolicy,
        device: str,
        intra_op_threads: int,
        driver_factory: DriverFactory,
    ) -> Repository:
        repo = cls()
        configs: dict[str, ModelConfig] = {}
        for entry in scan(root):
            if entry.name not in configs:
                configs[entry.name] = load_model_config(root / entry.name)
            repo.add(
                ModelVersion(
                    entry.name,
                    entry.version,
                    entry.path,
                    configs[entry.name],
                    defaults,
                    device,
                    intra_op_threads,
                    driver_factory,
                )
            )
        if not repo._models:
            log.warning("no model found under %s (expected <name>/<version>/model.onnx)", root)
        return repo

    def add(self, model: ModelVersion) -> None:
        """Publish a loaded, warmed-up version; the latest pointer moves only after it is ready."""
        versions = self._models.setdefault(model.name, {})
        versions[model.version] = model
        latest = max(versions, key=int)
        self._latest[model.name] = versions[latest]

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        versions = self._models.get(name)
        if versions is None:
            known = ", ".join(sorted(self._models)) or "none"
            raise NotFound(f"unknown model '{name}'; models served here: {known}")
        if version is None:
            return self._latest[name]
        model = versions.get(version)
        if model is None:
            raise NotFound(
                f"model '{name}' has no version '{version}'; versions served: "
                f"{', '.join(sorted(versions, key=int))}"
            )
        return model

    def versions(self, name: str) -> list[str]:
        return sorted(self._models.get(name, {}), key=int)

    def names(self) -> list[str]:
        return sorted(self._models)

    def all(self) -> list[ModelVersion]:
        return [m for versions in self._models.values() for m in versions.values()]
