"""Rendering with sidecar pools: each model's versions go to its own pool's sidecars, and the
metrics relays cover every pool's sidecars under the names `weir up` gives them."""

from __future__ import annotations

import re
from pathlib import Path

from scripts.edge.render import render
from scripts.release import parse_release
from scripts.runtime import RuntimeDir
from tests.unit.edge.test_render import NGINX

RELEASE = """
revision: 2
edge: {listen: 8080, admin_listen: 127.0.0.1:9901, metrics_listen: 9100}
sidecars:
  devices: [0, 1]
  pools:
    heavy: {cpus: [1], memory: 2g}
    unused: {}
models:
  digits: {versions: {"1": {}, "2": {}}}
  cnn: {versions: {"1": {}, "2": {upstreams: ["127.0.0.1:9002"]}}, pool: heavy}
"""


def upstreams(conf: str) -> dict[str, list[str]]:
    found = re.findall(r"upstream (\S+) \{\n((?:\s+server .*\n)+)", conf)
    return {name: re.findall(r"server (\S+) max_fails=0;", body) for name, body in found}


def test_each_model_routes_to_its_pools_sidecars_and_every_sidecar_is_relayed(
    tmp_path: Path,
) -> None:
    runtime = RuntimeDir(tmp_path / "rt")
    runtime.ensure()
    render(parse_release(RELEASE), runtime, NGINX, tmp_path / "out")
    conf = (tmp_path / "out" / "nginx.conf").read_text()
    default = [f"unix:{runtime.sidecar_socket(d)}" for d in ("0", "1")]
    heavy = [f"unix:{runtime.sidecar_socket(f'heavy-{d}')}" for d in ("0", "1")]
    assert upstreams(conf) == {
        "weir_digits_v1": default,
        "weir_digits_v2": default,
        "weir_cnn_v1": heavy,
        "weir_cnn_v2": ["127.0.0.1:9002"],  # its own upstreams win
    }
    relayed = re.findall(r"location = /metrics/sidecars/(\S+) \{\n.*\n\s+proxy_pass (\S+);", conf)
    expected = [
        (label, f"http://unix:{runtime.sidecar_socket(label)}:/metrics")
        for label in ("0", "1", "heavy-0", "heavy-1")
    ]
    assert relayed[:4] == expected  # the admin listener
    assert [label for label, _ in relayed[4:]] == ["0", "1", "heavy-0", "heavy-1"]  # metrics
    assert "unused" not in conf  # a declared pool no model uses runs nothing
