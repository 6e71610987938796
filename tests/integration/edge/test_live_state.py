"""Live safety state (kill switches, split overrides) lives in its own shared dict: a release
whose Lua settings do not fit is refused, by `weir apply` and by Lua, with nothing changed."""

from __future__ import annotations

import copy
import json

import pytest

from scripts.deploy.commands import apply_main
from scripts.edge import names

BIG_BODY = {"error": "x" * 1_100_000}


def _live(harness) -> dict:
    models = harness.status()["models"]
    return {
        name: (
            m["killed"],
            {v: info["killed"] for v, info in m["versions"].items()},
            m["weights"]["override"],
        )
        for name, m in models.items()
    }


def _killed_setup(harness, upstreams, tools):
    models = tools.two_versions(upstreams)
    models["cnn"] = copy.deepcopy(models["digits"])
    harness.start(models)
    assert harness.admin_call("POST", "/admin/models/cnn/kill")[0] == 200
    assert harness.admin_call("POST", "/admin/models/digits/versions/2/kill")[0] == 200
    split = {"1": 30, "2": 70}
    assert harness.admin_call("PUT", "/admin/models/digits/split", split)[0] == 200
    return models


def _still_killed(harness) -> None:
    status, headers, body = harness.infer("cnn")
    assert status == 503 and headers["x-weir-fallback"] == "killed" and "error" in body
    status, headers, _ = harness.infer("digits", version="2")
    assert status == 200 and headers["x-weir-fallback"] == "killed"
    assert headers["x-weir-model-version"] == "1"


def _too_big_for_the_file(models: dict) -> dict:
    models["digits"]["fallback"] = {"status": 503, "body": BIG_BODY}
    return models


def _too_big_for_the_edge(models: dict) -> dict:
    # Within the file's limits, past the edge's: a body of quotes is escaped again inside
    # settings.json (four bytes each), so five such models fit the file and not the dict.
    for i in range(5):
        extra = copy.deepcopy(models["digits"])  # no shared objects: YAML would alias them
        extra["fallback"] = {"status": 503, "body": {"error": '"' * 32_000}}
        models[f"extra{i}"] = extra
    return models


@pytest.mark.parametrize(
    ("grow", "refusal"),
    [
        (_too_big_for_the_file, "over the 256 KiB a release may be"),
        (_too_big_for_the_edge, "Lua settings are"),
    ],
)
def test_apply_of_settings_too_big_changes_nothing(
    harness, upstreams, tools, capsys, grow, refusal
) -> None:
    models = _killed_setup(harness, upstreams, tools)
    state = harness.runtime.state_file.read_bytes()
    live = _live(harness)
    assert live["cnn"][0] is True and live["digits"][1]["2"] is True
    assert live["digits"][2] == {"1": 30, "2": 70}
    path = harness.write(harness.release(grow(models)))
    assert apply_main([str(path), "--runtime-dir", str(harness.runtime.root)]) != 0
    err = capsys.readouterr().err
    assert refusal in err, err
    assert harness.runtime.state_file.read_bytes() == state
    assert _live(harness) == live
    _still_killed(harness)
    assert harness.admin_call("GET", "/admin/checksum")[2]["revision"] == 1


def test_lua_refuses_settings_that_do_not_fit_evicting_nothing(harness, upstreams, tools) -> None:
    _killed_setup(harness, upstreams, tools)
    state = harness.runtime.state_file.read_bytes()
    live = _live(harness)
    # Past the Python check: the running revision's settings file grown in place.
    settings_file = harness.runtime.current / "settings.json"
    original = settings_file.read_text()
    grown = json.loads(original)
    grown["models"]["digits"]["fallback"] = {"status": 503, "body": json.dumps(BIG_BODY)}
    settings_file.write_text(json.dumps(grown))
    try:
        status, _, body = harness.admin_call("POST", "/admin/settings/reload")
    finally:
        settings_file.write_text(original)
    assert status == 409
    assert f"do not fit the {names.DICT['STATE']} shared dict" in body["error"]
    assert "nothing changed" in body["error"]
    assert harness.runtime.state_file.read_bytes() == state
    assert _live(harness) == live
    _still_killed(harness)
    status, _, body = harness.admin_call("POST", "/admin/settings/reload")  # the real one fits
    assert status == 200 and body["revision"] == 1
    _still_killed(harness)
