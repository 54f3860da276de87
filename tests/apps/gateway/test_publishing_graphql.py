"""Publishing through /graphql: discovery as a Relay connection scoped as in REST, versions, model ids, status,
and every publishing write (publish, new version, dry run, lifecycle) through the same services as REST."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from apps.consumption.services import create_api_key
from apps.publishing import services as publishing
from apps.publishing.models import ServiceVersion
from apps.tenancy.models import Role
from tests.apps.gateway.support import data, gql, logged_in, with_key
from tests.apps.publishing.test_api import definition
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

SERVICES = """
query($search: String, $first: Int, $after: String, $category: [String!]) {
  services(search: $search, first: $first, after: $after, category: $category) {
    totalCount facets
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id modelId publisher { slug name } latestVersion { status version } } }
  }
}
"""
SERVICE = """
query($id: ID!) {
  service(id: $id) {
    modelId
    versions { totalCount edges { node { version status endpointUrl pricing { model inputPerMtok } } } }
  }
}
"""
NODE = "query($id: ID!) { node(id: $id) { id ... on ServiceVersionNode { modelId status } } }"
MODEL = "query($id: String!) { model(modelId: $id) { modelId version status sla { availability } } }"
STATUS = """
query($id: ID!) {
  serviceStatus(serviceId: $id) { version { status } validationRuns { outcome steps { name outcome } } }
}
"""
PUBLISH = """
mutation($definition: GenericScalar!) {
  servicePublish(definition: $definition) {
    service { id modelId }
    version { id version status pricing { model inputPerMtok outputPerMtok currency } }
    validationRun { outcome resultStatus steps { name outcome } }
    errors { field message code }
  }
}
"""
NEW_VERSION = """
mutation($id: ID!, $definition: GenericScalar!) {
  serviceVersionCreate(serviceId: $id, definition: $definition) {
    version { version status } errors { field message code }
  }
}
"""
VALIDATE = """
mutation($definition: GenericScalar!) {
  serviceValidate(definition: $definition) { valid steps { name outcome messages } errors { field code } }
}
"""
APPROVE = """
mutation($id: ID!) { serviceVersionApprove(serviceId: $id, notes: "fine") { version { status } errors { code } } }
"""
REJECT = """
mutation($id: ID!, $notes: String!) {
  serviceVersionReject(serviceId: $id, notes: $notes) { version { status reviewNotes } errors { field code } }
}
"""
SUSPEND = """
mutation($id: ID!) {
  serviceVersionSuspend(serviceId: $id, reason: "abuse") { version { status suspensionReason } errors { code } }
}
"""
DEPRECATE = "mutation($id: ID!) { serviceVersionDeprecate(serviceId: $id) { version { status } errors { code } } }"
REACTIVATE = "mutation($id: ID!) { serviceVersionReactivate(serviceId: $id) { version { status } errors { code } } }"
RETIRE_VERSION = """
mutation($id: ID!, $version: String) {
  serviceVersionRetire(serviceId: $id, version: $version) { version { version status } errors { code } }
}
"""
RETIRE_SERVICE = "mutation($id: ID!) { serviceRetire(serviceId: $id) { retiredVersions errors { code } } }"
ECHO = {
    "name": "Echo Chat",
    "description": "A deterministic chat model for tests.",
    "category": "chat",
    "protocol": "echo",
    "pricing_model": "per_token",
    "price_input_per_mtok": "1",
    "price_output_per_mtok": "2",
    "data_residency": ["US"],
}


@pytest.fixture
def world():
    owner, untrusted_owner, consumer = UserFactory(username="pub"), UserFactory(username="slow"), UserFactory()
    staff = UserFactory(username="staff", is_staff=True)
    acme = TenantFactory(slug="acme", trusted_publisher=True)
    initech = TenantFactory(slug="initech", trusted_publisher=False)
    globex = TenantFactory(slug="globex")
    MembershipFactory(tenant=acme, user=owner, role=Role.OWNER)
    MembershipFactory(tenant=initech, user=untrusted_owner, role=Role.OWNER)
    MembershipFactory(tenant=globex, user=consumer, role=Role.OWNER)
    echo, _, _ = publishing.publish_service(
        publisher=acme, actor=owner, slug="echo", version="1.0.0", values=dict(ECHO)
    )
    waiting, _, _ = publishing.publish_service(
        publisher=initech, actor=untrusted_owner, slug="waiting", version="1.0.0", values=dict(ECHO, name="Waiting")
    )
    return {
        "owner": owner,
        "consumer": consumer,
        "untrusted_owner": untrusted_owner,
        "staff": staff,
        "acme": acme,
        "globex": globex,
        "echo": echo,
        "waiting": waiting,
    }


def services_of(user, **variables) -> dict:
    return data(gql(logged_in(user), SERVICES, variables))["services"]


def test_consumers_discover_active_services_only(world) -> None:
    page = services_of(world["consumer"])
    assert [edge["node"]["modelId"] for edge in page["edges"]] == ["acme/echo"]
    assert page["edges"][0]["node"]["publisher"]["slug"] == "acme"
    assert page["totalCount"] == 1 and page["facets"]["category"] == {"chat": 1}


def test_publishers_see_their_own_services_in_every_state(world) -> None:
    page = services_of(world["untrusted_owner"])
    assert {(e["node"]["modelId"], e["node"]["latestVersion"]["status"]) for e in page["edges"]} == {
        ("acme/echo", "active"),
        ("initech/waiting", "pending_approval"),
    }


def test_pages_follow_cursors(world) -> None:
    first = services_of(world["untrusted_owner"], first=1)
    assert first["totalCount"] == 2 and first["pageInfo"]["hasNextPage"] is True
    second = services_of(world["untrusted_owner"], first=1, after=first["pageInfo"]["endCursor"])
    assert second["pageInfo"]["hasNextPage"] is False
    seen = {first["edges"][0]["node"]["modelId"], second["edges"][0]["node"]["modelId"]}
    assert seen == {"acme/echo", "initech/waiting"}


def test_bad_discovery_input_is_a_clear_error(world) -> None:
    body = gql(logged_in(world["consumer"]), SERVICES, {"category": ["nope"]}).json()
    assert body["errors"][0]["extensions"]["code"] == "validation_error"
    body = gql(logged_in(world["consumer"]), SERVICES, {"after": "garbage"}).json()
    assert body["errors"][0]["extensions"]["code"] == "validation_error"


def test_consumers_see_servable_versions_without_endpoints(world) -> None:
    client = logged_in(world["owner"])
    data(gql(client, NEW_VERSION, {"id": str(world["echo"].pk), "definition": definition(slug=..., version="1.1.0")}))
    data(gql(client, RETIRE_VERSION, {"id": str(world["echo"].pk), "version": "1.0.0"}))
    mine = data(gql(client, SERVICE, {"id": str(world["echo"].pk)}))["service"]["versions"]
    assert [(e["node"]["version"], e["node"]["status"]) for e in mine["edges"]] == [
        ("1.1.0", "active"),
        ("1.0.0", "retired"),
    ]
    theirs = data(gql(logged_in(world["consumer"]), SERVICE, {"id": str(world["echo"].pk)}))["service"]
    assert theirs["versions"]["totalCount"] == 1
    node = theirs["versions"]["edges"][0]["node"]
    assert node["version"] == "1.1.0" and node["endpointUrl"] is None
    assert node["pricing"] == {"model": "per_token", "inputPerMtok": "0.5"}


def test_invisible_services_and_versions_are_null_by_id_and_by_node_id(world) -> None:
    client = logged_in(world["consumer"])
    assert data(gql(client, SERVICE, {"id": str(world["waiting"].pk)}))["service"] is None
    pending = ServiceVersion.objects.get(service=world["waiting"])
    node_id = data(gql(logged_in(world["untrusted_owner"]), SERVICE, {"id": str(world["waiting"].pk)}))
    assert node_id["service"]["versions"]["totalCount"] == 1
    from graphql_relay import to_global_id

    global_id = to_global_id("ServiceVersionNode", str(pending.pk))
    assert data(gql(client, NODE, {"id": global_id}))["node"] is None
    assert data(gql(logged_in(world["untrusted_owner"]), NODE, {"id": global_id}))["node"]["status"] == (
        "pending_approval"
    )


def test_model_ids_resolve_for_those_who_may_see_them(world) -> None:
    client = logged_in(world["consumer"])
    assert data(gql(client, MODEL, {"id": "acme/echo"}))["model"] == {
        "modelId": "acme/echo",
        "version": "1.0.0",
        "status": "active",
        "sla": {"availability": "99"},
    }
    assert data(gql(client, MODEL, {"id": "initech/waiting"}))["model"] is None
    assert data(gql(client, MODEL, {"id": "not-an-id"}))["model"] is None


def test_publishing_status_is_for_the_publisher(world) -> None:
    status = data(gql(logged_in(world["owner"]), STATUS, {"id": str(world["echo"].pk)}))["serviceStatus"]
    assert status["version"]["status"] == "active"
    assert status["validationRuns"][0]["outcome"] == "passed"
    assert [s["name"] for s in status["validationRuns"][0]["steps"]][:2] == ["schema", "openapi"]
    refused = gql(logged_in(world["consumer"]), STATUS, {"id": str(world["echo"].pk)}).json()
    assert refused["data"]["serviceStatus"] is None
    assert refused["errors"][0]["extensions"]["code"] == "authorization_error"


def test_publish_runs_the_pipeline_and_answers_with_the_outcome(world) -> None:
    payload = data(gql(logged_in(world["owner"]), PUBLISH, {"definition": definition()}))["servicePublish"]
    assert payload["errors"] == []
    assert payload["service"]["modelId"] == "acme/echo-chat"
    assert payload["version"]["status"] == "active"
    assert payload["version"]["pricing"] == {
        "model": "per_token",
        "inputPerMtok": "0.5",
        "outputPerMtok": "1.5",
        "currency": "USD",
    }
    assert payload["validationRun"]["resultStatus"] == "active"


def test_publish_errors_are_payload_errors_naming_the_field(world) -> None:
    client = logged_in(world["owner"])
    bad = data(gql(client, PUBLISH, {"definition": definition(**{"pricing.model": "barter"})}))["servicePublish"]
    assert bad["service"] is None
    assert [(e["field"], e["code"]) for e in bad["errors"]] == [("pricing.model", "validation_error")]
    taken = data(gql(client, PUBLISH, {"definition": definition(slug="echo")}))["servicePublish"]
    assert [(e["code"], e["field"]) for e in taken["errors"]] == [("conflict", "slug")]
    assert ServiceVersion.objects.filter(service__publisher=world["acme"]).count() == 1
    consumer = data(
        gql(
            logged_in(world["consumer"]),
            NEW_VERSION,
            {"id": str(world["echo"].pk), "definition": definition(slug=..., version="2.0.0")},
        )
    )
    assert consumer["serviceVersionCreate"]["errors"][0]["code"] == "authorization_error"
    older = data(
        gql(client, NEW_VERSION, {"id": str(world["echo"].pk), "definition": definition(slug=..., version="0.9.0")})
    )
    assert older["serviceVersionCreate"]["errors"][0]["code"] in {"conflict", "validation_error"}


def test_a_list_argument_beyond_its_bounds_is_an_error_naming_it(world) -> None:
    # when
    body = gql(logged_in(world["consumer"]), SERVICES, {"category": ["poetry"] * 40_000}).json()
    # then
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "validation_error" and "category: At most 12 values." in error["message"]


@pytest.mark.parametrize("document", [PUBLISH, VALIDATE])
@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"capabilities": [{"name": "chat", "parameters": {"temperature": "NUMBER"}}]}, "capabilities[0].parameters"),
        ({"openapi": {"openapi": "3.0.3", "x-limits": ["NUMBER"]}}, "openapi"),
    ],
)
def test_numbers_beyond_range_in_free_json_are_an_error_naming_the_field(
    world, document: str, changes: dict, path: str
) -> None:
    # given: variables with a number json reads as infinity
    body = json.dumps({"query": document, "variables": {"definition": definition(**changes)}})
    before = ServiceVersion.objects.count()
    # when
    response = logged_in(world["owner"]).post(
        "/graphql", body.replace('"NUMBER"', "1e400"), content_type="application/json"
    )
    # then
    (result,) = data(response).values()
    assert [error["field"] for error in result["errors"]] == [path]
    assert ServiceVersion.objects.count() == before


def test_dry_run_validates_without_saving(world) -> None:
    client = logged_in(world["owner"])
    ok = data(gql(client, VALIDATE, {"definition": definition()}))["serviceValidate"]
    assert ok["valid"] is True and ok["errors"] == []
    failing = data(gql(client, VALIDATE, {"definition": definition(**{"compliance.data_residency": ["XX"]})}))
    assert failing["serviceValidate"]["valid"] is False
    assert ServiceVersion.objects.count() == 2


def test_staff_approve_or_reject_pending_versions(world) -> None:
    waiting = {"id": str(world["waiting"].pk)}
    refused = data(gql(logged_in(world["untrusted_owner"]), APPROVE, waiting))["serviceVersionApprove"]
    assert refused["errors"][0]["code"] == "authorization_error"
    missing = data(gql(logged_in(world["staff"]), REJECT, {**waiting, "notes": ""}))["serviceVersionReject"]
    assert missing["errors"][0]["field"] == "notes"
    approved = data(gql(logged_in(world["staff"]), APPROVE, waiting))["serviceVersionApprove"]
    assert approved == {"version": {"status": "active"}, "errors": []}
    again = data(gql(logged_in(world["staff"]), APPROVE, waiting))["serviceVersionApprove"]
    assert again["errors"][0]["code"] == "invalid_transition"


def test_lifecycle_transitions_through_the_services(world) -> None:
    echo = {"id": str(world["echo"].pk)}
    owner, staff = logged_in(world["owner"]), logged_in(world["staff"])
    assert data(gql(owner, DEPRECATE, echo))["serviceVersionDeprecate"]["version"]["status"] == "deprecated"
    assert data(gql(owner, REACTIVATE, echo))["serviceVersionReactivate"]["version"]["status"] == "active"
    suspended = data(gql(staff, SUSPEND, echo))["serviceVersionSuspend"]["version"]
    assert suspended == {"status": "suspended", "suspensionReason": "abuse"}
    assert data(gql(staff, REACTIVATE, echo))["serviceVersionReactivate"]["version"]["status"] == "active"
    foreign = data(gql(logged_in(world["consumer"]), DEPRECATE, echo))["serviceVersionDeprecate"]
    assert foreign["errors"][0]["code"] == "authorization_error"
    assert data(gql(owner, RETIRE_SERVICE, echo))["serviceRetire"] == {"retiredVersions": 1, "errors": []}
    assert ServiceVersion.objects.get(service=world["echo"]).status == "retired"


def test_api_keys_publish_with_the_publish_scope_only(world) -> None:
    _, reader = create_api_key(tenant=world["acme"], actor=world["owner"], name="r", scopes=["read"])
    _, publisher = create_api_key(tenant=world["acme"], actor=world["owner"], name="p", scopes=["publish"])
    refused = gql(with_key(reader), PUBLISH, {"definition": definition()}).json()
    assert refused["errors"][0]["extensions"]["code"] == "insufficient_scope"
    payload = data(gql(with_key(publisher), PUBLISH, {"definition": definition()}))["servicePublish"]
    assert payload["errors"] == [] and payload["service"]["modelId"] == "acme/echo-chat"


def test_unauthenticated_callers_read_nothing(world) -> None:
    body = gql(Client(), SERVICES).json()
    assert body["errors"][0]["extensions"]["code"] == "authentication_error"
