"""`weir validate` and `weir render` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.deploy.commands import _change, history_main, render_main, validate_main

REPO = Path(__file__).resolve().parents[3]


def test_validate_the_embedded_default(capsys) -> None:
    assert validate_main([str(REPO / "release.yaml")]) == 0
    assert "valid, revision" in capsys.readouterr().out


def test_validate_counts_versions_in_english(tmp_path: Path, capsys) -> None:
    path = tmp_path / "release.yaml"
    path.write_text(
        "revision: 3\nmodels:\n  cnn:\n    versions: {1: {}}\n"
        "  digits:\n    versions: {1: {}, 2: {}}\n"
    )
    assert validate_main([str(path)]) == 0
    assert "cnn (1 version), digits (2 versions)" in capsys.readouterr().out


def test_validate_reports_every_problem(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "revision: 2\nedge: {listen: 99999}\nmodels:\n  m:\n    versions: {1: {}}\n"
        "    breaker: {failures: 0}\n"
    )
    assert validate_main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: edge.listen: 99999:" in err
    assert f"{bad}:6: models.m.breaker.failures: 0:" in err


def test_render_to_a_directory(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    rt = ["--runtime-dir", str(tmp_path / "rt")]
    assert render_main([str(REPO / "release.yaml"), "--out", str(out), *rt]) == 0
    settings = json.loads((out / "settings.json").read_text())
    assert set(settings["models"]) == {"digits", "cnn", "handwriting"}
    assert (out / "nginx.conf").read_text().startswith("# weir revision 1 checksum ")
    assert render_main([str(REPO / "release.yaml"), *rt]) == 0
    assert "upstream weir_digits_v2 {" in capsys.readouterr().out
    assert history_main(rt) == 0
    assert "no revisions applied" in capsys.readouterr().out


# A Ctrl-C during `weir apply` or `weir rollback` ends with one line, not a traceback: every
# step undoes itself on the way out.
def test_an_interrupted_change_says_nothing_changed(capsys) -> None:
    def interrupted() -> str:
        raise KeyboardInterrupt

    assert _change("apply", interrupted) == 1
    err = capsys.readouterr().err
    assert err == "weir apply: interrupted, nothing changed\n"
