"""Real Lua for the contract tests: the interpreter busted uses, or any other on the PATH."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
# Enough of ngx for lua/weir/settings.lua and names.lua to load outside nginx.
PRELUDE = f"""
package.path = "{REPO}/lua/?.lua;" .. package.path
ngx = ngx or {{ shared = {{}}, var = {{}} }}
local cjson = require("cjson")
"""


def _interpreter() -> str | None:
    """The first Lua on the PATH that has lua-cjson (the Lua the edge runs is 5.1's dialect)."""
    for name in ("lua5.1", "luajit", "lua"):
        if shutil.which(name):
            probe = subprocess.run([name, "-e", 'require("cjson")'], capture_output=True)
            if probe.returncode == 0:
                return name
    return None


@pytest.fixture(scope="session")
def run_lua() -> Callable[..., Any]:
    """run_lua(code, *args): runs `code` (which sees `cjson` and `arg`) and decodes the JSON it
    writes to stdout."""
    interpreter = _interpreter()
    if interpreter is None:
        # The contract between Python and Lua is checked here or nowhere: a missing Lua fails
        # the run, unless whoever runs it says, on purpose, that this machine has none.
        message = "no Lua with cjson (lua5.1, luajit, lua): `make system-deps` installs one"
        if os.environ.get("WEIR_ALLOW_NO_LUA") == "1":
            pytest.skip(message + " (skipped: WEIR_ALLOW_NO_LUA=1)")
        pytest.fail(message + "; set WEIR_ALLOW_NO_LUA=1 to skip these tests instead")

    def run(code: str, *args: str) -> Any:
        result = subprocess.run(
            [interpreter, "-", *args],
            input=PRELUDE + code,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    return run
