"""Fuzzing: schemathesis generates requests from the app's own /openapi.json (valid and invalid ones) and sends them
to a live server on 127.0.0.1 over the fake runner. No response may be a 5xx, and every response must match the
schema (status documented, body valid). CI-sized here; load_tests/fuzz.py runs the same with ≥ 1,000 cases."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import negative_data_rejection, positive_data_acceptance  # noqa: E402

from faulty_apps import faulty_app  # noqa: E402
from live_server import live_server  # noqa: E402

EXAMPLES = int(os.environ.get("R3HF_FUZZ_EXAMPLES", "12"))
REPORT = os.environ.get("R3HF_FUZZ_REPORT")  # load_tests/fuzz.py collects the counts here

APP, _ = faulty_app(max_length=64, max_items_per_request=16, max_queue_items=64)

# Beyond the schema, the server checks what only it can (a chat must end with the assistant's turn, OpenRLHF sends one
# prompt per query, items must fit the model), so a schema-valid request may rightly get 422; and pydantic's lax mode
# reads "true" as true. Those two checks would flag correct behaviour; every other check runs.
SEMANTIC_CHECKS = [positive_data_acceptance, negative_data_rejection]


def tuples_as_arrays(node):  # type: ignore[no-untyped-def]
    """(mean, std)-style tuples as plain arrays of their one item type: schemathesis's response validator rejects
    OpenAPI 3.1's ``prefixItems`` (it reads them as draft-4 ``items`` lists)."""
    if isinstance(node, list):
        return [tuples_as_arrays(x) for x in node]
    if not isinstance(node, dict):
        return node
    node = {k: tuples_as_arrays(v) for k, v in node.items()}
    prefix = node.pop("prefixItems", None)
    if prefix is not None:
        assert all(p == prefix[0] for p in prefix), "only homogeneous tuples can be rewritten"
        node["items"] = prefix[0]
    return node


schema = schemathesis.openapi.from_dict(tuples_as_arrays(APP.openapi()))
CASES: Counter[str] = Counter()


@pytest.fixture(scope="module")
def base_url():
    with live_server(APP) as url:
        yield url
    if REPORT:
        Path(REPORT).write_text(json.dumps(dict(CASES), indent=2, sort_keys=True))


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_server_error_and_every_response_matches_the_schema(case, base_url):
    response = case.call(base_url=base_url, timeout=30)
    CASES[f"{case.method} {case.path}"] += 1
    CASES[f"status {response.status_code}"] += 1
    assert response.status_code < 500, (case.method, case.path, case.body, response.text[:500])
    case.validate_response(response, excluded_checks=SEMANTIC_CHECKS)
