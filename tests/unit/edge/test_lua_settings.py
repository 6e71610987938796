"""The one contract between Python and Lua: settings.json.

Python's side is scripts/edge/lua_settings.py (LuaSettings) and the JSON schema generated from
it; Lua's is FIELDS in lua/weir/settings.lua, every field Lua reads with its type. Rendered
samples must pass Lua's own check, and each field Lua reads must be in the schema with a type
that fits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from scripts.edge.lua_settings import SCHEMA_PATH, LuaSettings, schema_text
from scripts.edge.nginx import NginxBinary
from scripts.edge.render import render
from scripts.release import load_release, parse_release
from scripts.runtime import RuntimeDir

REPO = Path(__file__).resolve().parents[3]
NGINX = NginxBinary(path="/usr/sbin/nginx", load_modules=())
# Every optional feature the settings carry: header sticky key, force header, rate limit,
# placeholder body, fallback version, several versions, a model with no fallback at all.
EVERYTHING = """
revision: 3
edge: {listen: 8080, admin_listen: 127.0.0.1:9901, admin_auth: open}
sidecars: {devices: cpu}
models:
  digits:
    versions: {"1": {}, "2": {}, "3": {upstreams: ["127.0.0.1:9003"]}}
    release:
      split: {"1": 80, "2": 15.5, "3": 4.5}
      sticky_key: header:X-User-Id
      force_header: X-Weir-Version
    rate_limit: {rate: 5r/s, burst: 10, key: header:X-Api-Key}
    breaker: {failures: 3, window: 2s, open_for: 1s, max_open_for: 8s, probes: 1}
    fallback: {version: "1"}
    timeout: 1500ms
  cnn:
    versions: {"1": {}}
    fallback: {status: 200, body: {outputs: [], note: "resting"}}
  bare-model:
    versions: {"7": {}}
"""
# Lua's scalar types, and the JSON schema types that fit each.
FITS = {"string": {"string"}, "integer": {"integer"}, "number": {"number", "integer"}}

READ_FIELDS = """
local settings = require("weir.settings")
local handle = assert(io.open(arg[1], "rb"))
local decoded, err = settings.decode(handle:read("*a"), arg[1])
handle:close()
io.write(cjson.encode({fields = settings.FIELDS, error = decoded == nil and err or cjson.null}))
"""


def _samples(tmp_path: Path) -> dict[str, Path]:
    runtime = RuntimeDir(tmp_path / "rt")
    runtime.ensure()
    releases = {
        "release.yaml": load_release(REPO / "release.yaml").release,
        "everything": parse_release(EVERYTHING),
    }
    out = {}
    for name, release in releases.items():
        directory = tmp_path / name.replace(".", "_")
        render(release, runtime, NGINX, directory)
        out[name] = directory / "settings.json"
    return out


def test_schema_is_current() -> None:
    assert SCHEMA_PATH.read_text() == schema_text(), (
        f"{SCHEMA_PATH.name} is stale: LuaSettings changed. Regenerate it with "
        "`.venv/bin/python -m scripts.edge.lua_settings` and commit it, after updating FIELDS "
        "in lua/weir/settings.lua if Lua reads the change"
    )


@pytest.mark.parametrize("sample", ["release.yaml", "everything"])
def test_rendered_settings_fit_both_sides(tmp_path: Path, run_lua, sample: str) -> None:
    path = _samples(tmp_path)[sample]
    settings = json.loads(path.read_text())
    jsonschema.validate(settings, json.loads(SCHEMA_PATH.read_text()))
    LuaSettings.model_validate(settings)
    lua = run_lua(READ_FIELDS, str(path))
    assert lua["error"] is None, lua["error"]


READ_UNDECLARED = """
local settings = require("weir.settings")
local handle = assert(io.open(arg[1], "rb"))
local decoded = assert(settings.decode(handle:read("*a"), arg[1]))
handle:close()
local function try(read)
    local ok, err = pcall(read)
    return ok and "read" or err
