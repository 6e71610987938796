"""The edge's history of applied revisions: one JSON line per apply or rollback."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class HistoryEntry:
    revision: int
    checksum: str
    dir: str
    action: str  # apply | rollback | start (an edge started on a file it applied)
    applied_at: float
    source: str = ""

    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.applied_at))


class History:
    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[HistoryEntry]:
        if not self.path.exists():
            return []
        entries = []
        for line in self.path.read_text().splitlines():
            if line.strip():
                try:
                    entries.append(HistoryEntry(**json.loads(line)))
                except (TypeError, ValueError):
                    continue  # a torn line from a crash: skip it, keep the rest
        return entries

    def record(self, entry: HistoryEntry) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(asdict(entry), sort_keys=True) + "\n"
        with self.path.open("a+b") as handle:  # appends always land at the end
            # A line torn by a crash must not swallow this one: start on a line of its own.
            if handle.seek(0, os.SEEK_END) > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")
            handle.write(line.encode())

    def current(self) -> HistoryEntry | None:
        entries = self.entries()
        return entries[-1] if entries else None

    def highest_revision(self) -> int | None:
        entries = self.entries()
        return max((e.revision for e in entries), default=None)

    def latest_of(self, revision: int) -> HistoryEntry | None:
        for entry in reversed(self.entries()):
            if entry.revision == revision:
                return entry
        return None

    def previous(self) -> HistoryEntry | None:
        """The newest revision older than the current one: rolling back twice goes back twice."""
        entries = self.entries()
        if not entries:
            return None
        current = entries[-1].revision
        older = [e for e in entries if e.revision < current]
        if not older:
            return None
        best = max(e.revision for e in older)
        return self.latest_of(best)
