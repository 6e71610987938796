"""The Lua modules' size and layering, checked: no module under lua/weir grows past 200 lines
without saying why in its opening comment (as tests/unit/test_layers.py asks of Python), a phase
file neither requires another phase file nor holds logic, and nginx/README.md's module map
names every module, and only modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
LUA = REPO / "lua" / "weir"
MODULES = sorted(LUA.rglob("*.lua"))
PHASES = sorted((LUA / "phase").glob("*.lua"))
MAX_LINES = 200
# A phase file is a table of hooks, each one call into the concern that owns it. 14 code lines is
# the largest today (content.lua: three requires, the table and nine hooks); past that, a phase
# file is collecting logic (or hooks of another listener) that belongs in a concern module.
PHASE_MAX_CODE_LINES = 14
REQUIRE_PHASE = re.compile(r"""(?:require|dofile|loadfile)\s*\(?\s*["'][^"']*phase[./]""")


def opening_comment(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line)
    return "\n".join(lines)


def code_lines(text: str) -> int:
    return sum(
        1 for line in text.splitlines() if line.strip() and not line.strip().startswith("--")
    )


def size_problem(name: str, text: str) -> str | None:
    lines = text.count("\n")
    if lines > MAX_LINES and "lines" not in opening_comment(text):
        return f"{name}: {lines} lines and no reason given in its opening comment (or split it)"
    return None


def phase_problems(name: str, text: str) -> list[str]:
    problems = []
    if REQUIRE_PHASE.search(text):
        problems.append(f"{name} requires another phase file: hand the hook to a concern module")
    if code_lines(text) > PHASE_MAX_CODE_LINES:
        problems.append(
            f"{name}: {code_lines(text)} code lines (at most {PHASE_MAX_CODE_LINES}): a phase "
            "file only hands each hook to the concern that owns it; move the logic there"
        )
    return problems


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(LUA)))
def test_a_long_module_says_why(path: Path) -> None:
    assert size_problem(str(path.relative_to(REPO)), path.read_text()) is None


@pytest.mark.parametrize("path", PHASES, ids=lambda p: p.name)
def test_a_phase_file_only_hands_hooks_on(path: Path) -> None:
    assert phase_problems(str(path.relative_to(REPO)), path.read_text()) == []


def test_the_checks_catch_a_drift() -> None:
    long = "-- a module\nlocal x = 1\n" + "x = x + 1\n" * MAX_LINES
    assert size_problem("long.lua", long) is not None
    assert size_problem("long.lua", "-- (250 lines: one concern)\n" + long) is None
    assert size_problem("short.lua", "-- short\nreturn {}\n") is None
    importing = '-- log\nlocal access = require("weir.phase.access")\nreturn {}\n'
    assert "requires another phase file" in phase_problems("log.lua", importing)[0]
    logic = "-- log\nreturn { f = function()\n" + "  x()\n" * PHASE_MAX_CODE_LINES + "end }\n"
    assert "code lines" in phase_problems("log.lua", logic)[0]
    assert phase_problems("log.lua", '-- log\nlocal m = require("weir.metrics")\nreturn {}\n') == []


def test_the_readme_maps_every_module_and_only_those() -> None:
    readme = (REPO / "nginx" / "README.md").read_text()
    named = {
        name.removeprefix("lua/weir/")
        for name in re.findall(r"`((?:[a-z_]+/)*[a-z_]+\.lua)`", readme)
    }
    modules = {str(path.relative_to(LUA)) for path in MODULES}
    assert modules - named == set(), "modules nginx/README.md's module map does not name"
    assert named - modules == set(), "nginx/README.md names Lua modules that do not exist"
