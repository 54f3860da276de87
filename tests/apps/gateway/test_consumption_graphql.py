"""Consumption through /graphql: API keys (metadata only; secrets in the create/rotate payloads only), usage records,
summaries, quota and SLA status — scoped and permitted as the REST API, isolated between tenants, free of N+1."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from graphql_relay import to_global_id

from apps.consumption import sla
from apps.consumption.models import ApiKey
from apps.consumption.services import create_api_key
from apps.publishing import services as publishing
from apps.tenancy.models import Role, Tier
from tests.apps.consumption.conftest import ECHO_DEFINITION
from tests.apps.consumption.test_usage import Traffic, entry, make_traffic, write
from tests.apps.gateway.support import data, gql, logged_in, with_key
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

API_KEYS = """
query($status: String) {
  apiKeys(first: 20, status: $status) {
    totalCount
    edges { node {
      id name display prefix last4 status scopes allowedModels rpmLimit budgetDayUsd expiresAt revokedAt createdBy
      rotatedFrom { id } rotatedTo { id }
    } }
  }
}
"""
API_KEY = "query($id: ID!) { apiKey(id: $id) { id name status } }"
NODE = """
query($id: ID!) {
  node(id: $id) { id ... on ApiKeyNode { name } ... on UsageRecordNode { requestId apiKeyId } }
}
"""
USAGE_RECORDS = """
query($first: Int, $as: String, $status: String, $model: String, $key: ID, $since: DateTime, $consumer: String) {
  usageRecords(first: $first, as: $as, status: $status, model: $model, key: $key, since: $since, consumer: $consumer) {
    totalCount
    pageInfo { hasNextPage }
    edges { node {
      id requestId consumer apiKeyId modelId endpoint totalTokens cost statusCode serviceVersionId
      apiKey { id name createdBy rotatedFrom { id } rotatedTo { id } }
    } }
  }
}
"""
USAGE_SUMMARY = """
query($as: String, $days: Int, $model: String, $key: ID) {
  usageSummary(as: $as, days: $days, model: $model, key: $key) {
    tenant as days firstDay lastDay
    totals {
      requests errors errorRate promptTokens completionTokens totalTokens cost avgLatencyMs p95LatencyMs revenue
    }
    perDay { day requests cost }
    perService { service requests cost revenue providerSharePercent }
  }
}
"""
QUOTA = """
query {
  quota {
    tenant timezone
    quotas { quotaType period limit used remaining }
    key { id display rpmLimit budgetDay { limit spent remaining periodStart } budgetMonth { limit spent } }
  }
}
"""
SLA_STATUS = """
query($as: String, $model: String) {
  slaStatus(as: $as, model: $model) {
    serviceVersionId modelId version state requests serverErrors errorRate availability p95Ms maxLatencyMs windowStart
  }
}
"""
RECORDS_WITH_KEYS = """
query($first: Int) {
  usageRecords(first: $first) {
    totalCount
    edges { node { requestId consumer apiKey { id name createdBy rotatedFrom { id } rotatedTo { id } } } }
  }
}
"""
KEY_CREATE = """
mutation($name: String!, $scopes: [String!], $budget: Decimal, $rpm: Int, $models: [String!]) {
  apiKeyCreate(name: $name, scopes: $scopes, budgetDayUsd: $budget, rpmLimit: $rpm, allowedModels: $models) {
    apiKey { id name status scopes allowedModels rpmLimit budgetDayUsd display createdBy }
    secret
    errors { field message code }
  }
}
"""
KEY_ROTATE = """
mutation($id: ID!, $grace: Float) {
  apiKeyRotate(id: $id, graceHours: $grace) {
    apiKey { id name status scopes rotatedFrom { id } }
    secret
    previousKey { id status expiresAt rotatedTo { id } }
    errors { field message code }
  }
}
"""
KEY_REVOKE = """
mutation($id: ID!) { apiKeyRevoke(id: $id) { apiKey { id status revokedAt } errors { field message code } } }
"""
QUERIES = [
    (API_KEYS, {}),
    (USAGE_RECORDS, {}),
    (USAGE_RECORDS, {"as": "provider"}),
    (USAGE_SUMMARY, {}),
    (QUOTA, {}),
    (SLA_STATUS, {}),
]


def key_id(key: ApiKey) -> str:
    return to_global_id("ApiKeyNode", str(key.pk))


def record_id(request_id: str) -> str:
    return to_global_id("UsageRecordNode", request_id)


def body(response: Any) -> dict[str, Any]:
    return response.json()


def error_codes(response: Any) -> list[str]:
    return [error["extensions"]["code"] for error in response.json()["errors"]]


@pytest.fixture
def world() -> dict[str, Any]:
    """`acme` publishes `acme/echo` and `acme/other`; `globex` (A) consumes them through its `traffic` key; `initech`
    (B) is another consumer tenant. Each tenant has an owner; globex also a viewer; keys per scope."""
    acme_owner, alice, viewer, bob = (UserFactory(username=n) for n in ("acme-owner", "alice", "viewer", "bob"))
    acme = TenantFactory(slug="acme", trusted_publisher=True, tier=Tier.PROFESSIONAL)
    globex = TenantFactory(slug="globex", tier=Tier.PROFESSIONAL)
    initech = TenantFactory(slug="initech", tier=Tier.PROFESSIONAL)
    MembershipFactory(tenant=acme, user=acme_owner, role=Role.OWNER)
    MembershipFactory(tenant=globex, user=alice, role=Role.OWNER)
    MembershipFactory(tenant=globex, user=viewer, role=Role.VIEWER)
    MembershipFactory(tenant=initech, user=bob, role=Role.OWNER)
    acme.owner, globex.owner = acme_owner, alice
    echo, _, _ = publishing.publish_service(
        publisher=acme, actor=acme_owner, slug="echo", version="1.0.0", values=dict(ECHO_DEFINITION)
    )
    traffic = make_traffic(acme, echo, globex)
    admin_key, admin_secret = create_api_key(tenant=globex, actor=alice, name="admin", scopes=["admin"])
    _, read_secret = create_api_key(tenant=globex, actor=alice, name="reader", scopes=["read"])
    _, publish_secret = create_api_key(tenant=globex, actor=alice, name="publisher", scopes=["publish"])
    bob_key, bob_secret = create_api_key(tenant=initech, actor=bob, name="bob-admin", scopes=["admin"])
    return {
        "acme": acme,
        "globex": globex,
        "initech": initech,
        "alice": alice,
        "viewer": viewer,
        "bob": bob,
        "acme_owner": acme_owner,
        "traffic": traffic,
        "admin_key": admin_key,
        "admin_secret": admin_secret,
        "read_secret": read_secret,
        "publish_secret": publish_secret,
        "bob_key": bob_key,
        "bob_secret": bob_secret,
        "secrets": [admin_secret, read_secret, publish_secret, bob_secret],
    }


@pytest.fixture
def recorded(world: dict[str, Any]) -> Traffic:
    """Globex's requests: two answered, a 429 and a 502 to acme/echo, one to acme/other; initech's one request."""
    traffic: Traffic = world["traffic"]
    now = timezone.now()
    write(
        [
            entry(traffic, started_at=now - timedelta(minutes=1), request_id="r-ok-1"),
            entry(traffic, started_at=now - timedelta(minutes=2), request_id="r-ok-2", endpoint="embeddings"),
            entry(traffic, started_at=now - timedelta(minutes=3), request_id="r-429", status=429, cost=Decimal(0)),
            entry(traffic, started_at=now - timedelta(minutes=4), request_id="r-502", status=502, cost=Decimal(0)),
            entry(traffic, started_at=now - timedelta(minutes=5), request_id="r-other", model_id="acme/other@1.0.0"),
        ]
    )
    initech = Traffic(
        consumer=world["initech"],
        provider=world["acme"],
        version=traffic.version,
        key=world["bob_key"],
        other_version=traffic.other_version,
    )
    write([entry(initech, started_at=now - timedelta(minutes=1), request_id="r-initech")])
    return traffic


def records_of(response: Any) -> list[dict[str, Any]]:
    return [edge["node"] for edge in data(response)["usageRecords"]["edges"]]


# --- API keys --------------------------------------------------------------------------------------------------


def test_api_keys_list_the_tenants_key_metadata(world: dict[str, Any]) -> None:
    # given an admin of globex
    client = logged_in(world["alice"])

    # when
    keys = data(gql(client, API_KEYS))["apiKeys"]

    # then: globex's four keys, newest first, as prefix … last 4
    assert keys["totalCount"] == 4
    assert [edge["node"]["name"] for edge in keys["edges"]] == ["publisher", "reader", "admin", "traffic"]
    admin = next(edge["node"] for edge in keys["edges"] if edge["node"]["name"] == "admin")
    stored = world["admin_key"]
    assert admin["id"] == key_id(stored)
    assert admin["display"] == f"{stored.prefix}…{stored.last4}" and admin["status"] == "active"
    assert admin["scopes"] == ["admin"] and admin["createdBy"] == "alice" and admin["rotatedTo"] is None


def test_api_keys_filter_by_status_as_rest(world: dict[str, Any]) -> None:
    client = logged_in(world["alice"])
    revoked = data(gql(client, KEY_REVOKE, {"id": key_id(world["admin_key"])}))["apiKeyRevoke"]
    assert revoked["errors"] == [] and revoked["apiKey"]["status"] == "revoked"

    only_revoked = data(gql(client, API_KEYS, {"status": "revoked"}))["apiKeys"]
    active = data(gql(client, API_KEYS, {"status": "active"}))["apiKeys"]
    bad = gql(client, API_KEYS, {"status": "sleeping"})

    assert [e["node"]["name"] for e in only_revoked["edges"]] == ["admin"]
    assert active["totalCount"] == 3
    assert error_codes(bad) == ["validation_error"]


def test_api_key_by_id_and_by_node_id(world: dict[str, Any]) -> None:
    client = with_key(world["admin_secret"])
    wanted = key_id(world["admin_key"])

    by_field = data(gql(client, API_KEY, {"id": wanted}))["apiKey"]
    by_uuid = data(gql(client, API_KEY, {"id": str(world["admin_key"].pk)}))["apiKey"]
    by_node = data(gql(client, NODE, {"id": wanted}))["node"]

    assert by_field == by_uuid == {"id": wanted, "name": "admin", "status": "active"}
    assert by_node == {"id": wanted, "name": "admin"}


# --- Usage -----------------------------------------------------------------------------------------------------


def test_usage_records_of_the_callers_tenant_newest_first(recorded: Traffic, world: dict[str, Any]) -> None:
    response = gql(with_key(world["read_secret"]), USAGE_RECORDS)

    records = records_of(response)
    assert [r["requestId"] for r in records] == ["r-ok-1", "r-ok-2", "r-429", "r-502", "r-other"]
    first = records[0]
    assert first["id"] == record_id("r-ok-1") and first["consumer"] == "globex"
    assert first["apiKeyId"] == str(recorded.key.pk) and first["modelId"] == "acme/echo"
    assert first["totalTokens"] == 15 and Decimal(first["cost"]) == Decimal("0.001") and first["statusCode"] == 200
    assert first["apiKey"] is None  # key metadata is for admins only (a read key is not one)
    assert data(response)["usageRecords"]["totalCount"] == 5


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"status": "429"}, ["r-429"]),
        ({"status": "5xx"}, ["r-502"]),
        ({"status": "error"}, ["r-429", "r-502"]),
        ({"model": "acme/other"}, ["r-other"]),
        ({"model": "acme/echo"}, ["r-ok-1", "r-ok-2", "r-429", "r-502"]),
        ({"first": 2}, ["r-ok-1", "r-ok-2"]),
    ],
)
def test_usage_record_filters_as_rest(
    recorded: Traffic, world: dict[str, Any], variables: dict[str, Any], expected: list[str]
) -> None:
    records = records_of(gql(logged_in(world["viewer"]), USAGE_RECORDS, variables))
    assert [r["requestId"] for r in records] == expected


def test_usage_record_filters_by_key_and_time(recorded: Traffic, world: dict[str, Any]) -> None:
    client = logged_in(world["alice"])
    since = (timezone.now() - timedelta(minutes=2, seconds=30)).isoformat()

    by_key = records_of(gql(client, USAGE_RECORDS, {"key": key_id(recorded.key)}))
    by_other_key = records_of(gql(client, USAGE_RECORDS, {"key": key_id(world["admin_key"])}))
    recent = records_of(gql(client, USAGE_RECORDS, {"since": since}))
    bad = gql(client, USAGE_RECORDS, {"status": "teapot"})

    assert len(by_key) == 5 and by_other_key == []
    assert [r["requestId"] for r in recent] == ["r-ok-1", "r-ok-2"]
    assert error_codes(bad) == ["validation_error"]


def test_providers_see_the_consumer_not_its_key(recorded: Traffic, world: dict[str, Any]) -> None:
    client = logged_in(world["acme_owner"])

    as_provider = records_of(gql(client, USAGE_RECORDS, {"as": "provider", "consumer": "globex"}))
    as_consumer = records_of(gql(client, USAGE_RECORDS))
    bad = gql(client, USAGE_RECORDS, {"as": "landlord"})

    assert [r["requestId"] for r in as_provider] == ["r-ok-1", "r-ok-2", "r-429", "r-502", "r-other"]
    assert {(r["consumer"], r["apiKeyId"], r["apiKey"] is None) for r in as_provider} == {("globex", None, True)}
    assert as_consumer == []
    assert error_codes(bad) == ["validation_error"]


def test_usage_summary_is_the_rest_summary(recorded: Traffic, world: dict[str, Any]) -> None:
    client = logged_in(world["alice"])

    summary = data(gql(client, USAGE_SUMMARY, {"days": 3}))["usageSummary"]
    rest = client.get("/api/v1/usage/summary/", {"days": 3}).json()
    by_model = data(gql(client, USAGE_SUMMARY, {"days": 3, "model": "acme/other"}))["usageSummary"]
    by_key = data(gql(client, USAGE_SUMMARY, {"key": key_id(world["admin_key"])}))["usageSummary"]

    assert (summary["tenant"], summary["as"], summary["days"]) == ("globex", "consumer", 3)
    assert (summary["firstDay"], summary["lastDay"]) == (rest["first_day"], rest["last_day"])
    totals = summary["totals"]
    assert totals["requests"] == rest["totals"]["requests"] == 5
    assert totals["errors"] == rest["totals"]["errors"] == 2
    assert Decimal(totals["cost"]) == Decimal(rest["totals"]["cost"]) == Decimal("0.003")
    assert totals["p95LatencyMs"] == rest["totals"]["p95_latency_ms"] and totals["revenue"] is None
    assert [d["requests"] for d in summary["perDay"]] == [d["requests"] for d in rest["per_day"]]
    assert [s["service"] for s in summary["perService"]] == [s["service"] for s in rest["per_service"]]
    assert by_model["totals"]["requests"] == 1 and by_key["totals"]["requests"] == 0


def test_usage_summary_for_providers_has_revenue(recorded: Traffic, world: dict[str, Any]) -> None:
    summary = data(gql(logged_in(world["acme_owner"]), USAGE_SUMMARY, {"as": "provider"}))["usageSummary"]

    assert summary["as"] == "provider" and summary["totals"]["requests"] == 6  # globex's five and initech's one
    assert Decimal(summary["totals"]["revenue"]) == Decimal(summary["totals"]["cost"])
    assert {Decimal(s["providerSharePercent"]) for s in summary["perService"]} == {Decimal(100)}


def test_usage_summary_validates_its_arguments_as_rest(world: dict[str, Any]) -> None:
    client = logged_in(world["alice"])

    for variables in ({"days": 0}, {"days": 367}, {"key": "not-a-key"}):
        response = gql(client, USAGE_SUMMARY, variables)
        assert body(response)["data"]["usageSummary"] is None
        assert error_codes(response) == ["validation_error"], variables


# --- Quota and SLA ---------------------------------------------------------------------------------------------


def test_quota_with_a_key_reports_the_keys_budgets(recorded: Traffic, world: dict[str, Any]) -> None:
    _, secret = create_api_key(
        tenant=world["globex"], actor=world["alice"], name="budgeted", scopes=["read"], budget_day_usd="5", rpm_limit=60
    )

    quota = data(gql(with_key(secret), QUOTA))["quota"]
    rest = Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/v1/quota/").json()

    assert (quota["tenant"], quota["timezone"]) == ("globex", rest["timezone"])
    assert [q["quotaType"] for q in quota["quotas"]] == [q["quota_type"] for q in rest["quotas"]]
    assert quota["key"]["display"] == rest["key"]["display"] and quota["key"]["rpmLimit"] == 60
    assert Decimal(quota["key"]["budgetDay"]["limit"]) == Decimal(5)
    assert Decimal(quota["key"]["budgetDay"]["spent"]) == Decimal(0)
    assert quota["key"]["budgetMonth"]["limit"] is None


def test_quota_for_a_session_has_no_key(world: dict[str, Any]) -> None:
    quota = data(gql(logged_in(world["viewer"]), QUOTA))["quota"]

    assert quota["tenant"] == "globex" and quota["key"] is None
    assert "api_keys" in {q["quotaType"] for q in quota["quotas"]}


def test_sla_status_of_consumed_and_published_services(recorded: Traffic, world: dict[str, Any]) -> None:
    # given the periodic check has seen the last hour's traffic
    sla.check_sla()

    # when
    consumed = data(gql(logged_in(world["alice"]), SLA_STATUS))["slaStatus"]
    filtered = data(gql(logged_in(world["alice"]), SLA_STATUS, {"model": "acme/other"}))["slaStatus"]
    published = data(gql(logged_in(world["acme_owner"]), SLA_STATUS, {"as": "provider"}))["slaStatus"]
    acme_consumes = data(gql(logged_in(world["acme_owner"]), SLA_STATUS))["slaStatus"]

    # then
    assert [(s["modelId"], s["version"]) for s in consumed] == [("acme/echo", "1.0.0"), ("acme/other", "1.0.0")]
    echo = consumed[0]
    assert (
        echo["requests"] == 5 and echo["serverErrors"] == 1
    )  # globex's four and initech's one; the 429 is no SLA error
    assert echo["state"] == "critical" and echo["availability"] == pytest.approx(80.0)
    assert echo["serviceVersionId"] == str(recorded.version.pk) and echo["windowStart"]
    assert [s["modelId"] for s in filtered] == ["acme/other"]
    assert [s["modelId"] for s in published] == ["acme/echo", "acme/other"]
    assert acme_consumes == []


def test_sla_status_without_a_check_is_no_data(recorded: Traffic, world: dict[str, Any]) -> None:
    statuses = data(gql(with_key(world["read_secret"]), SLA_STATUS))["slaStatus"]
    assert {(s["state"], s["requests"]) for s in statuses} == {("no_data", 0)}


# --- Mutations ---------------------------------------------------------------------------------------------------


def test_create_rotate_revoke_a_key(world: dict[str, Any]) -> None:
    client = logged_in(world["alice"])

    # create: the secret in the payload, once
    created = data(gql(client, KEY_CREATE, {"name": "ci", "scopes": ["read", "consume"], "budget": "12.5", "rpm": 30}))[
        "apiKeyCreate"
    ]
    assert created["errors"] == []
    key = created["apiKey"]
    assert key["scopes"] == ["consume", "read"] and key["rpmLimit"] == 30 and key["createdBy"] == "alice"
    assert Decimal(key["budgetDayUsd"]) == Decimal("12.5") and key["status"] == "active"
    secret = created["secret"]
    assert secret.startswith("mk_") and key["display"] == f"{secret[:7]}…{secret[-4:]}"
    stored = ApiKey.objects.get(name="ci")
    assert key["id"] == key_id(stored) and secret not in (stored.key_hash, stored.prefix)
    assert data(gql(with_key(secret), QUOTA))["quota"]["tenant"] == "globex"

    # rotate: a successor with a new secret; the old key ends its grace period
    rotated = data(gql(client, KEY_ROTATE, {"id": key["id"], "grace": 1}))["apiKeyRotate"]
    assert rotated["errors"] == [] and rotated["secret"].startswith("mk_") and rotated["secret"] != secret
    assert rotated["apiKey"]["rotatedFrom"] == {"id": key["id"]} and rotated["apiKey"]["name"] == "ci"
    assert rotated["previousKey"]["id"] == key["id"] and rotated["previousKey"]["expiresAt"]
    assert rotated["previousKey"]["rotatedTo"] == {"id": rotated["apiKey"]["id"]}
    assert data(gql(with_key(rotated["secret"]), QUOTA))["quota"]["tenant"] == "globex"

    # revoke
    revoked = data(gql(client, KEY_REVOKE, {"id": rotated["apiKey"]["id"]}))["apiKeyRevoke"]
    assert revoked["errors"] == [] and revoked["apiKey"]["status"] == "revoked" and revoked["apiKey"]["revokedAt"]


def test_a_key_revoked_through_graphql_is_refused_on_its_next_request(world: dict[str, Any]) -> None:
    admin = with_key(world["admin_secret"])
    created = data(gql(admin, KEY_CREATE, {"name": "short-lived", "scopes": ["read"]}))["apiKeyCreate"]
    secret = created["secret"]
    assert data(gql(with_key(secret), QUOTA))["quota"]["key"]["display"]  # cached as a good key by now

    revoked = data(gql(admin, KEY_REVOKE, {"id": created["apiKey"]["id"]}))["apiKeyRevoke"]
    refused = gql(with_key(secret), QUOTA)
    rest_refused = Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/v1/usage/")

    assert revoked["errors"] == []
    assert refused.status_code == 401 and error_codes(refused) == ["invalid_api_key"]
    assert rest_refused.status_code == 401


def test_validation_errors_are_payload_errors(world: dict[str, Any]) -> None:
    client = logged_in(world["alice"])

    bad_scope = body(gql(client, KEY_CREATE, {"name": "x", "scopes": ["superuser"]}))
    bad_budget = body(gql(client, KEY_CREATE, {"name": "x", "budget": "-1"}))
    bad_models = body(gql(client, KEY_CREATE, {"name": "x", "models": ["no-slash"]}))  # refused by the service
    bad_grace = body(gql(client, KEY_ROTATE, {"id": key_id(world["admin_key"]), "grace": 100000}))

    for payload in (bad_scope, bad_budget, bad_models, bad_grace):
        assert "errors" not in payload, payload
    assert bad_scope["data"]["apiKeyCreate"]["apiKey"] is None and bad_scope["data"]["apiKeyCreate"]["secret"] is None
    assert [(e["field"], e["code"]) for e in bad_scope["data"]["apiKeyCreate"]["errors"]] == [
        ("scopes[0]", "validation_error")
    ]
    assert [e["field"] for e in bad_budget["data"]["apiKeyCreate"]["errors"]] == ["budget_day_usd"]
    assert [e["field"] for e in bad_models["data"]["apiKeyCreate"]["errors"]] == ["allowed_models"]
    assert [e["field"] for e in bad_grace["data"]["apiKeyRotate"]["errors"]] == ["grace_hours"]
    assert ApiKey.objects.filter(name="x").count() == 0
    assert ApiKey.objects.get(pk=world["admin_key"].pk).expires_at is None


def test_domain_errors_are_payload_errors(world: dict[str, Any]) -> None:
    client = logged_in(world["alice"])
    target = key_id(world["admin_key"])
    assert data(gql(client, KEY_REVOKE, {"id": target}))["apiKeyRevoke"]["errors"] == []

    again = body(gql(client, KEY_REVOKE, {"id": target}))
    rotate_revoked = body(gql(client, KEY_ROTATE, {"id": target}))
    unknown = body(gql(client, KEY_REVOKE, {"id": to_global_id("ApiKeyNode", "00000000-0000-0000-0000-000000000000")}))

    assert "errors" not in again and "errors" not in rotate_revoked and "errors" not in unknown
    assert [e["code"] for e in again["data"]["apiKeyRevoke"]["errors"]] == ["conflict"]
    assert [e["code"] for e in rotate_revoked["data"]["apiKeyRotate"]["errors"]] == ["conflict"]
    assert rotate_revoked["data"]["apiKeyRotate"]["secret"] is None
    assert [e["code"] for e in unknown["data"]["apiKeyRevoke"]["errors"]] == ["not_found"]


# --- Permissions and isolation --------------------------------------------------------------------------------------


def test_a_read_key_cannot_manage_keys(world: dict[str, Any]) -> None:
    reader = with_key(world["read_secret"])

    listing = gql(reader, API_KEYS)
    single = gql(reader, API_KEY, {"id": key_id(world["admin_key"])})
    node = data(gql(reader, NODE, {"id": key_id(world["admin_key"])}))["node"]
    create = gql(reader, KEY_CREATE, {"name": "escalate", "scopes": ["admin"]})
    revoke = gql(reader, KEY_REVOKE, {"id": key_id(world["admin_key"])})

    assert body(listing)["data"]["apiKeys"] is None and error_codes(listing) == ["insufficient_scope"]
    assert body(single)["data"]["apiKey"] is None and error_codes(single) == ["insufficient_scope"]
    assert node is None
    assert error_codes(create) == ["insufficient_scope"] and error_codes(revoke) == ["insufficient_scope"]
    assert not ApiKey.objects.filter(name="escalate").exists()
    assert ApiKey.objects.get(pk=world["admin_key"].pk).revoked_at is None


def test_a_publish_key_and_a_viewer_cannot_manage_keys(world: dict[str, Any]) -> None:
    by_publish_key = body(gql(with_key(world["publish_secret"]), KEY_CREATE, {"name": "escalate"}))
    by_viewer = body(gql(logged_in(world["viewer"]), KEY_REVOKE, {"id": key_id(world["admin_key"])}))
    viewer_list = gql(logged_in(world["viewer"]), API_KEYS)

    assert [e["code"] for e in by_publish_key["data"]["apiKeyCreate"]["errors"]] == ["insufficient_scope"]
    assert [e["code"] for e in by_viewer["data"]["apiKeyRevoke"]["errors"]] == ["authorization_error"]
    assert error_codes(viewer_list) == ["authorization_error"]
    assert not ApiKey.objects.filter(name="escalate").exists()
    assert ApiKey.objects.get(pk=world["admin_key"].pk).revoked_at is None


@pytest.mark.parametrize("caller", ["bob_session", "bob_key"])
def test_another_tenant_reads_nothing_of_globex(recorded: Traffic, world: dict[str, Any], caller: str) -> None:
    client = logged_in(world["bob"]) if caller == "bob_session" else with_key(world["bob_secret"])
    globex_key, globex_record = key_id(world["admin_key"]), record_id("r-ok-1")

    keys = data(gql(client, API_KEYS))["apiKeys"]
    records = records_of(gql(client, USAGE_RECORDS))
    by_globex_key = records_of(gql(client, USAGE_RECORDS, {"key": key_id(recorded.key)}))
    summary = data(gql(client, USAGE_SUMMARY, {"key": key_id(recorded.key)}))["usageSummary"]

    assert [e["node"]["name"] for e in keys["edges"]] == ["bob-admin"]
    assert [r["requestId"] for r in records] == ["r-initech"]
    assert by_globex_key == [] and summary["totals"]["requests"] == 0
    assert data(gql(client, API_KEY, {"id": globex_key}))["apiKey"] is None
    assert data(gql(client, NODE, {"id": globex_key}))["node"] is None
    assert data(gql(client, NODE, {"id": globex_record}))["node"] is None
    assert data(gql(client, NODE, {"id": record_id("r-initech")}))["node"]["requestId"] == "r-initech"


def test_a_provider_reads_no_consumer_key_through_nested_fields(recorded: Traffic, world: dict[str, Any]) -> None:
    client = logged_in(world["acme_owner"])

    node = data(gql(client, NODE, {"id": record_id("r-ok-1")}))["node"]
    keys = data(gql(client, API_KEYS))["apiKeys"]
    key_node = data(gql(client, NODE, {"id": key_id(recorded.key)}))["node"]

    assert node == {"id": record_id("r-ok-1"), "requestId": "r-ok-1", "apiKeyId": None}
    assert keys["totalCount"] == 0 and key_node is None


@pytest.mark.parametrize("caller", ["bob_session", "bob_key"])
def test_another_tenant_cannot_rotate_or_revoke_globex_keys(world: dict[str, Any], caller: str) -> None:
    client = logged_in(world["bob"]) if caller == "bob_session" else with_key(world["bob_secret"])
    target = key_id(world["admin_key"])

    rotate = body(gql(client, KEY_ROTATE, {"id": target}))
    revoke = body(gql(client, KEY_REVOKE, {"id": str(world["admin_key"].pk)}))

    assert [e["code"] for e in rotate["data"]["apiKeyRotate"]["errors"]] == ["not_found"]
    assert rotate["data"]["apiKeyRotate"]["secret"] is None
    assert [e["code"] for e in revoke["data"]["apiKeyRevoke"]["errors"]] == ["not_found"]
    stored = ApiKey.objects.get(pk=world["admin_key"].pk)
    assert stored.revoked_at is None and stored.expires_at is None and not hasattr(stored, "rotated_to")


def test_the_x_tenant_header_chooses_among_the_callers_tenants(recorded: Traffic, world: dict[str, Any]) -> None:
    MembershipFactory(tenant=world["initech"], user=world["alice"], role=Role.VIEWER)
    client = logged_in(world["alice"])

    ambiguous = gql(client, USAGE_RECORDS)
    as_initech = records_of(gql(client, USAGE_RECORDS, HTTP_X_TENANT="initech"))
    keys_as_initech = gql(client, API_KEYS, HTTP_X_TENANT="initech")
    keys_as_globex = data(gql(client, API_KEYS, HTTP_X_TENANT="globex"))["apiKeys"]
    foreign = gql(client, USAGE_RECORDS, HTTP_X_TENANT="acme")

    assert error_codes(ambiguous) == ["validation_error"]
    assert [r["requestId"] for r in as_initech] == ["r-initech"]
    assert error_codes(keys_as_initech) == ["authorization_error"]  # a viewer there
    assert keys_as_globex["totalCount"] == 4
    assert error_codes(foreign) == ["authorization_error"]


def test_secrets_never_appear_in_query_responses(recorded: Traffic, world: dict[str, Any]) -> None:
    client = logged_in(world["alice"])
    created = data(gql(client, KEY_CREATE, {"name": "fresh", "scopes": ["admin"]}))["apiKeyCreate"]
    rotated = data(gql(client, KEY_ROTATE, {"id": created["apiKey"]["id"]}))["apiKeyRotate"]
    secrets = [*world["secrets"], created["secret"], rotated["secret"]]
    hashes = list(ApiKey.objects.values_list("key_hash", flat=True))
    sla.check_sla()

    for caller in (client, with_key(world["admin_secret"]), with_key(rotated["secret"])):
        for query, variables in QUERIES:
            response = gql(caller, query, variables)
            assert "errors" not in response.json(), response.json()
            text = response.content.decode()
            assert not [s for s in [*secrets, *hashes] if s in text], query


def test_unauthenticated_callers_read_nothing(recorded: Traffic) -> None:
    for query, variables in QUERIES:
        response = gql(Client(), query, variables)
        assert error_codes(response) == ["authentication_error"], query


# --- N+1 -------------------------------------------------------------------------------------------------------------


def test_usage_records_with_nested_keys_run_in_constant_queries(recorded: Traffic, world: dict[str, Any]) -> None:
    globex = world["globex"]
    keys = [create_api_key(tenant=globex, actor=world["alice"], name=f"k{i}", scopes=["consume"])[0] for i in range(3)]
    now = timezone.now()
    write(
        [
            entry(recorded, key=keys[i % 3], started_at=now - timedelta(hours=1, seconds=i), request_id=f"bulk-{i}")
            for i in range(60)
        ]
    )
    client = logged_in(world["alice"])
    gql(client, "{ apiVersion }")  # the session is loaded once

    counts = {}
    for first in (5, 50):
        with CaptureQueriesContext(connection) as queries:
            records = records_of(gql(client, RECORDS_WITH_KEYS, {"first": first}))
        assert len(records) == first and all(r["apiKey"]["name"] for r in records)
        counts[first] = len(queries.captured_queries)

    assert counts[5] == counts[50], counts


KEY_CREATE_ROUTED = """
mutation($name: String!, $routing: JSONString) {
  apiKeyCreate(name: $name, routing: $routing) { apiKey { name routing } errors { field message } }
}
"""


def test_a_key_created_through_graphql_carries_routing_preferences_checked_as_a_requests(
    world: dict[str, Any],
) -> None:
    client = with_key(world["admin_secret"])
    refused = data(gql(client, KEY_CREATE_ROUTED, {"name": "routed", "routing": json.dumps({"sort": "fastest"})}))
    assert [error["field"] for error in refused["apiKeyCreate"]["errors"]] == ["routing.sort"]
    assert not ApiKey.objects.filter(name="routed").exists()
    made = data(gql(client, KEY_CREATE_ROUTED, {"name": "routed", "routing": json.dumps({"only": ["acme/echo"]})}))
    assert made["apiKeyCreate"]["errors"] == []
    assert json.loads(made["apiKeyCreate"]["apiKey"]["routing"]) == {"only": ["acme/echo"]}
    assert ApiKey.objects.get(name="routed").routing == {"only": ["acme/echo"]}
