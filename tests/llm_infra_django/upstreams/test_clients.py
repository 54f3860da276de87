"""Every upstream client against a real local HTTP server: good answers, 500s, hangs, garbage, fail-open/closed."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY

from llm_infra_django import errors, tracing
from llm_infra_django.upstreams import (
    InvalidResponseError,
    PolicyEngineClient,
    RegistryClient,
    ShieldClient,
    UpstreamClient,
)
from tests.conftest import free_port
from tests.llm_infra_django.upstreams.conftest import Answer, FakeUpstream

ENTRY = {
    "kind": "service",
    "id": "acme/summarizer@1.2.0",
    "name": "Summarizer",
    "version": "1.2.0",
    "status": "active",
    "owner": "acme",
    "metadata": {"category": "summarization"},
    "updated_at": "2026-11-26T10:00:00Z",
}


@dataclasses.dataclass(frozen=True)
class Case:
    """One client operation: how to call it, what the server should get, a good answer and what it becomes."""

    upstream: str
    client: type[UpstreamClient]
    call: Callable[[Any], Any]
    acall: Callable[[Any], Awaitable[Any]]
    expected_request: tuple[str, str, Any]
    good_answer: Answer
    check_answer: Callable[[Any], bool]
    check_permissive: Callable[[Any], bool]


CASES = {
    "shield": Case(
        upstream="shield",
        client=ShieldClient,
        call=lambda client: client.scan("hello there", tenant="acme", model="acme/chat"),
        acall=lambda client: client.ascan("hello there", tenant="acme", model="acme/chat"),
        expected_request=(
            "POST",
            "/v1/scan",
            {"direction": "prompt", "text": "hello there", "tenant": "acme", "model": "acme/chat", "metadata": {}},
        ),
        good_answer=Answer.of(
            200,
            {
                "decision": "warn",
                "reasons": [{"code": "toxicity.mild", "message": "Mild language", "severity": "low"}],
                "scan_id": "scan-1",
            },
        ),
        check_answer=lambda verdict: (
            verdict.decision == "warn"
            and verdict.text == "hello there"
            and verdict.reasons[0].code == "toxicity.mild"
            and verdict.reasons[0].severity == "low"
            and verdict.scan_id == "scan-1"
        ),
        check_permissive=lambda verdict: verdict.decision == "allow" and verdict.text == "hello there",
    ),
    "policy_engine": Case(
        upstream="policy_engine",
        client=PolicyEngineClient,
        call=lambda client: client.evaluate("consumption", tenant="acme", resource={"service": "acme/chat"}),
        acall=lambda client: client.aevaluate("consumption", tenant="acme", resource={"service": "acme/chat"}),
        expected_request=(
            "POST",
            "/v1/evaluate",
            {"kind": "consumption", "tenant": "acme", "resource": {"service": "acme/chat"}, "context": {}},
        ),
        good_answer=Answer.of(
            200,
            {
                "decision": "deny",
                "violations": [{"rule": "residency.sanctioned", "message": "KP is sanctioned", "severity": "critical"}],
                "policy_version": "v7",
            },
        ),
        check_answer=lambda decision: (
            decision.allowed is False
            and decision.violations[0].rule == "residency.sanctioned"
            and decision.violations[0].severity == "critical"
            and decision.policy_version == "v7"
        ),
        check_permissive=lambda decision: decision.allowed is True and decision.violations == (),
    ),
    "registry": Case(
        upstream="registry",
        client=RegistryClient,
        call=lambda client: client.register(
            "service",
            "acme/summarizer@1.2.0",
            name="Summarizer",
            version="1.2.0",
            owner="acme",
            metadata={"category": "summarization"},
        ),
        acall=lambda client: client.aregister(
            "service",
            "acme/summarizer@1.2.0",
            name="Summarizer",
            version="1.2.0",
            owner="acme",
            metadata={"category": "summarization"},
        ),
        expected_request=(
            "PUT",
            "/v1/services/acme%2Fsummarizer%401.2.0",
            {key: value for key, value in ENTRY.items() if key != "updated_at"},
        ),
        good_answer=Answer.of(201, {"entry": ENTRY}),
        check_answer=lambda result: (
            result.found is True
            and result.entry is not None
            and result.entry.id == "acme/summarizer@1.2.0"
            and result.entry.metadata == {"category": "summarization"}
            and result.entry.updated_at == "2026-11-26T10:00:00Z"
        ),
        check_permissive=lambda result: result.found is False and result.entry is None,
    ),
}
CASE_PARAMS = [pytest.param(case, id=name) for name, case in CASES.items()]

# How each failure mode fails closed: our error, its HTTP status, and how many requests the server got (3 attempts).
FAILURES = {
    "error": (errors.ExternalServiceError, 502, 3),
    "hang": (errors.UpstreamTimeoutError, 504, 3),
    "garbage": (InvalidResponseError, 502, 1),
    "wrong_shape": (InvalidResponseError, 502, 1),
}


def timeout_for(mode: str) -> dict[str, int]:
    """A short timeout for the hanging upstream (each attempt waits it out), the generous default otherwise."""
    return {"TIMEOUT_MS": 200} if mode == "hang" else {}


@pytest.fixture
def make_client() -> Iterator[Callable[[type[UpstreamClient]], Any]]:
    clients: list[UpstreamClient] = []

    def make(cls: type[UpstreamClient]) -> Any:
        clients.append(cls())
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def latency_count(upstream: str, outcome: str) -> float:
    labels = {"service": upstream, "outcome": outcome}
    return REGISTRY.get_sample_value("llm_infra_upstream_request_duration_seconds_count", labels) or 0.0


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_a_good_answer_is_parsed(case: Case, upstream_server: FakeUpstream, configure: Any, make_client: Any) -> None:
    # given an upstream answering by the contract
    upstream_server.responder = lambda received: case.good_answer
    configure(case.upstream, upstream_server.url, fail_open=False)
    before = latency_count(case.upstream, "success")

    # when the client is called
    result = case.call(make_client(case.client))

    # then the server got the documented request and the answer was read
    received = upstream_server.received
    assert [(r.method, r.path, r.json) for r in received] == [case.expected_request]
    assert received[0].headers["accept"] == "application/json"
    assert "authorization" not in received[0].headers
    assert (result.evaluated, result.degraded, result.error) == (True, False, None)
    assert case.check_answer(result)
    assert latency_count(case.upstream, "success") == before + 1


@pytest.mark.parametrize("case", CASE_PARAMS)
async def test_a_good_answer_is_parsed_async(case: Case, upstream_server: FakeUpstream, configure: Any) -> None:
    # given an upstream answering by the contract
    upstream_server.responder = lambda received: case.good_answer
    configure(case.upstream, upstream_server.url, fail_open=True)
    client = case.client()

    # when the async client is called
    result = await case.acall(client)
    await client.aclose()

    # then the same request was sent and the same answer read
    assert [(r.method, r.path, r.json) for r in upstream_server.received] == [case.expected_request]
    assert (result.evaluated, result.degraded) == (True, False)
    assert case.check_answer(result)


@pytest.mark.parametrize("mode", sorted(FAILURES))
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_a_failing_upstream_fails_open(
    case: Case,
    mode: str,
    upstream_server: FakeUpstream,
    configure: Any,
    make_client: Any,
    log_events: Callable[[str], list[dict[str, Any]]],
) -> None:
    # given a fail-open upstream that fails in this way
    upstream_server.mode = mode
    configure(case.upstream, upstream_server.url, fail_open=True, **timeout_for(mode))

    # when the client is called
    result = case.call(make_client(case.client))

    # then the permissive result comes back, flagged degraded, after retrying only what is worth it
    assert (result.evaluated, result.degraded) == (False, True)
    assert result.error
    assert case.check_permissive(result)
    assert len(upstream_server.received) == FAILURES[mode][2]
    final = [line for line in log_events("external_call") if line["outcome"] != "retry"]
    assert len(final) == 1
    assert final[0]["service"] == case.upstream
    assert final[0]["fail_open"] is True


@pytest.mark.parametrize("mode", sorted(FAILURES))
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_a_failing_upstream_fails_closed(
    case: Case, mode: str, upstream_server: FakeUpstream, configure: Any, make_client: Any
) -> None:
    # given a fail-closed upstream that fails in this way
    upstream_server.mode = mode
    configure(case.upstream, upstream_server.url, fail_open=False, **timeout_for(mode))
    error_class, status, requests = FAILURES[mode]

    # when the client is called, then our error for that failure is raised
    with pytest.raises(error_class) as caught:
        case.call(make_client(case.client))
    assert caught.value.status_code == status
    assert caught.value.details["service"] == case.upstream
    assert isinstance(caught.value, InvalidResponseError) == (error_class is InvalidResponseError)
    assert len(upstream_server.received) == requests


@pytest.mark.parametrize("fail_open", [True, False], ids=["open", "closed"])
@pytest.mark.parametrize("mode", sorted(FAILURES))
@pytest.mark.parametrize("case", CASE_PARAMS)
async def test_a_failing_upstream_async(
    case: Case, mode: str, fail_open: bool, upstream_server: FakeUpstream, configure: Any
) -> None:
    # given an upstream failing in this way
    upstream_server.mode = mode
    configure(case.upstream, upstream_server.url, fail_open=fail_open, **timeout_for(mode))
    client = case.client()
    error_class, status, requests = FAILURES[mode]

    # when the async client is called, then it fails open or closed like the sync one
    try:
        if fail_open:
            result = await case.acall(client)
            assert result.degraded
            assert case.check_permissive(result)
        else:
            with pytest.raises(error_class) as caught:
                await case.acall(client)
            assert caught.value.status_code == status
    finally:
        await client.aclose()
    assert len(upstream_server.received) == requests


@pytest.mark.parametrize("fail_open", [True, False], ids=["open", "closed"])
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_an_unreachable_upstream(case: Case, fail_open: bool, configure: Any, make_client: Any) -> None:
    # given an upstream URL where nothing listens
    configure(case.upstream, f"http://127.0.0.1:{free_port()}", fail_open=fail_open)
    client = make_client(case.client)

    # when the client is called, then it is degraded (open) or a 503 that is not a circuit (closed)
    if fail_open:
        assert case.check_permissive(case.call(client))
        return
    with pytest.raises(errors.ServiceUnavailableError) as caught:
        case.call(client)
    assert not isinstance(caught.value, errors.CircuitOpenError)
    assert caught.value.details == {"service": case.upstream}


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_repeated_failures_open_the_upstream_circuit(
    case: Case, upstream_server: FakeUpstream, configure: Any, make_client: Any
) -> None:
    # given a fail-closed upstream answering 500 (three attempts per call, five failures open the circuit)
    upstream_server.mode = "error"
    configure(case.upstream, upstream_server.url, fail_open=False)
    client = make_client(case.client)
    with pytest.raises(errors.ExternalServiceError):
        case.call(client)

    # when it keeps failing
    with pytest.raises(errors.CircuitOpenError) as opened:
        case.call(client)
    with pytest.raises(errors.CircuitOpenError) as refused:
        case.call(client)

    # then the circuit opened on the fifth failure and later calls never reach the server
    assert len(upstream_server.received) == 5
    assert opened.value.details == {"circuit": f"upstream:{case.upstream}"}
    assert refused.value.headers() == {"Retry-After": "30"}


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_an_open_circuit_fails_open_when_configured(
    case: Case, upstream_server: FakeUpstream, configure: Any, make_client: Any
) -> None:
    # given a fail-open upstream whose circuit is open
    upstream_server.mode = "error"
    configure(case.upstream, upstream_server.url, fail_open=True)
    client = make_client(case.client)
    case.call(client)
    case.call(client)
    served = len(upstream_server.received)

    # when it is called again
    result = case.call(client)

    # then the permissive result is given at once, naming the open circuit
    assert len(upstream_server.received) == served
    assert result.degraded
    assert "open" in result.error


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_an_unconfigured_upstream_is_not_used(case: Case, make_client: Any) -> None:
    # given the test settings, where no upstream has a URL
    client = make_client(case.client)

    # when the client is called
    result = case.call(client)

    # then nothing was evaluated and the caller knows to apply its built-in rules
    assert client.is_configured() is False
    assert (result.evaluated, result.degraded, result.error) == (False, False, None)
    assert case.check_permissive(result)


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_the_api_key_is_sent_as_a_bearer_token(
    case: Case, upstream_server: FakeUpstream, configure: Any, make_client: Any
) -> None:
    # given an upstream with an API key
    upstream_server.responder = lambda received: case.good_answer
    configure(case.upstream, upstream_server.url, fail_open=False, API_KEY="upstream-key-123")

    # when the client is called, then the server receives it as a bearer token
    case.call(make_client(case.client))
    assert upstream_server.received[0].headers["authorization"] == "Bearer upstream-key-123"


# version 00, trace id, parent (span) id, flags with the "sampled" bit set.
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f][13579bdf]$")


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_the_trace_context_reaches_the_server(
    case: Case, upstream_server: FakeUpstream, configure: Any, make_client: Any, span_exporter: InMemorySpanExporter
) -> None:
    # given active tracing and a request being handled in a span
    upstream_server.responder = lambda received: case.good_answer
    configure(case.upstream, upstream_server.url, fail_open=False)

    # when the client is called inside that span
    with tracing.span("handle-request") as parent:
        case.call(make_client(case.client))
    trace_id = parent.get_span_context().trace_id

    # then the server got a W3C traceparent of the same trace, whose parent is the client span
    match = TRACEPARENT.match(upstream_server.received[0].headers["traceparent"])
    assert match is not None
    assert int(match.group(1), 16) == trace_id
    client_spans = [s for s in span_exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert len(client_spans) == 1
    assert int(match.group(2), 16) == client_spans[0].context.span_id
    assert client_spans[0].parent is not None and client_spans[0].parent.span_id == parent.get_span_context().span_id
    assert client_spans[0].attributes["peer.service"] == case.upstream
    assert client_spans[0].attributes["http.response.status_code"] == case.good_answer.status


async def test_the_trace_context_reaches_the_server_async(
    upstream_server: FakeUpstream, configure: Any, span_exporter: InMemorySpanExporter
) -> None:
    # given active tracing
    upstream_server.responder = lambda received: Answer.of(200, {"decision": "allow"})
    configure("shield", upstream_server.url, fail_open=False)
    client = ShieldClient()

    # when the async client is called inside a span
    with tracing.span("handle-request") as parent:
        await client.ascan("hi")
    await client.aclose()

    # then the traceparent carries that trace
    match = TRACEPARENT.match(upstream_server.received[0].headers["traceparent"])
    assert match is not None
    assert int(match.group(1), 16) == parent.get_span_context().trace_id


def test_each_retried_attempt_is_its_own_client_span(
    upstream_server: FakeUpstream, configure: Any, make_client: Any, span_exporter: InMemorySpanExporter
) -> None:
    # given an upstream failing with 500
    upstream_server.mode = "error"
    configure("shield", upstream_server.url, fail_open=True)

    # when the client retries
    make_client(ShieldClient).scan("hi")

    # then each attempt was traced as an error, with its own span id in the traceparent it sent
    spans = [s for s in span_exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert len(spans) == 3
    assert all(not s.status.is_ok for s in spans)
    sent = [TRACEPARENT.match(r.headers["traceparent"]) for r in upstream_server.received]
    assert [int(m.group(2), 16) for m in sent if m] == [s.context.span_id for s in spans]
