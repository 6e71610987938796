"""What /proc says about the processes a test started: for tests that kill and restart them."""

from __future__ import annotations

from pathlib import Path

from scripts.edge.process import proc_stat as stat


def alive(pid: int) -> bool:
    fields = stat(pid)
    return fields is not None and fields[0] != "Z"


def parent(pid: int) -> int:
    fields = stat(pid)
    assert fields is not None, f"process {pid} is gone"
    return int(fields[1])


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found
