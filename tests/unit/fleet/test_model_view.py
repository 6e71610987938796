"""The sidecars' view of the repository carries the release's batching and nothing else changes."""

from pathlib import Path

import yaml

from scripts.fleet.model_view import build_view, point, publish_view
from scripts.release import parse_release
from sidecar.serving.generation import generation
from sidecar.serving.model_config import load_model_config
from sidecar.serving.repository import scan

RELEASE = """
revision: 3
models:
  digits:
    versions:
      "1": {}
      "2": {batching: {max_batch_size: 8, max_queue_delay_ms: 4}}
"""


def make_repository(root: Path) -> Path:
    for name, version in (("digits", "1"), ("digits", "2"), ("cnn", "1")):
        (root / name / version).mkdir(parents=True)
        (root / name / version / "model.onnx").write_bytes(b"weights")
    (root / "digits" / "config.yaml").write_text(
        "labels: [zero, one]\nversions:\n  '2': {max_queue_size: 7, max_batch_size: 99}\n"
    )
    (root / "digits" / "hook.py").write_text("def postprocess(outputs, labels): return outputs\n")
    (root / "__pycache__").mkdir()  # not a model: no numeric version folder
    return root


def test_the_view_lays_release_batching_over_the_model_config(tmp_path):
    repository = make_repository(tmp_path / "models")
    view = build_view(parse_release(RELEASE), repository, tmp_path / "view")
    config = load_model_config(view / "digits")
    assert config.labels == ["zero", "one"]
    assert config.versions["2"].max_batch_size == 8  # the release wins
    assert config.versions["2"].max_queue_delay_ms == 4
    assert config.versions["2"].max_queue_size == 7  # kept from the model's own config
    assert "1" not in config.versions


def test_the_view_mirrors_every_model_version_by_symlink(tmp_path):
    repository = make_repository(tmp_path / "models")
    view = build_view(parse_release(RELEASE), repository, tmp_path / "view")
    assert [(e.name, e.version) for e in scan(view)] == [
        ("cnn", "1"),
        ("digits", "1"),
        ("digits", "2"),
    ]
    assert (view / "digits" / "2").is_symlink()
    assert (view / "digits" / "hook.py").resolve() == (repository / "digits" / "hook.py").resolve()
    assert not (view / "cnn" / "config.yaml").exists()
    assert not (view / "__pycache__").exists()


def test_rebuilding_replaces_the_previous_view(tmp_path):
    repository = make_repository(tmp_path / "models")
    view = build_view(parse_release(RELEASE), repository, tmp_path / "view")
    (repository / "digits" / "config.yaml").unlink()
    build_view(parse_release(RELEASE), repository, view)
    assert yaml.safe_load((view / "digits" / "config.yaml").read_text()) == {
        "versions": {"2": {"max_batch_size": 8, "max_queue_delay_ms": 4.0}}
    }


def test_publishing_swaps_a_symlink_to_a_new_generation_and_keeps_recent_ones(tmp_path):
    repository = make_repository(tmp_path / "models")
    link = tmp_path / "run" / "repository"
    numbers = [publish_view(parse_release(RELEASE), repository, link) for _ in range(6)]
    assert numbers == [1, 2, 3, 4, 5, 6]
    assert link.is_symlink() and link.resolve() == (tmp_path / "run" / "repository.d" / "6")
    assert generation(link) == 6
    kept = sorted(int(p.name) for p in (tmp_path / "run" / "repository.d").iterdir())
    assert kept == [3, 4, 5, 6]
    assert [(e.name, e.version) for e in scan(link)][-1] == ("digits", "2")


def test_publishing_replaces_a_plain_directory_view(tmp_path):
    repository = make_repository(tmp_path / "models")
    link = tmp_path / "repository"
    build_view(parse_release(RELEASE), repository, link)
    assert publish_view(parse_release(RELEASE), repository, link) == 1
    assert link.is_symlink()
    point(link, tmp_path / "repository.d" / "1")  # pointing again at the same view is harmless
    assert generation(link) == 1


def test_an_unreadable_config_passes_through_for_the_sidecar_to_refuse(tmp_path):
    repository = make_repository(tmp_path / "models")
    (repository / "digits" / "config.yaml").write_text("labels: [unclosed\n")
    view = build_view(parse_release(RELEASE), repository, tmp_path / "view")
    assert (view / "digits" / "config.yaml").resolve() == repository / "digits" / "config.yaml"
    assert (view / "cnn" / "1").is_symlink()  # the other models are unaffected


def test_weir_view_builds_the_release_s_view_in_the_runtime_directory(tmp_path, capsys):
    from scripts.fleet.model_view import main

    repository = make_repository(tmp_path / "models")
    release = tmp_path / "release.yaml"
    release.write_text(RELEASE)
    runtime = tmp_path / "rt"
    argv = [str(release), "--models", str(repository), "--runtime-dir", str(runtime)]
    assert main(argv) == 0
    assert "generation 1" in capsys.readouterr().out
    config = load_model_config(runtime / "repository" / "digits")
    assert config.versions["2"].max_batch_size == 8  # what a Kubernetes sidecar then serves
    release.write_text("revision: 0\n")
    assert main(argv) == 2
