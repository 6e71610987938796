"""The release file is as strict as it looks: whole-value patterns, no duplicate keys, no type
coercion, limits before parsing, no aliases, durations nginx takes, fallback statuses that can
carry a JSON body. Every refusal names the file, the line and what to do."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from scripts.release import ReleaseError, load_release, parse_release
from scripts.release.loading import MAX_BYTES, MAX_DEPTH

MINIMAL = "revision: 3\nmodels:\n  digits:\n    versions: {1: {}}\n"


def _error(text: str | bytes) -> str:
    with pytest.raises(ReleaseError) as info:
        parse_release(text, "r.yaml")
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MINIMAL.replace("{1: {}}", '{"1\\n": {}}'), "r.yaml:4: models.digits.versions: version"),
        (
            MINIMAL + '    release: {split: {"1\\n": 100}}\n',
            "version '1\\n' is not allowed",
        ),
        (MINIMAL + '    fallback: {version: "1\\n"}\n', "version '1\\n' is not allowed"),
        (
            MINIMAL + '    release: {force_header: "X-Weir-Version\\n"}\n',
            "r.yaml:5: models.digits.release.force_header: 'X-Weir-Version\\n': expected a header",
        ),
        (MINIMAL + '    release: {sticky_key: "header:X-User\\n"}\n', "sticky_key"),
        (MINIMAL + '    rate_limit: {rate: "5r/s\\n"}\n', "rate_limit.rate"),
        (MINIMAL + '    rate_limit: {rate: 5r/s, key: "header:K\\n"}\n', "rate_limit.key"),
        ('edge: {listen: "127.0.0.1:8080\\n"}\n' + MINIMAL, "r.yaml:1: edge.listen"),
        (MINIMAL.replace("{1: {}}", "{1: {upstreams: ['unix:/a.sock\\n']}}"), "upstreams"),
        (MINIMAL.replace("  digits:", '  "digits\\n":'), "model name 'digits\\n'"),
        (MINIMAL + '    timeout: "2s\\n"\n', "models.digits.timeout"),
        ('edge: {max_body: "16m\\n"}\n' + MINIMAL, "edge.max_body"),
    ],
)
def test_a_trailing_newline_is_refused_everywhere(text: str, expected: str) -> None:
    assert expected in _error(text)


def test_a_duplicate_key_names_both_lines() -> None:
    text = MINIMAL + "    timeout: 2s\n    timeout: 3s\n"
    assert _error(text) == (
        "r.yaml:6: key 'timeout' is given twice (first on line 5): keep one of them"
    )
    twice = MINIMAL + "  digits:\n    versions: {2: {}}\n"
    assert "r.yaml:5: key 'digits' is given twice (first on line 3)" in _error(twice)
    # 1 and "1" are the same version once read.
    assert "key '1' is given twice" in _error(MINIMAL.replace("{1: {}}", '{1: {}, "1": {}}'))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MINIMAL.replace("revision: 3", "revision: true"), "r.yaml:1: revision: True: expected a"),
        (MINIMAL.replace("revision: 3", 'revision: "3"'), "r.yaml:1: revision: '3': expected a"),
        (MINIMAL.replace("revision: 3", "revision: 3.0"), "revision: 3.0: expected a whole"),
        (MINIMAL + '    release: {split: {1: "100"}}\n', "split.1: '100': expected a number"),
        (MINIMAL + "    release: {split: {1: true}}\n", "split.1: True: expected a number"),
        ('edge: {workers: "2"}\n' + MINIMAL, "edge.workers"),
        ("edge: {keepalive: true}\n" + MINIMAL, "edge.keepalive: True: expected a whole"),
        ("edge: {listen: true}\n" + MINIMAL, "edge.listen"),
        ("edge: {access_log: 1}\n" + MINIMAL, "edge.access_log: 1: expected true or false"),
        ("sidecars: {devices: [0, '1']}\n" + MINIMAL, "sidecars.devices"),
        (MINIMAL + '    breaker: {failures: "5"}\n', "breaker.failures: '5': expected a whole"),
        (MINIMAL + "    release: {force_header: 12}\n", "force_header: 12: expected text"),
        (MINIMAL + '    fallback: {status: "200"}\n', "fallback.status: '200': expected a whole"),
        (
            MINIMAL.replace("{1: {}}", '{1: {batching: {max_batch_size: "8"}}}'),
            "batching.max_batch_size: '8': expected a whole number",
        ),
    ],
)
def test_no_type_is_coerced(text: str, expected: str) -> None:
    assert expected in _error(text)


def test_numbers_stay_numbers_and_strings_stay_strings() -> None:
    release = parse_release(
        MINIMAL + "    release: {split: {1: 100}, force_header: X-V}\n"
        "    fallback: {status: 200, body: {label: '7', when: 2024-01-01}}\n"
    )
    model = release.models["digits"]
    assert model.weights() == {"1": 100.0}
    # A date is the text it is (PyYAML would make it a date, which JSON cannot carry).
    assert model.fallback is not None and model.fallback.body == {
        "label": "7",
        "when": "2024-01-01",
    }


def test_deep_nesting_is_refused_before_it_recurses() -> None:
    for text in (
        "revision: 1\nmodels: " + "[" * 5000 + "]" * 5000 + "\n",
        "revision: 1\nmodels: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
        "revision: 1\nmodels:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200)),
    ):
        assert f"nested deeper than {MAX_DEPTH} levels" in _error(text)


def test_a_huge_or_non_utf8_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    assert "over the 256 KiB a release may be" in _error("#" * (MAX_BYTES + 1))
    assert _error(b"revision: 1\nmodels:\n  \xff: {}\n") == (
        "r.yaml:3: byte 0xff is not UTF-8: save the file as UTF-8"
    )
    path = tmp_path / "release.yaml"
    path.write_bytes(b"revision: 1\n\xc3\x28\n")
    with pytest.raises(ReleaseError, match=r"release.yaml:2: byte 0xc3 is not UTF-8"):
        load_release(path)
    path.write_bytes(b"#" * (10 * MAX_BYTES))
    with pytest.raises(ReleaseError, match="over the 256 KiB"):
        load_release(path)
    assert "character '\\x00' is not allowed" in _error("revision: 1\x00\n")
    assert "fix it" in _error("revision: " + "1" * 5000 + "\n")


@pytest.mark.parametrize(
    "text",
    [
        MINIMAL + "    timeout: &t 2s\n",
        "x: &a [1]\n" + MINIMAL,
        MINIMAL + "    breaker: {failures: 5}\n    <<: {timeout: 2s}\n",
    ],
)
def test_anchors_aliases_and_merges_are_refused(text: str) -> None:
    assert "anchors and aliases (&name, *name, << merges) are not allowed" in _error(text)


def test_an_alias_bomb_is_refused_at_once() -> None:
    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = MINIMAL + "    fallback:\n      status: 200\n      body: {b: *a8}\n" + "\n".join(bomb)
    started = time.monotonic()
    assert "r.yaml:7: YAML anchors and aliases" in _error(text)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("timeout", "seconds"), [("500ms", 0.5), ("1500ms", 1.5), ("1000ms", 1), ("2s", 2), (5, 5)]
)
def test_timeouts_in_any_unit_pass(timeout: object, seconds: float) -> None:
    release = parse_release(MINIMAL + f"    timeout: {timeout}\n")
    assert release.models["digits"].timeout == seconds


def test_a_timeout_over_an_hour_is_refused() -> None:
    assert "timeout must be at most 1h" in _error(MINIMAL + "    timeout: 2h\n")


@pytest.mark.parametrize("status", [100, 201, 204, 302, 304, 400, 404, 418, 599, 600])
def test_a_fallback_status_that_cannot_carry_its_body_is_refused(status: int) -> None:
    message = _error(MINIMAL + f"    fallback: {{status: {status}}}\n")
    assert f"fallback.status: {status}: a fallback answers with a JSON body" in message
    assert "200, 429, 500, 502, 503, 504" in message


@pytest.mark.parametrize("status", [200, 429, 500, 502, 503, 504])
def test_fallback_statuses_that_make_sense_pass(status: int) -> None:
    release = parse_release(MINIMAL + f"    fallback: {{status: {status}, body: {{x: 1}}}}\n")
    assert release.models["digits"].fallback.status == status  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{x: .nan}", "JSON has no NaN"),
        ("{x: !!binary aGVsbG8=}", "bytes"),
        ("{1: x}", "fallback.body"),
        ("{x: '" + "y" * 70_000 + "'}", "over 65536: a placeholder is small"),
    ],
)
def test_a_fallback_body_is_json_and_small(body: str, expected: str) -> None:
    assert expected in _error(MINIMAL + f"    fallback: {{status: 200, body: {body}}}\n")


def test_an_unknown_key_named_like_a_pydantic_tag_is_reported_as_itself() -> None:
    # Found by the fuzz test: `list[` was taken for one of pydantic's location tags.
    assert "r.yaml:1: list[: unknown key 'list['" in _error("'list[': null\n" + MINIMAL)
    assert "r.yaml:1: str: unknown key 'str'" in _error("str: 1\n" + MINIMAL)


def test_thousands_of_problems_are_reported_as_the_first_few_quickly() -> None:
    text = MINIMAL + "".join(f"    bogus{i}: 1\n" for i in range(5000))
    started = time.monotonic()
    lines = _error(text).splitlines()
    assert time.monotonic() - started < 5
    assert len(lines) == 21 and lines[-1] == "r.yaml: ... and 4980 more problems: fix these first"
