"""One `weir` entry point, one argument convention, a parser for every command."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scripts import cli
from scripts.args import CONVENTION

TAKES_A_FILE = ("validate", "render", "apply", "k8s", "view")
MAY_OMIT_IT = ("edge", "up")


def test_help_lists_every_command_and_states_the_convention(capsys) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert CONVENTION in out
    for name in cli.COMMANDS:
        assert f"  {name} " in out


def test_an_unknown_command_exits_2(capsys) -> None:
    assert cli.main(["deploy"]) == 2
    assert "unknown command 'deploy'" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_command_has_a_parser_named_after_it(name: str) -> None:
    assert cli.parser_for(name).prog == f"weir {name}"


@pytest.mark.parametrize("name", TAKES_A_FILE + MAY_OMIT_IT)
def test_the_release_file_is_always_positional(name: str) -> None:
    extra = ["--models", "m"] if name == "view" else []
    assert cli.parser_for(name).parse_args(["r.yaml", *extra]).file == "r.yaml"
    with pytest.raises(SystemExit):
        cli.parser_for(name).parse_args(["--release", "r.yaml", *extra])


@pytest.mark.parametrize("name", MAY_OMIT_IT)
def test_edge_and_up_may_leave_it_out(name: str) -> None:
    assert cli.parser_for(name).parse_args([]).file is None


@pytest.mark.parametrize("name", TAKES_A_FILE)
def test_the_others_require_it(name: str) -> None:
    with pytest.raises(SystemExit):
        cli.parser_for(name).parse_args([])


def test_weir_edge_without_a_file_and_nothing_applied_says_so(tmp_path) -> None:
    # A process of its own: `weir edge` installs signal handlers.
    done = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "edge", "--runtime-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "nothing was applied" in done.stderr


INVALID_RELEASE_EXITS_2 = ("validate", "render", "apply", "view", "edge", "up", "k8s")


@pytest.mark.parametrize("name", INVALID_RELEASE_EXITS_2)
def test_an_invalid_release_exits_2_for_every_command(name: str, tmp_path) -> None:
    """2: the input is wrong; 1: the operation failed (EXIT_CODES, in `weir --help`)."""
    bad = tmp_path / "release.yaml"
    bad.write_text("revision: not-a-number\nmodels: {}\n")
    extra = ["--models", str(tmp_path)] if name == "view" else []
    if name not in ("validate", "k8s"):  # the ones that touch no runtime directory
        extra += ["--runtime-dir", str(tmp_path / "rt")]
    argv = [name, str(bad), *extra]
    result = subprocess.run(
        [sys.executable, "-m", "scripts.cli", *argv], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert "revision" in result.stderr


@pytest.mark.parametrize("name", ["kill", "revive", "split"])
def test_every_admin_argument_has_help(name: str) -> None:
    for action in cli.parser_for(name)._actions:
        assert action.help, f"weir {name}: {action.dest} has no help text"


def test_the_exit_codes_are_stated_in_help(capsys) -> None:
    assert cli.main(["--help"]) == 0
    assert "Exit codes: 0 done; 2 the input is wrong" in capsys.readouterr().out
