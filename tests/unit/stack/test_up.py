"""`weir up`'s choices that need no process: the sidecars' body limit."""

from __future__ import annotations

from scripts.release import parse_release
from scripts.stack.up import sidecar_max_body
from sidecar.settings import Settings

RELEASE = "revision: 1\nedge: {max_body: %s}\nmodels:\n  m:\n    versions: {1: {}}\n"


def test_the_sidecars_accept_every_body_the_edge_lets_through() -> None:
    defaults = Settings.from_env({})
    assert defaults.max_body_bytes == 16 * 1024**2
    assert sidecar_max_body(parse_release(RELEASE % "64m"), defaults) == 64 * 1024**2
    # A smaller edge limit leaves the sidecars' own (a later apply may raise it up to that).
    assert sidecar_max_body(parse_release(RELEASE % "1m"), defaults) == 16 * 1024**2
    more = Settings.from_env({"WEIR_MAX_BODY_BYTES": str(100 * 1024**2)})
    assert sidecar_max_body(parse_release(RELEASE % "64m"), more) == 100 * 1024**2
