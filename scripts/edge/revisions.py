"""The rendered revisions of a runtime directory and `current`, the one that is live.

<runtime>/edge/revisions/r<N>-<stamp>/ holds nginx.conf, settings.json (the Lua settings) and
release.yaml (the source, re-validated whenever the revision is served again); `current` is a
symlink to one of them, switched with a single rename.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from scripts.edge.nginx import NginxBinary
from scripts.edge.render import CONF_NAME, SETTINGS_NAME, render
from scripts.release import LoadedRelease, load_release
from scripts.runtime import RuntimeDir

RELEASE_NAME = "release.yaml"


@dataclass(frozen=True)
class Revision:
    revision: int
    checksum: str
    dir: Path
    wiring: str = ""

    @property
    def conf(self) -> Path:
        return self.dir / CONF_NAME

    @property
    def settings(self) -> dict[str, object]:
        return json.loads((self.dir / SETTINGS_NAME).read_text())

    @property
    def admin_listen(self) -> str:
        return str(self.settings["admin_listen"])

    def load(self) -> LoadedRelease:
        """The release this revision was rendered from, validated again."""
        return load_release(self.dir / RELEASE_NAME)

    def same_text(self, text: str) -> bool:
        try:
            return (self.dir / RELEASE_NAME).read_text() == text
        except OSError:
            return False

    @classmethod
    def at(cls, directory: Path) -> Revision:
        settings = json.loads((directory / SETTINGS_NAME).read_text())
        return cls(settings["revision"], settings["checksum"], directory, settings["wiring"])


def render_revision(loaded: LoadedRelease, runtime: RuntimeDir, nginx: NginxBinary) -> Revision:
    """Render a release into a fresh revision directory (removed again if rendering fails)."""
    runtime.ensure()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 10**6:06d}"
    final = runtime.revisions / f"r{loaded.release.revision}-{stamp}"
    try:
        rendered = render(loaded.release, runtime, nginx, final, release_text=loaded.text)
    except Exception:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return Revision(loaded.release.revision, rendered.checksum, final, rendered.settings["wiring"])


def current_revision(runtime: RuntimeDir) -> Revision | None:
    try:
        return Revision.at(runtime.current.resolve(strict=True))
    except (OSError, ValueError, KeyError):
        return None


def switch_current(runtime: RuntimeDir, target: Path) -> None:
    """Point `current` at target with one atomic rename."""
    tmp = runtime.edge / f".current.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(target, runtime.edge))
    os.replace(tmp, runtime.current)
