"""The model repository's generation number: a file at its root holding an integer.

Tools that rewrite a repository (`weir apply` under `weir up`) bump it; each sidecar worker
reports the generation it has loaded, so the tool knows when every worker serves the new
versions. Dependency-free: the CLI reads it without importing the runtime.
"""

from __future__ import annotations

from pathlib import Path

GENERATION_FILE = "GENERATION"


def generation(root: Path) -> int:
    """The repository's generation (0 when it has none or it is unreadable)."""
    try:
        return int((root / GENERATION_FILE).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0
