"""Policy Engine contract details: deny and its violations, advisory findings, invalid answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from llm_infra_django import errors
from llm_infra_django.upstreams import InvalidResponseError, PolicyEngineClient
from tests.llm_infra_django.upstreams.conftest import Answer, FakeUpstream

VIOLATION = {
    "rule": "residency.empty",
    "message": "No data residency declared",
    "severity": "high",
    "field": "compliance.data_residency",
}


@pytest.fixture
def engine(upstream_server: FakeUpstream, configure: Any) -> Iterator[PolicyEngineClient]:
    configure("policy_engine", upstream_server.url, fail_open=False)
    client = PolicyEngineClient()
    yield client
    client.close()


def test_a_denial_raises_a_policy_violation(engine: PolicyEngineClient, upstream_server: FakeUpstream) -> None:
    # given the engine denying a publication
    upstream_server.responder = lambda received: Answer.of(200, {"decision": "deny", "violations": [VIOLATION]})

    # when a publishing request is evaluated
    decision = engine.evaluate(
        "publishing", tenant="acme", resource={"compliance": {"data_residency": []}}, context={"actor": "u1"}
    )

    # then it is denied, and raising gives our 403 with the violations
    assert upstream_server.received[0].json["kind"] == "publishing"
    assert upstream_server.received[0].json["context"] == {"actor": "u1"}
    assert decision.allowed is False
    with pytest.raises(errors.PolicyViolationError) as caught:
        decision.raise_for_violations()
    assert caught.value.status_code == 403
    assert caught.value.violations == [VIOLATION]


def test_advisory_violations_do_not_deny(engine: PolicyEngineClient, upstream_server: FakeUpstream) -> None:
    # given an allow carrying a low-severity finding
    advisory = {"rule": "sla.low_availability", "message": "Below 99.9 %", "severity": "low"}
    upstream_server.responder = lambda received: Answer.of(200, {"decision": "allow", "violations": [advisory]})

    # when evaluated, then it is allowed, with the finding kept
    decision = engine.evaluate("consumption", resource={"service": "acme/chat"})
    decision.raise_for_violations()
    assert decision.allowed
    assert decision.violations[0].field is None


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "permit"},
        {"decision": "deny", "violations": [{"rule": "x", "message": "m"}]},
        {"decision": "deny", "violations": [{"severity": "high"}]},
        {"violations": []},
    ],
    ids=["unknown_decision", "violation_without_severity", "violation_without_rule", "no_decision"],
)
def test_answers_off_the_contract_are_invalid(
    engine: PolicyEngineClient, upstream_server: FakeUpstream, body: Any
) -> None:
    # given an answer breaking the contract
    upstream_server.responder = lambda received: Answer.of(200, body)

    # when evaluated fail-closed, then it is an invalid response
    with pytest.raises(InvalidResponseError):
        engine.evaluate("consumption", resource={})


def test_fail_open_denial_is_never_invented(upstream_server: FakeUpstream, configure: Any) -> None:
    # given a fail-open engine sending garbage
    upstream_server.mode = "garbage"
    configure("policy_engine", upstream_server.url, fail_open=True)
    client = PolicyEngineClient()

    # when evaluated, then the request is allowed, flagged degraded
    decision = client.evaluate("consumption", resource={})
    client.close()
    assert decision.allowed and decision.degraded and not decision.evaluated
    decision.raise_for_violations()
