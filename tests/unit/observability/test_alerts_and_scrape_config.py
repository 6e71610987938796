"""The committed alert rules and scrape config are the generators' output, and promtool passes
them: `check rules`, the rule unit tests (alerts_test.yml), `check config` with a real token."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scripts.observability import alerts, prometheus
from scripts.release import load_release

HERE = Path(__file__).resolve().parent
OBS = Path(prometheus.__file__).resolve().parent
ROOT = OBS.parents[1]
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool missing: apt-get install -y prometheus"
)


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True)


def test_committed_alerts_match_the_generator():
    assert (OBS / "alerts.yml").read_text() == alerts.render(load_release("release.yaml").release)


def test_committed_scrape_config_matches_the_generator():
    assert (OBS / "prometheus.yml").read_text() == prometheus.committed()


def test_every_model_has_a_timeout_budget_and_every_alert_a_summary():
    doc = yaml.safe_load((OBS / "alerts.yml").read_text())
    budgets, rules = doc["groups"][0]["rules"], doc["groups"][1]["rules"]
    assert {r["labels"]["model"] for r in budgets} == set(
        load_release("release.yaml").release.models
    )
    names = {r["alert"] for r in rules}
    assert {
        "WeirModelErrorRatioHigh",
        "WeirModelP99NearTimeout",
        "WeirBreakerOpen",
        "WeirQueueRejections",
        "WeirModelNotReady",
        "WeirRateLimitSurge",
    } <= names
    assert all(r["annotations"]["summary"] and r["labels"]["severity"] for r in rules)


@needs_promtool
def test_promtool_checks_the_rules_and_runs_their_unit_tests():
    checked = promtool("check", "rules", str(OBS / "alerts.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "alerts_test.yml", cwd=HERE)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@needs_promtool
def test_a_rendered_config_passes_promtool_check_config_outside_the_image(tmp_path):
    runtime = tmp_path / "runtime"
    (runtime / "edge").mkdir(parents=True)
    (runtime / "edge" / "admin.token").write_text("t0ken\n")
    rendered = subprocess.run(
        [sys.executable, "-m", "scripts.observability.prometheus", "release.yaml",
         "--runtime-dir", str(runtime), "--rules", str(OBS / "alerts.yml")],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    config = tmp_path / "elsewhere" / "prometheus.yml"
    config.parent.mkdir()
    config.write_text(rendered)
    checked = promtool("check", "config", str(config), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # Without the token file promtool refuses it: the config names the runtime's real token.
    (runtime / "edge" / "admin.token").unlink()
    assert promtool("check", "config", str(config), cwd=tmp_path).returncode != 0


@needs_promtool
def test_the_committed_config_passes_promtool_wherever_it_is_checked_from(tmp_path):
    # Its token path is relative to the config file: the repository's `.weir` (after `make up`).
    copy = tmp_path / "scripts" / "observability"
    copy.mkdir(parents=True)
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(OBS / name, copy / name)
    (tmp_path / ".weir" / "edge").mkdir(parents=True)
    (tmp_path / ".weir" / "edge" / "admin.token").write_text("t0ken\n")
    checked = promtool("check", "config", str(copy / "prometheus.yml"), cwd="/")
    assert checked.returncode == 0, checked.stdout + checked.stderr
