"""The body limit a release gives every sidecar."""

from __future__ import annotations

from scripts.fleet.limits import sidecar_args, sidecar_max_body
from scripts.release import parse_release
from sidecar.server.launcher import parser as sidecar_parser
from sidecar.settings import Settings

RELEASE = "revision: 1\nedge: {max_body: %s}\nmodels:\n  m:\n    versions: {1: {}}\n"


def test_the_sidecars_accept_every_body_the_edge_lets_through() -> None:
    defaults = Settings.from_env({})
    assert defaults.max_body_bytes == 16 * 1024**2
    assert sidecar_max_body(parse_release(RELEASE % "64m"), defaults) == 64 * 1024**2
    # A smaller edge limit leaves the sidecars' own (a later apply may raise it up to that).
    assert sidecar_max_body(parse_release(RELEASE % "1m")) == 16 * 1024**2
    more = Settings.from_env({"WEIR_MAX_BODY_BYTES": str(100 * 1024**2)})
    assert sidecar_max_body(parse_release(RELEASE % "64m"), more) == 100 * 1024**2


def test_the_arguments_are_weir_sidecar_s_own_flag() -> None:
    args = sidecar_args(parse_release(RELEASE % "24m"))
    parsed = sidecar_parser().parse_args(["--models", "m", *args])
    assert Settings.from_env({}, max_body_bytes=parsed.max_body_bytes).max_body_bytes == 24 * 2**20
