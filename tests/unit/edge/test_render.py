"""Rendering: wiring only, every printed value checked, checksum over everything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.edge import names
from scripts.edge.nginx import NginxBinary
from scripts.edge.render import RenderError, _finalize, render
from scripts.release import parse_release
from scripts.runtime import RuntimeDir

NGINX = NginxBinary(path="/usr/sbin/nginx", load_modules=("/x/ndk.so", "/x/lua.so"))
RELEASE = """
revision: 7
edge: {listen: 8080, admin_listen: 127.0.0.1:9901, max_body: 4m}
sidecars: {devices: cpu}
models:
  digits:
    versions: {"1": {}, "2": {upstreams: ["127.0.0.1:9002"]}}
    release:
      split: {"1": 95.5, "2": 4.5}
      sticky_key: header:X-User-Id
      force_header: X-Weir-Version
    rate_limit: {rate: 500r/s, burst: 100, key: remote_addr}
    fallback: {status: 200, body: {outputs: []}}
    timeout: 2500ms
"""


@pytest.fixture
def rendered(tmp_path: Path):
    runtime = RuntimeDir(tmp_path / "rt")
    runtime.ensure()
    out = tmp_path / "out"
    return render(parse_release(RELEASE), runtime, NGINX, out, release_text=RELEASE), runtime, out


def test_wiring(rendered) -> None:
    result, runtime, out = rendered
    conf = (out / "nginx.conf").read_text()
    assert conf.startswith(f"# weir revision 7 checksum {result.checksum}\n")
    assert "load_module /x/lua.so;" in conf
    assert f"server unix:{runtime.sidecar_socket('cpu')} max_fails=0;" in conf
    assert "server 127.0.0.1:9002 max_fails=0;" in conf
    assert 'split_clients "$weir_key_digits" $weir_bucket_hi_digits {' in conf
    assert 'split_clients "$weir_key_digits~" $weir_bucket_lo_digits {' in conf
    assert "4% 23;" in conf and "* 24;" in conf and "2.5% 38;" in conf and "* 39;" in conf
    assert "limit_req_zone $binary_remote_addr zone=weir_rl_digits_" in conf
    assert "burst=100 nodelay;" in conf
    assert "proxy_read_timeout 2500ms;" in conf
    assert "listen 127.0.0.1:9901;" in conf and "listen 0.0.0.0:8080" in conf
    assert "client_max_body_size 4194304;" in conf
    assert "worker_shutdown_timeout 10s;" in conf  # 2 x 2.5s + 5s
    settings = json.loads((out / "settings.json").read_text())
    assert settings["checksum"] == result.checksum
    digits = settings["models"]["digits"]
    assert digits["fallback"] == {"status": 200, "body": '{"outputs":[]}'}
    assert digits["force_var"] == "http_x_weir_version"
    assert digits["upstreams"] == {"1": "weir_digits_v1", "2": "weir_digits_v2"}
    assert digits["weights"] == {"1": 95.5, "2": 4.5} and settings["buckets"] == 1000


def test_each_model_falls_back_within_its_own_timeout(tmp_path: Path) -> None:
    runtime = RuntimeDir(tmp_path / "rt")
    runtime.ensure()
    text = RELEASE + "  slow-model:\n    versions: {1: {}}\n    timeout: 30s\n"
    conf = render(parse_release(text), runtime, NGINX, tmp_path / "out").conf

    def location(name: str) -> str:
        return conf.split(f"location @weir_fallback_{name} {{")[1].split("\n        }")[0]

    assert "error_page 500 502 503 504 = @weir_fallback_digits;" in conf
    assert "error_page 500 502 503 504 = @weir_fallback_slow_model;" in conf
    assert "proxy_read_timeout 2500ms;" in location("digits")
    assert "proxy_connect_timeout 1s;" in location("digits")
    assert "proxy_read_timeout 30s;" in location("slow_model")
    assert "weir_slow-model_v$weir_version/v2/models/slow-model/" in location("slow_model")


def test_zone_name_follows_its_key(tmp_path: Path) -> None:
    runtime = RuntimeDir(tmp_path / "rt")
    runtime.ensure()
    a = render(parse_release(RELEASE), runtime, NGINX, tmp_path / "a").conf
    b = render(
        parse_release(RELEASE.replace("key: remote_addr", "key: global")),
        runtime,
        NGINX,
        tmp_path / "b",
    ).conf

    def zone(conf: str) -> str:
        return conf.split("zone=")[1].split(":")[0]

    assert zone(a) != zone(b)


@pytest.mark.parametrize("value", ["a;b", "x y", "{", "}", '"', "a\nb", True, None])
def test_finalize_refuses_anything_that_could_end_a_directive(value: object) -> None:
    with pytest.raises(RenderError):
        _finalize(value)


def _too_big(tmp_path: Path, text: str) -> str:
    runtime = RuntimeDir(tmp_path / "rt")
    runtime.ensure()
    out = tmp_path / "out"
    with pytest.raises(RenderError) as caught:
        render(parse_release(text), runtime, NGINX, out)
    assert not out.exists()  # refused before anything was written
    return str(caught.value)


def test_settings_too_big_for_the_edge_are_refused_before_writing(tmp_path: Path) -> None:
    # The release file's own limits (256 KiB, 64 KiB of JSON per fallback body) do not bound
    # the Lua settings: a body of quotes is escaped again on its way into settings.json (JSON
    # text inside JSON), four bytes for each. Five such models fit the file, not the edge.
    body = "'" + '"' * 32_000 + "'"
    model = f"    versions: {{1: {{}}}}\n    fallback: {{status: 503, body: {{error: {body}}}}}\n"
    text = "revision: 1\nsidecars: {devices: cpu}\nmodels:\n"
    text += "".join(f"  m{i}:\n{model}" for i in range(5))
    assert len(text.encode()) < 256 * 1024
    message = _too_big(tmp_path, text)
    assert f"more than the {names.SETTINGS_MAX_BYTES:,}" in message
    assert "nothing was changed" in message


def test_the_state_dict_holds_two_settings_texts_of_the_largest_size() -> None:
    assert 2 * names.SETTINGS_MAX_BYTES < names.STATE_DICT_BYTES
    assert names.DICT_SIZES[names.DICT["STATE"]] == f"{names.STATE_DICT_BYTES // 1024}k"


def _metrics_server(conf: str) -> str:
    start = conf.index("listen 0.0.0.0:9100;")
    return conf[conf.rindex("server {", 0, start) :]


def test_metrics_listen_renders_a_third_server_with_metrics_routes_only(tmp_path: Path) -> None:
    runtime = RuntimeDir(tmp_path / "rt")
    runtime.ensure()
    text = RELEASE.replace("max_body: 4m}", "max_body: 4m, metrics_listen: 9100}")
    render(parse_release(text), runtime, NGINX, tmp_path / "out", release_text=text)
    conf = (tmp_path / "out" / "nginx.conf").read_text()
    assert conf.count("server {") == 3
    server = _metrics_server(conf)
    locations = [line.strip() for line in server.splitlines() if "location " in line]
    assert locations == [
        *[loc for loc in locations if "/_weir/errors/" in loc],
        "location = /metrics {",
        "location = /metrics/sidecars/cpu {",
        "location / {",
        "location @metrics_404 {",
        "location @metrics_405 {",
        "location @metrics_413 {",
        "location @metrics_unavailable {",
    ]
    assert 'require("weir.phase.content").metrics()' in server
    assert f"proxy_pass http://unix:{runtime.sidecar_socket('cpu')}:/metrics;" in server
    assert "admin" not in server  # no admin route, no token check
    # Without metrics_listen: the two servers as before.
    render(parse_release(RELEASE), runtime, NGINX, tmp_path / "off")
    assert (tmp_path / "off" / "nginx.conf").read_text().count("server {") == 2


@pytest.mark.parametrize("value", ["8080", "127.0.0.1:9901", "0.0.0.0:70000", "x;"])
def test_metrics_listen_needs_its_own_valid_port(value: str) -> None:
    text = RELEASE.replace("max_body: 4m}", f"max_body: 4m, metrics_listen: '{value}'}}")
    with pytest.raises(Exception, match="metrics_listen"):
        parse_release(text)
