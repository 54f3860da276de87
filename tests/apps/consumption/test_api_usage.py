"""Usage and quota endpoints: filters, cursor pages, provider view, summaries, budgets, 400s, tenant isolation."""

from __future__ import annotations

from datetime import UTC, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.consumption.services import create_api_key
from apps.tenancy.models import Role
from tests.apps.consumption.test_usage import Traffic, entry, make_traffic, write
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

API = "/api/v1"
ENDPOINTS = [f"{API}/usage/", f"{API}/usage/summary/", f"{API}/quota/"]


@pytest.fixture
def traffic(provider: Any, echo_service: Any, consumer: Any) -> Traffic:
    return make_traffic(provider, echo_service, consumer)


def session(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def results(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


@pytest.fixture
def outsider(db: Any) -> dict[str, Any]:
    tenant = TenantFactory(slug="initech")
    owner = UserFactory(username="initech-owner")
    MembershipFactory(tenant=tenant, user=owner, role=Role.OWNER)
    _, secret = create_api_key(tenant=tenant, actor=owner, name="x", scopes=["read"])
    return {"tenant": tenant, "owner": owner, "secret": secret}


@pytest.fixture
def recorded(traffic: Traffic) -> Traffic:
    """Five requests of the consumer: three answered, a 429 and a 502, over three days."""
    now = timezone.now()
    write(
        [
            entry(traffic, started_at=now - timedelta(minutes=1), request_id="r-ok-1"),
            entry(traffic, started_at=now - timedelta(minutes=2), request_id="r-ok-2", endpoint="embeddings"),
            entry(traffic, started_at=now - timedelta(days=1), request_id="r-429", status=429, cost=Decimal(0)),
            entry(traffic, started_at=now - timedelta(days=2), request_id="r-502", status=502, cost=Decimal(0)),
            entry(
                traffic,
                started_at=now - timedelta(days=2, minutes=1),
                request_id="r-other",
                model_id="acme/other@1.0.0",
            ),
        ]
    )
    return traffic


def request_ids(response: Any) -> list[str]:
    return [row["request_id"] for row in results(response)]


# --- Records -----------------------------------------------------------------------------------------------------


def test_records_of_the_callers_tenant_newest_first(recorded: Traffic) -> None:
    response = session(recorded.consumer.owner).get(f"{API}/usage/")

    rows = results(response)
    assert [r["request_id"] for r in rows] == ["r-ok-1", "r-ok-2", "r-429", "r-502", "r-other"]
    first = rows[0]
    assert first["api_key"] == str(recorded.key.pk) and first["model_id"] == "acme/echo"
    assert first["total_tokens"] == 15 and first["cost"] == "0.001" and first["status_code"] == 200
    assert "consumer" not in first and "price_snapshot" not in first


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "429"}, ["r-429"]),
        ({"status": "5xx"}, ["r-502"]),
        ({"status": "error"}, ["r-429", "r-502"]),
        ({"status": "success"}, ["r-ok-1", "r-ok-2", "r-other"]),
        ({"model": "acme/other"}, ["r-other"]),
        ({"model": "acme/other@1.0.0"}, ["r-other"]),
        ({"model": "acme/echo"}, ["r-ok-1", "r-ok-2", "r-429", "r-502"]),
        ({"endpoint": "embeddings"}, ["r-ok-2"]),
    ],
)
def test_record_filters(recorded: Traffic, params: dict[str, str], expected: list[str]) -> None:
    assert request_ids(session(recorded.consumer.owner).get(f"{API}/usage/", params)) == expected


