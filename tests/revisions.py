"""Revisions made by hand in a runtime directory, for tests of what the pipeline plans and does
with them: what `render_revision` would leave (settings, nginx.conf, the release), recorded in
the history or not, live or not."""

from __future__ import annotations

import json

from scripts.deploy.history import History, HistoryEntry
from scripts.edge.revisions import Revision, switch_current
from scripts.runtime import RuntimeDir

RELEASE = "revision: {n}\nmodels:\n  digits:\n    versions: {{1: {{}}}}\n"


def kept_revision(
    runtime: RuntimeDir, n: int, *, record: bool = True, live: bool = False
) -> Revision:
    """Revision n in the runtime directory; recorded as applied, and `current`, as asked."""
    directory = runtime.revisions / f"r{n}"
    directory.mkdir()
    settings = {"revision": n, "checksum": f"c{n}", "wiring": "w", "admin_listen": "127.0.0.1:9"}
    (directory / "settings.json").write_text(json.dumps(settings))
    (directory / "nginx.conf").write_text("")
    (directory / "release.yaml").write_text(RELEASE.format(n=n))
    if record:
        History(runtime.history).record(HistoryEntry(n, f"c{n}", directory.name, "apply", 0.0))
    if live:
        switch_current(runtime, directory)
    return Revision.at(directory)
