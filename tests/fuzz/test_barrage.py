"""Issue 8's "what must hold": 1,000 hostile requests of every kind the issue names, concurrent,
through the edge of a real `weir up`; then every breaker closed, every kill switch (and live
split) set before still in force, the state file as the test left it, ordinary requests answered
by their own version, and not one 5xx or HTML answer on the way.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from tests.fuzz.conftest import LONG, RSS_GROWTH_MIB, Stack, assert_healthy_after, is_html, killed

TOTAL = 5000 if LONG else 1000
THREADS = 8
MB = 1024 * 1024


@dataclass
class Answer:
    kind: str
    status: int | None  # None: no answer expected (the client aborted)
    content_type: str = ""
    body: bytes = b""


def http(stack: Stack, kind: str, method: str, path: str, body=None, admin=False, **headers):
    base = stack.admin_url if admin else stack.url
    if admin and headers.pop("token", True):
        headers["Authorization"] = f"Bearer {stack.token}"
    response = requests.request(method, base + path, data=body, headers=headers, timeout=30)
    return Answer(
        kind, response.status_code, response.headers.get("Content-Type", ""), response.content[:512]
    )


# Requests nginx cannot answer: it waits for the rest of a body (or of a request line) that
# never comes, until the client goes away. Every other raw request must get an answer.
NO_ANSWER = {"chunked:short", "chunked:no-end", "line:b'\\r\\n\\r\\n\\r\\n'"}


def raw(stack: Stack, kind: str, data: bytes, admin=False, expect_answer=True) -> Answer:
    """Bytes straight onto a socket: what no HTTP library would send. The client stops writing
    (half-closes) only where nginx would otherwise wait for it (NO_ANSWER)."""
    port = stack.admin_port if admin else stack.port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with contextlib.suppress(OSError):  # nginx answered and closed before taking it all
            s.sendall(data)
        if not expect_answer:
            s.shutdown(socket.SHUT_RDWR)  # the client gives up mid-body
            return Answer(kind, None)
        chunks = []
        try:
            if kind in NO_ANSWER:
                s.shutdown(socket.SHUT_WR)
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except OSError:
            pass
    reply = b"".join(chunks)
    if not reply:
        return Answer(kind, 0)
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    content_type = next(
        (
            line.split(b":", 1)[1].strip().decode()
            for line in lines[1:]
            if line.lower().startswith(b"content-type:")
        ),
        "",
    )
    return Answer(kind, status, content_type, body[:512])


def call(kind: str, method: str, path: str, body=None, **kwargs):
    """A case: `http` with these arguments, given the stack."""
    return functools.partial(http, kind=kind, method=method, path=path, body=body, **kwargs)


def send(kind: str, data: bytes, **kwargs):
    """A case: `raw` with these arguments, given the stack."""
    return functools.partial(raw, kind=kind, data=data, **kwargs)


def envelope(stack: Stack, model: str = "digits") -> dict:
    return json.loads(stack.example(model))


def json_case(kind: str, text: str | bytes, model="digits", path="", **headers):
    body = text.encode() if isinstance(text, str) else text
    headers.setdefault("X-Api-Key", "barrage")
    return lambda stack: http(
        stack,
        kind,
        "POST",
        f"/v2/models/{model}{path}/infer",
        body,
        **{"Content-Type": "application/json", **headers},
    )


def with_field(stack: Stack, model: str, raw_json: str, where: str) -> str:
    """The ordinary request with `raw_json` (JSON text, as is) as the value of `where`."""
    doc = envelope(stack, model)
    marker = "__WEIR_BARRAGE__"
    if where == "id":
        doc["id"] = marker
    elif where == "parameters":
        doc["parameters"] = marker
    elif where == "input_name":
        doc["inputs"][0]["name"] = marker
    elif where == "data":
        doc["inputs"][0]["data"] = marker
    elif where == "shape":
        doc["inputs"][0]["shape"] = marker
    elif where == "output_name":
        doc["outputs"] = [{"name": marker}]
    elif where == "input_parameters":
        doc["inputs"][0]["parameters"] = marker
    return json.dumps(doc).replace(f'"{marker}"', raw_json)


DEEP = 1100
WHERES = ("id", "parameters", "input_name", "data", "shape", "output_name", "input_parameters")
VALUES = {
    "surrogate": ['"\\ud800"', '"\\udfff"', '"a\\udc00b"', '{"\\ud800": 1}', '["\\ud83d"]'],
    "surrogate-raw": ['"\xed\xa0\x80"'],
    "deep": ["[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP, "[" * 70 + "1" + "]" * 70],
    "huge-number": [
        "1e999",
        "-1e999",
        "9" * 400,
        "[1e999]",
        "[" + "9" * 400 + "]",
        "18446744073709551616",
        "1e308",
    ],
    "type": ["null", "true", "{}", "[]", '"1"', "-1", "0.5"],
}


def cases(stack: Stack) -> dict[str, list]:
    """Every kind of hostile request; each a function of the stack returning an Answer."""
    out: dict[str, list] = {}
    for kind, values in VALUES.items():
        out[kind] = [
            json_case(f"{kind}:{where}", with_field(stack, model, value, where), model)
            for value in values
            for where in WHERES
            for model in ("digits", "cnn")
        ]
    out["surrogate-raw"] = [
        json_case(
            f"surrogate-raw:{w}",
            with_field(stack, "digits", '"__R__"', w).encode().replace(b"__R__", b"\xed\xa0\x80"),
        )
        for w in WHERES
    ]
    ordinary = stack.example("digits").decode()
    out["duplicate-keys"] = [
        json_case("dup:id", ordinary.replace('{"id": "ordinary"', '{"id": "a", "id": "b"')),
        json_case("dup:inputs", ordinary[:-1] + ', "inputs": []}'),
        json_case("dup:name", ordinary.replace('"name": "input"', '"name": "input", "name": "x"')),
        json_case("dup:params", ordinary[:-1] + ', "parameters": {"a": 1, "a": 2}}'),
    ]
    out["not-json"] = [
        json_case("bom", b"\xef\xbb\xbf" + ordinary.encode()),
        json_case("utf16", ordinary.encode("utf-16")),
        json_case("trailing", ordinary + " {}"),
        json_case("truncated", ordinary[:40]),
        json_case("empty", b""),
        json_case("nan", ordinary.replace("[0, ", "[NaN, ", 1)),
        json_case("control", ordinary.replace('"ordinary"', '"a\x01b"')),
        json_case("garbage", bytes(range(256))),
    ]
    out["binary-header"] = [
        json_case(
            f"ihcl:{v}",
            ordinary,
            **{"Inference-Header-Content-Length": v, "Content-Type": "application/octet-stream"},
        )
        for v in ("0", "-1", "abc", "99999999", str(len(ordinary) + 1), "1e3", "+5")
    ]
    # Between the sidecars' default limit (16m) and the edge's (24m), and just over the edge's.
    big = (
        b'{"id":"big","inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":['
        + b"0," * (17 * MB // 2)
        + b"0]}]}"
    )
    out["big-body"] = [
        json_case("17m", big),
        json_case("17m-cnn", big, model="cnn"),
        json_case("25m", b" " * (25 * MB)),
    ]
    out["missing-key"] = [
        json_case("no-api-key", ordinary, **{"X-Api-Key": ""}),
        lambda s: http(
            s,
            "no-api-key-header",
            "POST",
            "/v2/models/digits/infer",
            ordinary,
            **{"Content-Type": "application/json"},
        ),
    ]
    versions = [
        "1.0",
        "..",
        "%2e%2e",
        "1/../2",
        "-1",
        "01",
        "99999999999999999999",
        "1%00",
        "",
        "x",
        "2/../../cnn/versions/1",
        "1;2",
        "%31",
    ]
    out["bad-version"] = (
        [json_case(f"version:{v}", ordinary, path=f"/versions/{v}") for v in versions]
        + [call(f"meta-version:{v}", "GET", f"/v2/models/digits/versions/{v}") for v in versions]
        + [
            call(f"ready-version:{v}", "GET", f"/v2/models/digits/versions/{v}/ready")
            for v in versions
        ]
        + [
            lambda s: http(s, "unknown-model", "GET", "/v2/models/nosuch"),
            lambda s: http(s, "dotdot-model", "GET", "/v2/models/../admin/status"),
            lambda s: http(s, "not-v2", "GET", "/v3/models/digits"),
        ]
    )
    host = f"Host: 127.0.0.1:{stack.port}\r\nConnection: close\r\n".encode()
    out["bad-request-line"] = [
        send(f"line:{line[:20]!r}", line)
        for line in (
            b"GET\r\n\r\n",
            b"GET / HTTP/9.9\r\n\r\n",
            b"FOO /v2 HTTP/1.1\r\n" + host + b"\r\n",
            b"GET /v2 HTTP/1.1 extra\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"GET /v2 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET /v2 HTTP/1.1\r\n\r\n",
            b"GET http://evil/v2 HTTP/1.1\r\n" + host + b"\r\n",
            b"\r\n\r\n\r\n",
            b"GET /v2\x00 HTTP/1.1\r\n" + host + b"\r\n",
            b"GET /v2 HTTP/1.1\r\n" + host + b"Bad Header\r\n\r\n",
            b"POST /v2/models/digits/infer HTTP/1.0\r\nX-Api-Key: k\r\n\r\n",
        )
    ]
    out["oversized"] = [
        lambda s: raw(
            s,
            "header-64k",
            b"GET /v2 HTTP/1.1\r\n" + host + b"X-Big: " + b"a" * 65536 + b"\r\n\r\n",
        ),
        lambda s: raw(
            s,
            "many-headers",
            b"GET /v2 HTTP/1.1\r\n"
            + host
            + b"".join(b"X-%d: %s\r\n" % (i, b"b" * 1000) for i in range(40))
            + b"\r\n",
        ),
        lambda s: raw(s, "uri-20k", b"GET /v2/" + b"a" * 20000 + b" HTTP/1.1\r\n" + host + b"\r\n"),
        lambda s: raw(
            s,
            "infer-uri-9k",
            b"POST /v2/models/digits/infer?"
            + b"q" * 9000
            + b" HTTP/1.1\r\n"
            + host
            + b"Content-Length: 0\r\n\r\n",
        ),
        lambda s: raw(
            s,
            "admin-header-64k",
            b"GET /admin/status HTTP/1.1\r\nHost: a\r\n"
            + b"Connection: close\r\nAuthorization: Bearer "
            + b"t" * 65536
            + b"\r\n\r\n",
            admin=True,
        ),
        lambda s: raw(
            s,
            "admin-uri-20k",
            b"GET /admin/" + b"a" * 20000 + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            admin=True,
        ),
    ]
    infer_head = (
        b"POST /v2/models/%s/infer HTTP/1.1\r\n"
        + host
        + b"X-Api-Key: barrage\r\nContent-Type: application/json\r\nConnection: close\r\n"
    )
    body = ordinary.encode()
    chunked = b"Transfer-Encoding: chunked\r\n\r\n"
    out["bad-chunked"] = [
        send(f"chunked:{name}", infer_head % model + data)
        for model in (b"digits", b"cnn")
        for name, data in (
            ("bad-hex", chunked + b"zz\r\n" + body + b"\r\n0\r\n\r\n"),
            ("overflow", chunked + b"ffffffffffffffffffff\r\n" + body + b"\r\n0\r\n\r\n"),
            ("short", chunked + b"%x\r\n" % (len(body) + 50) + body + b"\r\n0\r\n\r\n"),
            ("no-crlf", chunked + b"%x\r\n" % len(body) + body + b"0\r\n\r\n"),
            ("no-end", chunked + b"%x\r\n" % len(body) + body + b"\r\n"),
            ("negative", chunked + b"-5\r\n" + body + b"\r\n0\r\n\r\n"),
            ("ext", chunked + b"%x;" % len(body) + b"a" * 5000 + b"\r\n" + body + b"\r\n0\r\n\r\n"),
            (
                "cl-and-te",
                b"Content-Length: 5\r\n"
                + chunked
                + b"%x\r\n" % len(body)
                + body
                + b"\r\n0\r\n\r\n",
            ),
            ("te-gzip", b"Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            ("te-unknown", b"Transfer-Encoding: bogus\r\nContent-Length: 2\r\n\r\n{}"),
            ("two-cl", b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}x"),
            ("cl-letters", b"Content-Length: 1x\r\n\r\n{}"),
            ("cl-huge", b"Content-Length: 99999999999999999999999\r\n\r\n{}"),
        )
    ]
    out["abort"] = [
        send(
            f"abort:{model}:{sent}",
            infer_head % model + b"Content-Length: %d\r\n\r\n" % (len(body) * 20) + body[:sent],
            expect_answer=False,
        )
        for model in (b"digits", b"cnn")
        for sent in (0, 10, len(body))
    ] + [
        lambda s: raw(
            s,
            "abort:chunked",
            infer_head % b"digits" + chunked + b"%x\r\n" % len(body) + body[:20],
            expect_answer=False,
        ),
        lambda s: raw(
            s,
            "abort:admin",
            b"PUT /admin/models/digits/split HTTP/1.1\r\nHost: a\r\n"
            + f"Authorization: Bearer {s.token}\r\n".encode()
            + b'Content-Length: 500\r\n\r\n{"1":',
            admin=True,
            expect_answer=False,
        ),
    ]
    # FOO: nginx takes any token as a method; unanswered here, the sidecar's server would
    # answer it with an HTML page.
    methods = ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD", "PROPFIND", "FOO")
    out["wrong-method"] = (
        [
            call(f"method:{m}:{p}", m, p)
            for m in methods
            for p in ("/v2/models/digits/infer", "/v2/models/cnn/versions/1/infer")
        ]
        + [
            call(f"method:{m}:{p}", m, p, "{}")
            for m in ("POST", "PUT", "DELETE", "PATCH", "FOO")
            for p in (
                "/v2",
                "/v2/health/live",
                "/v2/health/ready",
                "/v2/models/digits",
                "/v2/models/digits/versions/1/ready",
            )
        ]
        + [
            call(f"admin-method:{m}:{p}", m, p, admin=True)
            for m in ("PUT", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "FOO")
            for p in (
                "/admin/status",
                "/admin/checksum",
                "/admin/settings/reload",
                "/metrics",
                "/admin/models/digits",
                "/admin/models/digits/kill",
                "/admin/models/digits/versions/2/kill",
                "/metrics/sidecars/cpu",
            )
        ]
    )
    splits = [
        "[0,100]",
        '{"1":0x5a,"2":0xa}',
        '{"1":NaN,"2":NaN}',
        '{"1":"90","2":"10"}',
        '{"1":1e309,"2":-1e309}',
        '{"1":90.05,"2":9.95}',
        '{"1":Infinity}',
        '{"3":100}',
        '{"1":100,"1":0}',
        '{"1":-10,"2":110}',
        '{"\\ud800":100}',
        "null",
        '"1"',
        "",
        "{" * 1100 + "}" * 1100,
        '{"1":' + "9" * 400 + "}",
        '{"1":100}' + " " * 70000,
        '{"1": true, "2": false}',
        '{"1": 50, "2": 50',
        "\xff\xfe",
    ]
    out["admin-split"] = [
        call(
            f"split:{b[:20]!r}",
            m,
            "/admin/models/digits/split",
            b.encode("utf-8", "surrogatepass"),
            admin=True,
            **{"Content-Type": "application/json"},
        )
        for b in splits
        for m in ("PUT", "POST")
    ] + [
        lambda s: http(
            s,
            "admin-no-token",
            "DELETE",
            "/admin/models/digits/versions/2/kill",
            admin=True,
            token=False,
        ),
        lambda s: http(
            s,
            "admin-bad-token",
            "DELETE",
            "/admin/models/digits/versions/2/kill",
            admin=True,
            token=False,
            Authorization="Bearer nope",
        ),
        lambda s: http(
            s,
            "admin-token-query",
            "DELETE",
            f"/admin/models/digits/kill?token={s.token}",
            admin=True,
            token=False,
        ),
        lambda s: http(
            s, "admin-bad-version", "POST", "/admin/models/digits/versions/1.0/kill", admin=True
        ),
        lambda s: http(
            s,
            "admin-dotdot",
            "DELETE",
            "/admin/models/digits/versions/2/../kill",
            admin=True,
            token=False,
        ),
        lambda s: http(s, "admin-unknown", "POST", "/admin/models/nosuch/kill", admin=True),
        lambda s: http(s, "admin-surrogate", "GET", "/admin/models/%ED%A0%80", admin=True),
    ]
    return out


def schedule(all_cases: dict[str, list], total: int) -> list:
    """`total` requests: every case once (the big bodies twice), then every kind equally often
    (the big bodies no more: memory), shuffled."""
    rng = random.Random(8)
    plan = [case for cases_of_kind in all_cases.values() for case in cases_of_kind]
    plan += all_cases["big-body"]
    assert len(plan) <= total, f"{len(plan)} cases, more than {total} requests"
    kinds = [k for k in all_cases if k != "big-body"]
    while len(plan) < total:
        plan.append(rng.choice(all_cases[kinds[len(plan) % len(kinds)]]))
    rng.shuffle(plan)
    return plan


def protocol_error(answer: Answer) -> bool:
    """nginx's own 501 (a Transfer-Encoding it does not implement) and 505 (an HTTP version it
    does not speak), in JSON: what HTTP says to answer there, before any model is chosen (no
    breaker can count them). Every other 5xx fails the barrage."""
    kind = answer.kind.split(":")[0]
    if (answer.status, kind) in {(505, "line"), (501, "chunked")}:
        return True
    # Metadata and readiness of the version the test killed: not ready, by the operator's word.
    return (
        answer.status == 503
        and kind in ("meta-version", "ready-version")
        and b"version 2 of model digits is switched off" in answer.body
    )


def test_a_thousand_hostile_requests_leave_the_edge_as_it_was(prepared: Stack):
    stack = prepared
    before = stack.status()
    state_before = stack.state_file.read_bytes()
    kills_before = killed(before)
    assert kills_before["digits"] == (False, ["2"])
    log_from = len(stack.lines)

    plan = schedule(cases(stack), TOTAL)
    rss_before = stack.rss_mib()
    started = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(lambda case: case(stack), plan))
    elapsed = time.monotonic() - started

    statuses = Counter(a.status for a in answers)
    print(
        f"\nbarrage: {len(answers)} requests in {elapsed:.1f}s, {THREADS} threads: "
        f"{dict(sorted(statuses.items(), key=str))}"
    )
    server_errors = [
        a for a in answers if a.status is not None and a.status >= 500 and not protocol_error(a)
    ]
    # A malformed chunked body is refused mid-stream: the 400 may be lost to the reset that the
    # unread rest of the body causes when nginx closes (TCP, not the edge). Not a 5xx either way.
    unanswered = Counter(
        a.kind
        for a in answers
        if a.status == 0 and a.kind not in NO_ANSWER and not a.kind.startswith("chunked:")
    )
    assert not unanswered, unanswered
    assert not server_errors, [(a.kind, a.status, a.body[:200]) for a in server_errors[:20]]
    html = [a for a in answers if a.status and is_html(a.content_type, a.body)]
    assert not html, [(a.kind, a.status, a.content_type, a.body[:120]) for a in html[:20]]
    not_json = [
        a
        for a in answers
        if a.status and a.body and not a.content_type.startswith("application/json")
    ]
    assert not not_json, [(a.kind, a.status, a.content_type, a.body[:120]) for a in not_json[:20]]

    # A wrong method is 405 on every route, data plane and admin alike.
    wrong = Counter(
        (a.kind, a.status)
        for a in answers
        if a.kind.startswith(("method:", "admin-method:", "line:b'FOO")) and a.status != 405
    )
    assert not wrong, wrong

    after = stack.status()
    assert killed(after) == kills_before
    assert after["models"]["digits"]["weights"]["override"] == {"1": 70, "2": 30}
    assert stack.state_file.read_bytes() == state_before
    assert_healthy_after(stack, kills_before)
    rss_after = stack.rss_mib()
    print(f"barrage RSS MiB before {rss_before}, after {rss_after}")
    for group, bound in RSS_GROWTH_MIB.items():
        assert rss_after[group] - rss_before[group] <= bound, (group, rss_before, rss_after)
    log = "".join(stack.lines[log_from:])
    assert "Traceback" not in log, log[-3000:]
    assert "Broken pipe" not in log, log[-3000:]
