"""The release schema: strict, and its errors point at the file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.release import ReleaseError, load_release, parse_release

REPO = Path(__file__).resolve().parents[3]

MINIMAL = "revision: 3\nmodels:\n  digits:\n    versions: {1: {}}\n"


def _error(text: str) -> str:
    with pytest.raises(ReleaseError) as info:
        parse_release(text, "r.yaml")
    return str(info.value)


def test_embedded_default_is_valid() -> None:
    release = load_release(REPO / "release.yaml").release
    assert set(release.models) == {"digits", "cnn", "handwriting"}
    assert release.models["digits"].weights() == {"1": 90.0, "2": 10.0}
    assert release.edge.admin_listen.startswith("127.0.0.1:")


def test_defaults_fill_a_minimal_release() -> None:
    release = parse_release(MINIMAL)
    model = release.models["digits"]
    assert model.weights() == {"1": 100.0}
    assert model.breaker.failures == 5 and model.fallback is None
    assert release.edge.admin_auth == "token"


def test_newest_version_takes_everything_without_a_split() -> None:
    release = parse_release("revision: 1\nmodels:\n  m:\n    versions: {1: {}, 10: {}, 2: {}}\n")
    assert release.models["m"].weights() == {"1": 0.0, "10": 100.0, "2": 0.0}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            MINIMAL + "    bogus: 1\n",
            "r.yaml:5: models.digits.bogus: unknown key 'bogus'; allowed keys: versions",
        ),
        (MINIMAL.replace("revision: 3", "revision: 0"), "r.yaml:1: revision: 0:"),
        (
            MINIMAL + "    timeout: soon\n",
            "r.yaml:5: models.digits.timeout: 'soon': expected a duration",
        ),
        (
            MINIMAL + "    rate_limit: {rate: 5r/h}\n",
            "models.digits.rate_limit.rate: '5r/h': expected",
        ),
        (
            MINIMAL + "    release: {split: {1: 60, 2: 40}}\n",
            "names version 2, which is not under versions",
        ),
        (MINIMAL + "    release: {split: {1: 90}}\n", "weights must sum to 100"),
        (
            MINIMAL + "    fallback: {version: 1, status: 200}\n",
            "either {version: V} or {status: S",
        ),
        (
            "revision: 1\nedge: {admin_listen: '0.0.0.0:9901'}\n" + MINIMAL[12:],
            "r.yaml:2: edge.admin_listen: '0.0.0.0:9901': the admin listener must be on loopback",
        ),
        (
            "revision: 1\nmodels:\n  Digits:\n    versions: {1: {}}\n",
            "model name 'Digits' is not allowed",
        ),
        ("revision: 1\nmodels:\n  m:\n    versions: {v1: {}}\n", "version 'v1' is not allowed"),
        (
            "revision: 1\nmodels:\n  my-model:\n    versions: {1: {}}\n"
            "  my_model:\n    versions: {1: {}}\n",
            "r.yaml:3: models: model names 'my-model' and 'my_model' differ only by - and _",
        ),
        ("revision: [1\n", "r.yaml:2: expected ',' or ']'"),
    ],
)
def test_errors_name_line_key_value_and_what_is_allowed(text: str, expected: str) -> None:
    assert expected in _error(text)


@pytest.mark.parametrize(
    "hostile",
    [
        "    rate_limit: {rate: 10r/s, key: 'header:X-A; include /etc/passwd'}\n",
        "    release: {force_header: 'X-V\"; return 200 x'}\n",
        "    release: {sticky_key: 'header:X} server {'}\n",
        "    versions: {1: {upstreams: ['127.0.0.1:1; proxy_pass http://evil']}}\n",
        "    versions: {1: {upstreams: ['unix:/tmp/a b.sock']}}\n",
        "    rate_limit: {rate: '10r/s burst=99999'}\n",
    ],
)
def test_nothing_that_could_inject_nginx_directives_passes(hostile: str) -> None:
    text = "revision: 1\nmodels:\n  m:\n    versions: {1: {}}\n" + hostile
    if "versions:" in hostile:
        text = "revision: 1\nmodels:\n  m:\n" + hostile
    _error(text)


def test_upstreams_accept_tcp_and_unix_sockets() -> None:
    release = parse_release(
        "revision: 1\nmodels:\n  m:\n    versions:\n"
        "      1: {upstreams: ['127.0.0.1:9000', 'unix:/run/weir/sidecar-0.sock',\n"
        "                      'gpu-1.local:80']}\n"
    )
    assert release.models["m"].versions["1"].upstreams == [
        "127.0.0.1:9000",
        "unix:/run/weir/sidecar-0.sock",
        "gpu-1.local:80",
    ]


def test_batching_is_the_sidecar_s_own_model_with_its_defaults() -> None:
    from sidecar.serving.model_config import Batching

    release = parse_release(MINIMAL.replace("{1: {}}", "{1: {batching: {max_batch_size: 0}}}"))
    batching = release.models["digits"].versions["1"].batching
    assert type(batching) is Batching
    assert batching.max_batch_size == 0  # the sidecar's meaning: each request alone
    # Unset fields stay unset: the sidecar's own defaults apply, not a second set of them.
    assert batching.model_dump(exclude_unset=True) == {"max_batch_size": 0}
    assert "batching.bogus: unknown key 'bogus'" in _error(
        MINIMAL.replace("{1: {}}", "{1: {batching: {bogus: 1}}}")
    )