end
io.write(cjson.encode({
    absent_optional = try(function() return decoded.models.cnn.force_var end),
    model = try(function() return decoded.models.digits.retry_after_typo end),
    breaker = try(function() return decoded.models.digits.breaker.failure end),
    fallback = try(function() return decoded.models.cnn.fallback.versions end),
    root = try(function() return decoded.admin_listen end),
}))
"""


def test_lua_refuses_to_read_a_field_it_does_not_declare(tmp_path: Path, run_lua) -> None:
    """A typo'd read (`model.retry_after_typo`) fails loudly instead of reading nil; so does
    a field Python renders that FIELDS leaves out (admin_listen: Lua must not read it)."""
    lua = run_lua(READ_UNDECLARED, str(_samples(tmp_path)["everything"]))
    assert lua.pop("absent_optional") == "read"
    for where, path in {
        "model": "settings.models.digits.retry_after_typo",
        "breaker": "settings.models.digits.breaker.failure",
        "fallback": "settings.models.cnn.fallback.versions",
        "root": "settings.admin_listen",
    }.items():
        assert f"{path} is not a field Lua declares" in lua[where], (where, lua[where])
        assert "FIELDS in lua/weir/settings.lua" in lua[where]


def test_sample_uses_every_optional_feature(tmp_path: Path) -> None:
    models = json.loads(_samples(tmp_path)["everything"].read_text())["models"]
    assert models["digits"]["force_var"] == "http_x_weir_version"
    assert models["digits"]["fallback"] == {"version": "1"}
    assert len(models["digits"]["versions"]) == 3
    assert models["cnn"]["fallback"]["body"] == '{"outputs":[],"note":"resting"}'
    assert models["digits"]["retry_after"] == 1 and "force_var" not in models["cnn"]


class Schema:
    """A JSON schema with its $refs resolved."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    def node(self, node: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The node behind any $ref, and whether it allows null."""
        nullable = False
        if "anyOf" in node:
            options = [option for option in node["anyOf"] if option.get("type") != "null"]
            nullable = len(options) < len(node["anyOf"])
            assert len(options) == 1, f"a union Lua cannot declare: {node}"
            node = options[0]
        if "$ref" in node:
            node = self.root["$defs"][node["$ref"].rsplit("/", 1)[1]]
        return node, nullable


def mismatches(declared: Any, node: dict[str, Any], schema: Schema, path: str) -> list[str]:
    """Where Lua's declaration asks for something the schema does not promise."""
    node, nullable = schema.node(node)
    if isinstance(declared, str):
        kind = declared.rstrip("?")
        problems = []
        if node.get("type") not in FITS[kind]:
            problems.append(f"{path}: Lua reads a {kind}, the schema says {node.get('type')}")
        if nullable and not declared.endswith("?"):
            problems.append(f"{path}: the schema allows null, Lua requires a value")
        return problems
    if "fields" in declared:
        properties, required = node.get("properties", {}), set(node.get("required", ()))
        problems = []
        for key, sub in sorted(declared["fields"].items()):
            where = f"{path}.{key}"
            if key not in properties:
                problems.append(f"{where}: Lua reads it, the schema has no such field")
                continue
            if not (isinstance(sub, str) and sub.endswith("?")) and key not in required:
                problems.append(f"{where}: Lua requires it, the schema makes it optional")
            problems += mismatches(sub, properties[key], schema, where)
        return problems
    if "map" in declared:
        if node.get("type") != "object" or "additionalProperties" not in node:
            return [f"{path}: Lua reads a map, the schema says {node.get('type')}"]
        return mismatches(declared["map"], node["additionalProperties"], schema, path + ".*")
    if node.get("type") != "array":
        return [f"{path}: Lua reads a list, the schema says {node.get('type')}"]
    return mismatches(declared["list"], node["items"], schema, path + "[]")


def _lua_fields(tmp_path: Path, run_lua) -> Any:
    return run_lua(READ_FIELDS, str(_samples(tmp_path)["release.yaml"]))["fields"]


def test_every_field_lua_reads_is_in_the_schema_with_its_type(tmp_path: Path, run_lua) -> None:
    root = json.loads(SCHEMA_PATH.read_text())
    assert mismatches(_lua_fields(tmp_path, run_lua), root, Schema(root), "settings") == []


def test_the_comparison_catches_a_drift() -> None:
    root = LuaSettings.model_json_schema()
    declared = {
        "fields": {
            "revision": "string",
            "nope": "string",
            "checksum": "string",
            "models": {"map": {"fields": {"force_var": "string", "versions": {"map": "string"}}}},
        }
    }
    assert mismatches(declared, root, Schema(root), "settings") == [
        "settings.models.*.force_var: Lua requires it, the schema makes it optional",
        "settings.models.*.force_var: the schema allows null, Lua requires a value",
        "settings.models.*.versions: Lua reads a map, the schema says array",
        "settings.nope: Lua reads it, the schema has no such field",
        "settings.revision: Lua reads a string, the schema says integer",
    ]
