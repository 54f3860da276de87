"""Routing a catalog model across competing offers (in-process proxy, real Redis/PostgreSQL, local upstreams):
fallbacks before the first byte, each failed attempt recorded; the `provider` preferences; who served."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from apps.catalog import services as catalog
from apps.catalog.models import ModelStatus, ModelVersion
from apps.catalog.services.offers import offer_model
from apps.consumption import choosing, tokenizer
from apps.consumption.models import UsageRecord
from apps.publishing import services as publishing
from apps.publishing.models import ServiceVersion
from tests.apps.catalog.factories import artifact
from tests.apps.consumption.conftest import ECHO_DEFINITION, drain_ledger, publish_openai
from tests.apps.consumption.test_proxy import post, wait_for_record
from tests.support import openai_upstream

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "acme/llama"
MESSAGES = [{"role": "user", "content": "Hello there"}]


def catalog_model(provider: Any, slug: str = "llama") -> Any:
    """A published, public catalog model of the provider with one ready version (made once)."""
    existing = ModelVersion.objects.filter(model__owner=provider, model__slug=slug).first()
    if existing is not None:
        return existing
    model = catalog.create_model(
        owner=provider,
        actor=provider.owner,
        slug=slug,
        values={"name": slug.title(), "visibility": "public", "license": "apache-2.0"},
    )
    version = catalog.create_version(
        model=model,
        actor=provider.owner,
        version="1.0.0",
        values={"artifacts": [artifact(f"{slug}.safetensors")], "status": "ready"},
    )
    catalog.change_model_status(model=model, actor=provider.owner, status=ModelStatus.PUBLISHED)
    return version


def offer(provider: Any, model_version: Any, service_slug: str) -> None:
    service_version = ServiceVersion.objects.select_related("service").get(service__slug=service_slug)
    assert service_version.status == "active", (service_slug, service_version.status)
    offer_model(provider=provider, actor=provider.owner, model_version=model_version, service_version=service_version)


def echo_offer(provider: Any, slug: str, **values: Any) -> None:
    publishing.publish_service(
        publisher=provider,
        actor=provider.owner,
        slug=slug,
        version="1.0.0",
        values={**ECHO_DEFINITION, "name": slug.title(), **values},
    )


@pytest.fixture
def failing_market(provider: Any, upstream: Any) -> dict[str, Any]:
    """`acme/llama` offered by three services: one whose upstream refuses connections, one answering 503, one
    healthy."""
    good, good_url = upstream
    server, busy, busy_url = openai_upstream.start()
    dead_server, _, dead_url = openai_upstream.start()
    # (validation probes each upstream: they fail only once published)
    publish_openai(provider, dead_url, slug="dead")
    publish_openai(provider, busy_url, slug="busy")
    publish_openai(provider, good_url, slug="good")
    dead_server.shutdown()
    dead_server.server_close()  # its port now refuses connections
    busy.status = 503
    version = catalog_model(provider)
    for slug in ("dead", "busy", "good"):
        offer(provider, version, slug)
    yield {"good": good, "busy": busy}
    server.shutdown()
    server.server_close()


@pytest.fixture
def priced_market(provider: Any) -> None:
    """`acme/llama` offered by three echo services at different prices and residencies."""
    echo_offer(provider, "cheap", price_input_per_mtok="100", price_output_per_mtok="200", data_residency=["US"])
    echo_offer(
        provider,
        "mid",
        price_input_per_mtok="1000",
        price_output_per_mtok="2000",
        data_residency=["FR"],
        gdpr_compliant=True,
    )
    echo_offer(
        provider,
        "dear",
        price_input_per_mtok="5000",
        price_output_per_mtok="9000",
        data_residency=["DE"],
        gdpr_compliant=True,
    )
    version = catalog_model(provider)
    for slug in ("cheap", "mid", "dear"):
        offer(provider, version, slug)


async def records_of(request_id: str, attempts: int, seconds: float = 5.0) -> tuple[UsageRecord, list[UsageRecord]]:
    """The call's record and its attempts' (written in the background: wait for them)."""
    record = await wait_for_record(request_id)
    for _ in range(int(seconds / 0.05)):
        tried = [r async for r in UsageRecord.objects.filter(attempt_of=request_id).order_by("request_id")]
        if len(tried) >= attempts:
            return record, tried
        await asyncio.sleep(0.05)
    raise AssertionError(f"{request_id}: {attempts} attempt records expected")


async def test_calls_to_a_model_fall_back_past_a_refusing_and_a_failing_offer(failing_market, make_key) -> None:
    # given default preferences and a seeded choice
    choosing.rng.seed(17)
    secret = await sync_to_async(make_key)()

    # when 100 calls are made
    answers = [await post("/v1/chat/completions", {"model": MODEL, "messages": MESSAGES, "max_tokens": 3}, secret)]
    answers += [
        await post("/v1/chat/completions", {"model": MODEL, "messages": MESSAGES, "max_tokens": 3}, secret)
        for _ in range(99)
    ]

    # then every one is answered, by the healthy offer, which the answer names
    assert [a.status_code for a in answers] == [200] * 100, answers[0].content
    assert {a["X-Marketplace-Provider"] for a in answers} == {"acme/good@1.0.0"}
    assert {a.json()["provider"] for a in answers} == {"acme/good@1.0.0"}
    assert failing_market["good"].requests == 100

    # and each failed attempt is a record of its own, billed nothing, linked to its call
    fell_back = 0
    for answer in answers:
        request_id = answer["X-Request-ID"]
        record = await wait_for_record(request_id)
        record, tried = await records_of(request_id, record.attempts)
        assert (record.provider, record.status_code, record.model_id) == ("acme/good@1.0.0", 200, MODEL)
        assert record.cost > 0
        assert len(tried) == record.attempts <= 2
        for attempt in tried:
            assert attempt.provider in ("acme/dead@1.0.0", "acme/busy@1.0.0")
            assert attempt.status_code in (502, 503, 504) and attempt.cost == 0
        fell_back += record.attempts
    assert fell_back > 0
    # the provider's SLA data sees the failures; the consumer's rollups count 100 requests
    failures = await UsageRecord.objects.exclude(attempt_of="").acount()
    assert failures == fell_back


async def test_without_fallbacks_the_first_choice_error_is_the_answer(failing_market, make_key) -> None:
    secret = await sync_to_async(make_key)()
    body = {"model": MODEL, "messages": MESSAGES, "provider": {"order": ["acme/busy"], "allow_fallbacks": False}}
    answer = await post("/v1/chat/completions", body, secret)
    assert answer.status_code == 502, answer.content
    assert failing_market["busy"].requests == 1 and failing_market["good"].requests == 0


async def test_a_4xx_of_the_upstream_is_the_answer_not_a_reason_to_fall_back(failing_market, make_key) -> None:
    failing_market["busy"].status = 400
    secret = await sync_to_async(make_key)()
    body = {"model": MODEL, "messages": MESSAGES, "provider": {"order": ["acme/busy", "acme/good"]}}
    answer = await post("/v1/chat/completions", body, secret)
    assert answer.status_code == 400, answer.content
    assert failing_market["good"].requests == 0


def usage_client(tenant: Any) -> Any:
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(tenant.owner)
    return client


async def test_a_stream_whose_first_offer_fails_before_its_first_byte_is_served_by_the_next(
    failing_market, make_key, consumer
) -> None:
    secret = await sync_to_async(make_key)()
    body = {
        "model": MODEL,
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
        "provider": {"order": ["acme/dead", "acme/busy", "acme/good"]},
    }
    answer = await post("/v1/chat/completions", body, secret)
    assert answer.status_code == 200
    assert answer["X-Marketplace-Provider"] == "acme/good@1.0.0"
    text = b"".join([chunk async for chunk in answer.streaming_content]).decode()
    assert "w0" in text and text.rstrip().endswith("data: [DONE]")
    assert '"provider":"acme/good@1.0.0"' in text  # in the usage chunk
    record, tried = await records_of(answer["X-Request-ID"], 2)
    assert record.attempts == 2 and record.provider == "acme/good@1.0.0" and record.status_code == 200
    assert [attempt.provider for attempt in tried] == ["acme/dead@1.0.0", "acme/busy@1.0.0"]

    # the usage API carries who served and links the attempts (filterable)
    client = await sync_to_async(usage_client)(consumer)
    listed = await sync_to_async(client.get)("/api/v1/usage/", {"attempt_of": answer["X-Request-ID"]})
    assert listed.status_code == 200, listed.content
    rows = listed.json()["results"]
    assert sorted(row["provider"] for row in rows) == ["acme/busy@1.0.0", "acme/dead@1.0.0"]
    assert {row["cost"] for row in rows} == {"0"} or {float(row["cost"]) for row in rows} == {0.0}
    served = await sync_to_async(client.get)("/api/v1/usage/", {"provider": "acme/good", "attempts": "false"})
    assert [row["attempts"] for row in served.json()["results"]] == [2]


async def test_a_stream_failing_after_its_first_byte_ends_with_an_error_event_and_bills_what_was_delivered(
    failing_market, make_key
) -> None:
    failing_market["good"].break_stream_after = 3
    secret = await sync_to_async(make_key)()
    body = {"model": MODEL, "messages": MESSAGES, "stream": True, "provider": {"order": ["acme/good", "acme/busy"]}}
    answer = await post("/v1/chat/completions", body, secret)
    assert answer.status_code == 200
    events = [chunk async for chunk in answer.streaming_content]
    text = b"".join(events).decode()
    # words were delivered, then the error event: no fallback after the first byte
    chunks = [json.loads(event[len("data: ") :]) for event in text.strip().split("\n\n")]
    delivered = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1] if c.get("choices"))
    assert delivered.startswith("w0") and "w3" not in text
    assert chunks[-1]["error"]["code"] == "external_service_error"
    assert failing_market["busy"].requests == 0
    # and the delivered part is billed
    record = await wait_for_record(answer["X-Request-ID"])
    assert (record.status_code, record.error_code, record.provider) == (499, "stream_failed", "acme/good@1.0.0")
    assert record.completion_tokens == tokenizer.count_tokens(delivered) > 0 and record.cost > 0


async def test_preferences_order_only_ignore_max_price_residency_and_sort(priced_market, make_key) -> None:
    secret = await sync_to_async(make_key)()

    async def served(provider: dict[str, Any], times: int = 8) -> set[str]:
        found = set()
        for _ in range(times):
            body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 2, "provider": provider}
            answer = await post("/v1/chat/completions", body, secret)
            assert answer.status_code == 200, answer.content
            found.add(answer["X-Marketplace-Provider"].split("@")[0])
        return found

    assert await served({"order": ["acme/dear"]}) == {"acme/dear"}
    assert await served({"order": ["acme/mid", "acme/dear"]}) == {"acme/mid"}
    assert await served({"only": ["acme/mid"]}) == {"acme/mid"}
    assert await served({"ignore": ["acme/cheap", "acme/mid"]}) == {"acme/dear"}
    assert await served({"max_price": {"prompt": 1000}}, times=20) <= {"acme/cheap", "acme/mid"}
    assert await served({"data_residency": ["DE"]}) == {"acme/dear"}
    assert await served({"data_residency": ["fr", "de"], "sort": "price"}) == {"acme/mid"}
    assert await served({"sort": "price"}) == {"acme/cheap"}


async def test_no_offer_left_by_the_preferences_is_a_404(priced_market, make_key) -> None:
    secret = await sync_to_async(make_key)()
    body = {"model": MODEL, "messages": MESSAGES, "provider": {"data_residency": ["JP"]}}
    answer = await post("/v1/chat/completions", body, secret)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "no_offer_available"


@pytest.mark.parametrize(
    ("preference", "field"),
    [
        ({"speed": "fast"}, "provider.speed"),
        ({"sort": "cheapest"}, "provider.sort"),
        ({"order": "acme/mid"}, "provider.order"),
        ({"order": ["mid"]}, "provider.order[0]"),
        ({"max_price": {"prompt": -1}}, "provider.max_price.prompt"),
        ({"max_price": {"image": 1}}, "provider.max_price.image"),
        ({"allow_fallbacks": "yes"}, "provider.allow_fallbacks"),
        ({"compliance": ["secret"]}, "provider.compliance"),
        ("cheap", "provider"),
    ],
)
async def test_bad_preferences_are_a_400_naming_the_field(priced_market, make_key, preference, field) -> None:
    secret = await sync_to_async(make_key)()
    body = {"model": MODEL, "messages": MESSAGES, "provider": preference}
    answer = await post("/v1/chat/completions", body, secret)
    assert answer.status_code == 400, answer.content
    assert field in json.dumps(answer.json()), answer.json()
    assert await UsageRecord.objects.acount() == 0


async def test_the_models_list_falls_back_to_another_model(failing_market, provider, make_key) -> None:
    # given a service that is not an offer of `acme/llama`
    await sync_to_async(echo_offer)(provider, "other")
    secret = await sync_to_async(make_key)()
    body = {
        "model": MODEL,
        "models": ["acme/other"],
        "messages": MESSAGES,
        "provider": {"only": ["acme/busy", "acme/other"]},
    }
    answer = await post("/v1/chat/completions", body, secret)
    assert answer.status_code == 200, answer.content
    assert answer["X-Marketplace-Provider"] == "acme/other@1.0.0"
    assert failing_market["busy"].requests == 1
    # the routing fields are ours: the upstream never sees them
    assert "provider" not in failing_market["busy"].bodies[-1] and "models" not in failing_market["busy"].bodies[-1]
    record, tried = await records_of(answer["X-Request-ID"], 1)
    assert record.model_id == "acme/other" and [t.model_id for t in tried] == [MODEL]


async def test_admission_reserves_the_highest_price_among_the_candidates(priced_market, make_key) -> None:
    # a budget that covers one call at the dearest offer's price, not two: the first call is admitted whichever
    # offer serves it, and nothing is ever billed beyond the budget
    secret = await sync_to_async(make_key)(budget_day_usd="0.2")
    statuses = []
    for _ in range(6):
        body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 5}
        statuses.append((await post("/v1/chat/completions", body, secret)).status_code)
    assert set(statuses) <= {200, 402} and statuses[0] == 200
    await sync_to_async(drain_ledger)()
    billed = sum([r.cost async for r in UsageRecord.objects.all()], Decimal(0))
    assert billed <= Decimal("0.2")


def test_default_choice_weights_offers_by_the_inverse_square_of_their_price() -> None:
    from apps.consumption.preferences import Preferences
    from tests.apps.consumption.test_choosing import route

    offers = [choosing.Offer(route("a", "1")), choosing.Offer(route("b", "2")), choosing.Offer(route("c", "4"))]
    choosing.rng.seed(2026)
    firsts = Counter(choosing.plan(offers, Preferences())[0].offer_id for _ in range(2000))
    weights = {"acme/a": 1.0, "acme/b": 1 / 4, "acme/c": 1 / 16}
    total = sum(weights.values())
    for name, weight in weights.items():
        assert firsts[name] / 2000 == pytest.approx(weight / total, abs=0.03), firsts


async def test_the_model_list_shows_routed_models_with_their_offers_and_lowest_prices(priced_market, make_key) -> None:
    secret = await sync_to_async(make_key)()
    response = await AsyncClient().get("/v1/models", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200, response.content
    models = {row["id"]: row for row in response.json()["data"]}
    routed = models[MODEL]
    assert routed["offers"] == 3 and routed["owned_by"] == "acme"
    assert routed["pricing"]["prompt"] == "0.0001" and routed["pricing"]["completion"] == "0.0002"
    # beside today's service ids
    assert {"acme/cheap", "acme/mid", "acme/dear"} <= set(models) and "offers" not in models["acme/cheap"]


async def test_tenant_and_key_routing_are_restrictions_a_request_narrows_but_never_widens(
    priced_market, make_key, consumer
) -> None:
    # given the tenant keeps its calls in the EU (set through the REST API) and a key that wants the dearest offer
    client = await sync_to_async(usage_client)(consumer)
    refused = await sync_to_async(client.put)("/api/v1/routing/", {"routing": {"sort": "cheapest"}}, format="json")
    assert refused.status_code == 400 and "routing.sort" in json.dumps(refused.json())
    saved = await sync_to_async(client.put)(
        "/api/v1/routing/", {"routing": {"data_residency": ["FR", "DE"]}}, format="json"
    )
    assert saved.status_code == 200, saved.content
    assert (await sync_to_async(client.get)("/api/v1/routing/")).json()["routing"] == {"data_residency": ["FR", "DE"]}
    plain = await sync_to_async(make_key)()
    dear = await sync_to_async(make_key)(routing={"order": ["acme/dear"]})

    async def serves(secret: str, provider: dict[str, Any] | None = None) -> str | int:
        body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 2, **({"provider": provider} if provider else {})}
        answer = await post("/v1/chat/completions", body, secret)
        return answer["X-Marketplace-Provider"].split("@")[0] if answer.status_code == 200 else answer.status_code

    # then every call stays in the EU, whatever it asks
    assert {await serves(plain) for _ in range(10)} <= {"acme/mid", "acme/dear"}
    assert await serves(plain, {"sort": "price"}) == "acme/mid"
    assert await serves(plain, {"data_residency": ["US"]}) == 404
    assert await serves(plain, {"only": ["acme/cheap"]}) == 404
    # a key's preferences apply, and a request's choices replace its choices (within the restrictions)
    assert await serves(dear) == "acme/dear"
    assert await serves(dear, {"order": ["acme/mid"]}) == "acme/mid"


async def test_a_key_with_bad_routing_is_refused_naming_the_field(consumer) -> None:
    client = await sync_to_async(usage_client)(consumer)
    response = await sync_to_async(client.post)(
        "/api/v1/keys/", {"name": "k", "routing": {"only": "acme/x"}}, format="json"
    )
    assert response.status_code == 400 and "routing.only" in json.dumps(response.json())


def test_an_offer_below_the_availability_threshold_or_with_an_open_circuit_is_unhealthy(priced_market) -> None:
    from django.core.cache import cache

    from apps.consumption import health, sla
    from llm_infra_django.resilience.breaker import breaker

    versions = {v.service.slug: str(v.pk) for v in ServiceVersion.objects.select_related("service")}
    cache.set(sla.CACHE_PREFIX + versions["cheap"], {"requests": 100, "availability": 79.0, "p50_ms": 12.0})
    cache.set(sla.CACHE_PREFIX + versions["mid"], {"requests": 100, "availability": 80.0, "throughput_tps": 40.0})
    circuit = breaker(f"upstream:{versions['dear']}")
    for _ in range(20):
        try:
            with circuit.guard():
                raise ConnectionError("down")
        except Exception:
            pass
    found = health.offer_health(versions.values())
    assert not found[versions["cheap"]].healthy and found[versions["cheap"]].p50_ms == 12.0
    assert found[versions["mid"]].healthy and found[versions["mid"]].throughput_tps == 40.0
    assert found[versions["dear"]].breaker == "open" and not found[versions["dear"]].healthy

    # the worker's cache: unknown offers count as healthy; an open circuit seen by a call counts at once
    health.health_cache.clear()
    assert health.health_cache.get([versions["mid"]])[versions["mid"]].healthy
    health.health_cache.saw_open(versions["mid"])
    assert not health.health_cache.get([versions["mid"]])[versions["mid"]].healthy
