"""Schemathesis against a real `weir up`, from the edge's own contract (nginx/openapi.yaml): the
data plane and the admin API (with the token), valid and invalid requests alike. Every response:
no 5xx, never HTML (JSON, or Prometheus text for metrics). After the run: every breaker closed,
the kill switches still in force, ordinary requests answered by their own version, the edge's and
the sidecars' memory within a bound.

Short by default (a bounded number of examples, well under a minute); `WEIR_FUZZ=long` (or
`make fuzz`) runs many more.
"""

from __future__ import annotations

import time
from collections import Counter

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fuzz.conftest import (
    LONG,
    MODELS,
    ROOT,
    RSS_GROWTH_MIB,
    Stack,
    assert_healthy_after,
    infer,
    is_html,
)
from tests.fuzz.conftest import killed as kills_of

SCHEMA = schemathesis.openapi.from_path(str(ROOT / "nginx" / "openapi.yaml"))
EXAMPLES = 20000 if LONG else 1000
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
VERSIONS = (("digits", "1"), ("digits", "2"), ("cnn", "1"))
CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]
KILL_OPERATIONS = ("killModel", "reviveModel", "killVersion", "reviveVersion")


def strategies() -> tuple[st.SearchStrategy, st.SearchStrategy]:
    # One filter per subset (chained include() calls do not narrow in Schemathesis 4).
    data_plane = SCHEMA.include(tag="data-plane")
    by_model = SCHEMA.include(name_regex=r"^\w+ /v2/models/\{model_name\}")
    by_version = SCHEMA.include(name_regex=r"^\w+ /v2/.*\{model_version\}")
    admin = SCHEMA.include(tag="admin")
    # Known models only where live state cannot change for good (status, splits: put back at
    # the end); kill switches only on unknown names.
    admin_known = SCHEMA.include(
        name_regex=r"^(GET|PUT|POST) /admin/models/\{model_name\}(/split)?$"
    )
    data = st.one_of(
        *(data_plane.as_strategy(mode) for mode in MODES),
        *(
            by_model.as_strategy(mode, path_parameters={"model_name": m})
            for mode in MODES
            for m in MODELS
        ),
        *(
            by_version.as_strategy(mode, path_parameters={"model_name": m, "model_version": v})
            for mode in MODES
            for m, v in VERSIONS
        ),
    )
    admin_cases = st.one_of(
        *(admin.as_strategy(mode) for mode in MODES),
        *(
            admin_known.as_strategy(mode, path_parameters={"model_name": m})
            for mode in MODES
            for m in MODELS
        ),
    )
    return data, admin_cases


DATA, ADMIN = strategies()


def check(case, response, seen: list) -> None:
    what = (
        f"{case.method} {case.formatted_path} -> {response.status_code} "
        f"{response.headers}: {response.text[:300]}"
    )
    seen.append((case.operation.definition.raw.get("operationId"), response.status_code))
    killed_version = b"version 2 of model digits is switched off" in response.content
    assert response.status_code < 500 or killed_version, what
    headers = {k.lower(): v[0] if isinstance(v, list) else v for k, v in response.headers.items()}
    content_type = headers.get("content-type", "")
    assert not is_html(content_type, response.content), what
    if case.method == "HEAD":
        return
    # The published contract holds: documented statuses, content types and bodies.
    case.validate_response(response, checks=CONFORMANCE)
    metrics = case.path.startswith("/metrics") or case.path == "/admin/metrics"
    if metrics and response.status_code == 200:
        assert content_type.startswith("text/plain"), what
    else:
        assert content_type.startswith("application/json"), what


def warm_up(stack: Stack) -> None:
    for _ in range(50):
        for model in MODELS:
            infer(stack, model)
    requests.get(f"{stack.url}/v2/health/ready", timeout=10)


def test_schemathesis_fuzz_of_the_data_plane_and_the_admin_api(prepared: Stack):
    stack = prepared
    before = stack.status()
    kills_before = kills_of(before)
    split_before = before["models"]["digits"]["weights"]["override"]
    warm_up(stack)
    rss_before = stack.rss_mib()
    session = requests.Session()
    token = {"Authorization": f"Bearer {stack.token}"}
    seen: list[tuple[str, int]] = []

    # Short runs are the same examples every time (a regression guard in `make test`); long
    # runs explore afresh.
    @settings(
        derandomize=not LONG,
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.one_of(DATA.map(lambda c: (c, False)), ADMIN.map(lambda c: (c, True))))
    def fuzz(drawn):
        case, admin = drawn
        if admin:
            if (
                case.operation.definition.raw.get("operationId") in KILL_OPERATIONS
                and case.path_parameters.get("model_name") in MODELS
            ):
                case.path_parameters["model_name"] = "no-such-model"
            response = case.call(
                base_url=stack.admin_url, session=session, headers=token, timeout=30
            )
        else:
            response = case.call(base_url=stack.url, session=session, timeout=30)
        check(case, response, seen)

    started = time.monotonic()
    fuzz()
    elapsed = time.monotonic() - started
    # The fuzz may have set a live split of its own (a valid body): put back the one before.
    stack.admin("PUT", "/admin/models/digits/split", json=split_before)
    warm_up(stack)
    rss_after = stack.rss_mib()
    print(
        f"\nfuzz: {len(seen)} requests in {elapsed:.1f}s; RSS MiB before {rss_before}, "
        f"after {rss_after}; {sorted(Counter(seen).items())}"
    )
    assert_healthy_after(stack, kills_before)
    for group, bound in RSS_GROWTH_MIB.items():
        assert rss_after[group] - rss_before[group] <= bound, (group, rss_before, rss_after)
