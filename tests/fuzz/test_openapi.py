"""nginx/openapi.yaml, the edge's published contract: a valid OpenAPI 3.0 document, and exactly
the routes the nginx template and the Lua admin API answer (a route added to either side alone
fails here)."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import yaml
from schemathesis.specs.openapi.definitions import OPENAPI_30

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "nginx" / "openapi.yaml"
TEMPLATE = ROOT / "nginx" / "templates" / "nginx.conf.j2"
ADMIN_LUA = ROOT / "lua" / "weir" / "admin" / "api.lua"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def spec() -> dict:
    return yaml.safe_load(SPEC.read_text())


def spec_routes(tag: str) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in spec()["paths"].items()
        for method, op in item.items()
        if method in METHODS and tag in op["tags"]
    }


def expand_optional(pattern: str) -> set[str]:
    """Every path an nginx location regex of ours matches: each `(?:...)?` in or out."""
    match = re.search(r"\(\?:([^()]*)\)\?", pattern)
    if not match:
        return {pattern}
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return expand_optional(head + match.group(1) + tail) | expand_optional(head + tail)


def template_data_plane_paths() -> set[str]:
    text = TEMPLATE.read_text()
    data_plane = text[: text.index("# Admin API")]
    paths = set()
    for exact in re.findall(r"location = (.+?) \{$", data_plane, re.M):
        paths.add(exact)
    for regex in re.findall(r"location ~ \^(.+?)\$ \{$", data_plane, re.M):
        regex = regex.replace("{{ m.name }}", "{model_name}")
        regex = re.sub(r"\(\?<\{\{ var\.PINNED \}\}>\[0-9\]\+\)", "{model_version}", regex)
        paths |= expand_optional(regex)
    return paths


def test_the_spec_is_valid_openapi_3_0():
    document = spec()
    assert document["openapi"].startswith("3.0")
    jsonschema.Draft4Validator(OPENAPI_30).validate(document)
    # Every response of every operation says what it is; every error body is the V2 shape.
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                assert op["responses"], (method, path)


def test_the_spec_loads_in_schemathesis():
    import schemathesis

    schema = schemathesis.openapi.from_path(str(SPEC))
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) == len(spec_routes("data-plane")) + len(spec_routes("admin"))


def test_every_data_plane_location_is_in_the_spec_and_back():
    internal = {"/_weir/ready"}  # `internal;`: not reachable from a client
    template = template_data_plane_paths() - internal
    documented = {path for _, path in spec_routes("data-plane")}
    assert template == documented
    # Infer is POST, the rest GET (Lua answers 405 otherwise).
    for method, path in spec_routes("data-plane"):
        assert method == ("POST" if path.endswith("/infer") else "GET"), (method, path)


def lua_admin_routes() -> set[tuple[str, str]]:
    lua = ADMIN_LUA.read_text()
    routes = {(method, path) for path, method in re.findall(r'\["(/[^"]+)"\] = \{ "([A-Z]+)"', lua)}

    def methods_of(function: str) -> list[str]:
        body = lua[lua.index(f"local function {function}(") :]
        body = body[: body.index("\nend\n")]
        return re.findall(r"^\s+([A-Z]+) = ", body, re.M)

    base = "/admin/models/{model_name}"
    assert re.search(r'if rest == "" then\s+if method ~= "GET"', lua)
    routes.add(("GET", base))
    assert 'rest == "/kill"' in lua and 'rest:match("^/versions/([^/]+)/kill$")' in lua
    for method in methods_of("kill_switch"):
        routes |= {(method, base + "/kill"), (method, base + "/versions/{model_version}/kill")}
    assert 'rest == "/split"' in lua
    routes |= {(method, base + "/split") for method in methods_of("split")}
    # The relayed sidecar metrics: a location of the admin server in the template.
    template = TEMPLATE.read_text()
    admin = template[template.index("# Admin API") :]
    for path in re.findall(r"location = (.+?) \{$", admin, re.M):
        routes.add(("GET", path.replace("{{ s.label }}", "{sidecar}")))
    return routes


def test_every_admin_route_is_in_the_spec_and_back():
    assert lua_admin_routes() == spec_routes("admin")


def test_admin_operations_need_the_bearer_token_and_data_plane_ones_do_not():
    document = spec()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                assert ("security" in op) == ("admin" in op["tags"]), (method, path)
