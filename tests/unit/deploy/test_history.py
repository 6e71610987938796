"""The history of applied revisions: one JSON line each, read back whatever a crash left."""

from __future__ import annotations

from pathlib import Path

from scripts.deploy.history import History, HistoryEntry


def entry(revision: int, action: str = "apply", directory: str | None = None) -> HistoryEntry:
    return HistoryEntry(revision, f"c{revision}", directory or f"r{revision}", action, 0.0)


def test_an_empty_history(tmp_path: Path) -> None:
    history = History(tmp_path / "edge" / "history.jsonl")
    assert history.entries() == []
    assert history.current() is None and history.previous() is None
    assert history.highest_revision() is None


def test_entries_come_back_in_order_and_a_torn_line_is_skipped(tmp_path: Path) -> None:
    history = History(tmp_path / "edge" / "history.jsonl")  # its folder is created
    history.record(entry(1))
    history.record(entry(2))
    with history.path.open("a") as handle:
        handle.write('{"revision": 3, "chec')  # a crash mid-write
    assert [e.revision for e in history.entries()] == [1, 2]
    history.record(entry(3))  # a later line after the torn one still reads
    assert [e.revision for e in history.entries()] == [1, 2, 3]
    assert history.current() == entry(3)


def test_previous_walks_back_through_rollbacks(tmp_path: Path) -> None:
    history = History(tmp_path / "h.jsonl")
    for revision in (1, 2, 3):
        history.record(entry(revision))
    assert history.previous().revision == 2
    history.record(entry(2, "rollback"))
    assert history.previous().revision == 1
    assert history.highest_revision() == 3
    history.record(entry(1, "rollback"))
    assert history.previous() is None  # nothing older than revision 1


def test_latest_of_is_the_newest_entry_of_a_revision(tmp_path: Path) -> None:
    history = History(tmp_path / "h.jsonl")
    history.record(entry(1, directory="r1-a"))
    history.record(entry(2))
    history.record(entry(1, "rollback", directory="r1-a"))
    assert history.latest_of(1).action == "rollback"
    assert history.latest_of(7) is None


def test_when_is_utc() -> None:
    assert HistoryEntry(1, "c", "d", "apply", 0.0).when() == "1970-01-01 00:00:00 UTC"
