"""The model repository on disk (`<name>/<version>/model.onnx`) and the loaded versions.

Versions come and go while the sidecar serves: `Repository.sync` loads what appeared on disk
(each version warmed up before it is published) and retires what disappeared. The maps are
replaced, never mutated, so the serving thread reads a consistent picture while a loader
thread publishes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sidecar.errors import NotFound
from sidecar.metrics import MODEL_READY
from sidecar.serving.batching import BatchPolicy
from sidecar.serving.model import DriverFactory, ModelVersion
from sidecar.serving.model_config import CONFIG_FILE, ModelConfig, load_model_config

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


# Builds a loaded, warmed-up version from an entry and its model's config.
Loader = Callable[[Entry, ModelConfig], ModelVersion]


# A failed version's model file and config.yaml, as they were: it is retried when either changes.
Stamp = tuple[int, int]


@dataclass
class SyncReport:
    """What one `Repository.sync` changed."""

    loaded: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class Repository:
    """Loaded model versions by name; the highest version answers when none is asked for."""

    def __init__(self) -> None:
        self._models: dict[str, dict[str, ModelVersion]] = {}
        self._latest: dict[str, ModelVersion] = {}
        # Versions on disk that would not load, with why: answered in their 404s, and not
        # retried until their model file or config.yaml changes (a corrupt file would fail
        # every rescan). Replaced, never mutated, like the maps above.
        self._failed: dict[tuple[str, str], tuple[Stamp, str]] = {}

    @staticmethod
    def loader(
        defaults: BatchPolicy, device: str, intra_op_threads: int, driver_factory: DriverFactory
    ) -> Loader:
        def load(entry: Entry, config: ModelConfig) -> ModelVersion:
            return ModelVersion(
                entry.name,
                entry.version,
                entry.path,
                config,
                defaults,
                device,
                intra_op_threads,
                driver_factory,
            )

        return load

    @classmethod
    def load(cls, root: Path, load: Loader) -> Repository:
        """Every version under root, loaded. A version that fails is kept out and answers 404
        with the reason, as on a rescan: a worker restarted after a crash must come back with
        what it can serve, not refuse to boot over one bad folder."""
        repo = cls()
        repo.sync(root, load)
        if not repo._models:
            log.warning("no model found under %s (expected <name>/<version>/model.onnx)", root)
        return repo

    def sync(self, root: Path, load: Loader) -> SyncReport:
        """Load versions new on disk and retire versions gone from it; failures are kept, not
        raised, so one bad folder never stops the others or what already serves."""
        report = SyncReport()
        entries = scan(root)
        on_disk = {(e.name, e.version) for e in entries}
        configs: dict[str, ModelConfig | str] = {}
        for entry in entries:
            key = (entry.name, entry.version)
            label = f"{entry.name}/{entry.version}"
            if entry.version in self._models.get(entry.name, {}):
                continue
            stamp = (_stamp(entry.path), _stamp(root / entry.name / CONFIG_FILE))
            failed = self._failed.get(key)
            if failed is not None and failed[0] == stamp:
                continue
            if entry.name not in configs:
                try:
                    configs[entry.name] = load_model_config(root / entry.name)
                except ValueError as exc:
                    configs[entry.name] = str(exc)
            config = configs[entry.name]
            try:
                if isinstance(config, str):
                    raise ValueError(config)
                self.add(load(entry, config))
            except Exception as exc:  # any load failure is reported, not fatal
                reason = str(exc) or type(exc).__name__
                log.error("could not load model %s version %s: %s", *key, reason)
                self._failed = {**self._failed, key: (stamp, reason)}
                MODEL_READY.labels(*key).set(0)
                report.failed[label] = reason
            else:
                self._failed = {k: v for k, v in self._failed.items() if k != key}
                report.loaded.append(label)
        for name, versions in self._models.items():
            for version in versions:
                if (name, version) not in on_disk:
                    report.retired.append(f"{name}/{version}")
        for label in report.retired:
            self.remove(*label.split("/"))
        self._failed = {k: v for k, v in self._failed.items() if k in on_disk}
        return report

    def add(self, model: ModelVersion) -> None:
        """Publish a loaded, warmed-up version; the latest pointer moves only after it is ready."""
        versions = {**self._models.get(model.name, {}), model.version: model}
        self._models = {**self._models, model.name: versions}
        self._latest = {**self._latest, model.name: versions[max(versions, key=int)]}

    def remove(self, name: str, version: str) -> None:
        """Stop routing to a version; requests already holding it finish on it."""
        versions = {k: v for k, v in self._models.get(name, {}).items() if k != version}
        models = {k: v for k, v in self._models.items() if k != name}
        latest = {k: v for k, v in self._latest.items() if k != name}
        if versions:
            models[name] = versions
            latest[name] = versions[max(versions, key=int)]
        retired = self._models.get(name, {}).get(version)
        self._models, self._latest = models, latest
        if retired is not None:
            retired.retire()
        MODEL_READY.labels(name, version).set(0)
        log.info("retired model %s version %s (its folder is gone)", name, version)

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        versions = self._models.get(name, {})
        model = versions.get(version) if version is not None else self._latest.get(name)
        if model is not None:
            return model
        for (failed_name, failed_version), (_, reason) in self._failed.items():
            if failed_name == name and version in (None, failed_version):
                raise NotFound(
                    f"model '{name}' version '{failed_version}' is in the repository but "
                    f"failed to load: {reason}"
                )
        if not versions:
            known = ", ".join(sorted(self._models)) or "none"
            raise NotFound(f"unknown model '{name}'; models served here: {known}")
        raise NotFound(
            f"model '{name}' has no version '{version}'; versions served: "
            f"{', '.join(sorted(versions, key=int))}"
        )

    def versions(self, name: str) -> list[str]:
        return sorted(self._models.get(name, {}), key=int)

    def names(self) -> list[str]:
        return sorted(self._models)

    def all(self) -> list[ModelVersion]:
        return [m for versions in self._models.values() for m in versions.values()]


def _stamp(path: Path) -> int:
    """Changes when the file is replaced (0 when absent)."""
    try:
        stat = path.stat()
    except OSError:
        return 0
    return stat.st_mtime_ns ^ stat.st_size