def test_record_filters_by_key_version_service_and_time(recorded: Traffic) -> None:
    client = session(recorded.consumer.owner)
    other_key, _ = create_api_key(tenant=recorded.consumer, actor=None, name="other", scopes=["consume"])
    write([entry(recorded, key=other_key, request_id="r-other-key")])
    now = timezone.now()

    assert request_ids(client.get(f"{API}/usage/", {"key": str(other_key.pk)})) == ["r-other-key"]
    assert request_ids(client.get(f"{API}/usage/", {"version": str(recorded.other_version.pk)})) == ["r-other"]
    assert request_ids(client.get(f"{API}/usage/", {"service": str(recorded.other_version.service_id)})) == ["r-other"]
    since = (now - timedelta(hours=1)).astimezone(UTC).isoformat()
    until = (now - timedelta(hours=36)).astimezone(UTC).isoformat()
    assert request_ids(client.get(f"{API}/usage/", {"since": since})) == ["r-other-key", "r-ok-1", "r-ok-2"]
    assert request_ids(client.get(f"{API}/usage/", {"until": until})) == ["r-502", "r-other"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"key": "not-a-uuid"}, "key"),
        ({"status": "teapot"}, "status"),
        ({"status": "700"}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"as": "god"}, "as"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        # valid ISO 8601 times before year 1 in UTC
        ({"until": "0001-01-01T00:16:58+22:31"}, "until"),
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),
    ],
)
def test_bad_record_parameters_are_400s_naming_them(recorded: Traffic, params: dict[str, str], field: str) -> None:
    response = session(recorded.consumer.owner).get(f"{API}/usage/", params)

    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["details"]["fields"]


def test_record_times_of_any_offset_are_compared_in_utc(recorded: Traffic) -> None:
    # given: an offset Python accepts but PostgreSQL refuses (±15:59 at most): the contract fuzzer's 500
    between = timezone.now() - timedelta(days=2, seconds=30)  # after r-other, before r-502
    far_east = between.astimezone(dt_timezone(timedelta(hours=22, minutes=31))).isoformat()

    # when
    response = session(recorded.consumer.owner).get(f"{API}/usage/", {"until": far_east})

    # then
    assert request_ids(response) == ["r-other"]


def test_cursor_pagination_walks_every_record_once(traffic: Traffic) -> None:
    base = timezone.now()
    # 120 records, several sharing the same start time (ties are ordered by id)
    write([entry(traffic, started_at=base - timedelta(seconds=n // 3), request_id=f"p-{n:03d}") for n in range(120)])
    client = session(traffic.consumer.owner)

    seen: list[str] = []
    pages = []
    url: str | None = f"{API}/usage/?limit=50"
    while url:
        body = client.get(url).json()
        pages.append(len(body["results"]))
        seen += [row["request_id"] for row in body["results"]]
        url = body["next"]
        if url and len(pages) == 1:
            # a request recorded meanwhile does not shift the next page
            write([entry(traffic, started_at=timezone.now(), request_id="late")])
    assert pages == [50, 50, 20]
    assert len(seen) == len(set(seen)) == 120 and "late" not in seen
    assert "cursor" in parse_qs(urlparse(body["previous"]).query)


def test_the_provider_sees_usage_of_its_services_not_the_consumers_keys(recorded: Traffic) -> None:
    client = session(recorded.provider.owner)

    rows = results(client.get(f"{API}/usage/", {"as": "provider"}))
    own = results(client.get(f"{API}/usage/"))

    assert len(rows) == 5 and own == []
    assert {row["consumer"] for row in rows} == {"globex"}
    assert all("api_key" not in row for row in rows)
    assert request_ids(client.get(f"{API}/usage/", {"as": "provider", "consumer": "globex", "status": "5xx"})) == [
        "r-502"
    ]
    # and the consumer cannot use the provider view to see anything of the provider's
    assert results(session(recorded.consumer.owner).get(f"{API}/usage/", {"as": "provider"})) == []


def test_a_read_key_reads_its_tenants_records(recorded: Traffic) -> None:
    _, secret = create_api_key(tenant=recorded.consumer, actor=None, name="reader", scopes=["read"])

    assert len(results(bearer(secret).get(f"{API}/usage/"))) == 5


# --- Summary ---------------------------------------------------------------------------------------------------


def test_summary_endpoint(recorded: Traffic) -> None:
    response = session(recorded.consumer.owner).get(f"{API}/usage/summary/", {"days": 3})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["as"] == "consumer" and body["days"] == 3 and len(body["per_day"]) == 3
    totals = body["totals"]
    assert totals["requests"] == 5 and totals["errors"] == 2 and totals["error_rate"] == 0.4
    assert totals["total_tokens"] == 75 and totals["cost"] == "0.003"
    assert totals["avg_latency_ms"] == 120.0 and totals["p95_latency_ms"] == 250.0
    assert {row["service"]: row["requests"] for row in body["per_service"]} == {"acme/echo": 4, "acme/other": 1}
    assert "revenue" not in totals
    assert session(recorded.consumer.owner).get(f"{API}/usage/summary/", {"days": 1}).json()["totals"]["requests"] == 2


def test_provider_summary_has_revenue(recorded: Traffic) -> None:
    body = session(recorded.provider.owner).get(f"{API}/usage/summary/", {"as": "provider"}).json()

    assert body["as"] == "provider" and body["totals"]["requests"] == 5
    assert body["totals"]["revenue"] == "0.003" and body["per_service"][0]["provider_share_percent"] == "100"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"days": "0"}, "days"),
        ({"days": "367"}, "days"),
        ({"days": "week"}, "days"),
        ({"key": "x"}, "key"),
        ({"as": "x"}, "as"),
    ],
)
def test_bad_summary_parameters_are_400s(recorded: Traffic, params: dict[str, str], field: str) -> None:
    response = session(recorded.consumer.owner).get(f"{API}/usage/summary/", params)

    assert response.status_code == 400
    assert field in response.json()["error"]["details"]["fields"]


