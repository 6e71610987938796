"""`weir quantize`'s command line: what it refuses before touching ONNX Runtime (exit 2)."""

from __future__ import annotations

import pytest

from scripts.quantize.commands import EXIT_USAGE, main, parser


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "digits" / "2").mkdir(parents=True)
    (tmp_path / "digits" / "2" / "model.onnx").write_bytes(b"not read by these tests")
    (tmp_path / "digits" / "3").mkdir()
    return tmp_path


def refused(repo, capsys, *argv: str) -> str:
    assert main([*argv, "--repository", str(repo)]) == EXIT_USAGE
    return capsys.readouterr().err


def test_defaults() -> None:
    args = parser().parse_args(["digits", "2", "--to", "3"])
    assert (args.precision, args.mode, args.format) == ("int8", "static", "qdq")
    assert args.per_channel is None and args.reduce_range is None  # decided by model and CPU
    assert args.tolerance == 0.01 and not args.accept_loss


def test_every_option_has_help() -> None:
    for action in parser()._actions:
        assert action.help, action.dest


def test_to_is_required() -> None:
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["digits", "2"])
    assert exit_.value.code == 2


def test_an_unknown_model_lists_the_models_there(repo, capsys) -> None:
    err = refused(repo, capsys, "mnist", "1", "--to", "2")
    assert "no model 'mnist'" in err and "models there: digits" in err


def test_an_unknown_version_lists_the_versions_there(repo, capsys) -> None:
    err = refused(repo, capsys, "digits", "1", "--to", "4")
    assert "has no version 1" in err and "versions there: 2" in err


def test_an_existing_target_is_never_overwritten(repo, capsys) -> None:
    err = refused(repo, capsys, "digits", "2", "--to", "3")
    assert "already exists" in err and "never overwrites" in err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["Digits!", "2", "--to", "4"], "not a model name"),
        (["digits", "two", "--to", "4"], "VERSION 'two' is not a version"),
        (["digits", "2", "--to", "0"], "--to '0' is not a version"),
        (["digits", "2", "--to", "2"], "is the source version"),
        (["digits", "2", "--to", "4", "--tolerance", "5"], "must be a fraction"),
    ],
)
def test_bad_arguments_say_what_to_use(repo, capsys, argv, says) -> None:
    assert says in refused(repo, capsys, *argv)