# --- Quota -----------------------------------------------------------------------------------------------------


def test_quota_for_a_session_lists_the_tenants_quotas(recorded: Traffic) -> None:
    body = session(recorded.consumer.owner).get(f"{API}/quota/").json()

    assert body["tenant"] == "globex" and body["key"] is None
    assert {row["quota_type"] for row in body["quotas"]} >= {"api_requests", "tokens", "spend_usd", "api_keys"}


def test_quota_for_a_key_shows_its_budgets_and_spend(traffic: Traffic) -> None:
    key, secret = create_api_key(
        tenant=traffic.consumer,
        actor=None,
        name="budgeted",
        scopes=["consume", "read"],
        budget_day_usd=Decimal("2"),
        rpm_limit=60,
    )
    now = timezone.now()
    write([entry(traffic, key=key, cost=Decimal("0.5"), started_at=now)])
    if now.day > 1:
        write([entry(traffic, key=key, cost=Decimal("0.25"), started_at=now - timedelta(days=1))])

    body = bearer(secret).get(f"{API}/quota/").json()

    assert body["key"]["id"] == str(key.pk) and body["key"]["rpm_limit"] == 60
    assert body["key"]["display"] == key.display
    day = body["key"]["budget_day"]
    assert (day["limit"], day["spent"], day["remaining"]) == ("2", "0.5", "1.5")
    month = body["key"]["budget_month"]
    assert month["limit"] is None and month["remaining"] is None
    assert month["spent"] == ("0.75" if now.day > 1 else "0.5")


# --- Isolation -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
def test_another_tenant_sees_nothing_of_the_consumer(recorded: Traffic, outsider: dict[str, Any], path: str) -> None:
    for client in (session(outsider["owner"]), bearer(outsider["secret"])):
        response = client.get(path)
        assert response.status_code == 200, response.content
        text = response.content.decode()
        assert "globex" not in text and "r-ok-1" not in text and str(recorded.key.pk) not in text
        for perspective in ("consumer", "provider"):
            assert "r-ok-1" not in client.get(path, {"as": perspective}).content.decode()
        assert client.get(path, HTTP_X_TENANT="globex").status_code == 403
    assert APIClient().get(path).status_code == 401


def test_filtering_by_another_tenants_key_finds_nothing(recorded: Traffic, outsider: dict[str, Any]) -> None:
    client = session(outsider["owner"])

    assert results(client.get(f"{API}/usage/", {"key": str(recorded.key.pk)})) == []
    summary = client.get(f"{API}/usage/summary/", {"key": str(recorded.key.pk)}).json()
    assert summary["totals"]["requests"] == 0
