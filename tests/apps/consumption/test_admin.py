"""The consumption admin: scoped keys via the services (secret once, hash never); read-only ledger and SLA pages."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.consumption import services
from apps.consumption.keys import hash_secret
from apps.consumption.models import ApiKey, SlaViolation, UsageRecord, UsageRollup
from apps.tenancy.models import AuditLog, Role
from tests.apps.consumption.test_usage import Traffic, entry, make_traffic, write
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

SECRET = re.compile(r"mk_[0-9A-Za-z]{40,}")


@pytest.fixture
def traffic(provider: Any, echo_service: Any, consumer: Any) -> Traffic:
    return make_traffic(provider, echo_service, consumer)


@pytest.fixture
def world(db: Any) -> dict[str, Any]:
    a, b = TenantFactory(slug="acme"), TenantFactory(slug="globex")
    users = {name: UserFactory(username=name) for name in ("a-admin", "a-member", "b-admin")}
    MembershipFactory(tenant=a, user=users["a-admin"], role=Role.ADMIN)
    MembershipFactory(tenant=a, user=users["a-member"], role=Role.MEMBER)
    MembershipFactory(tenant=b, user=users["b-admin"], role=Role.ADMIN)
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    a_key, a_secret = services.create_api_key(tenant=a, actor=users["a-admin"], name="a-key", scopes=["consume"])
    b_key, _ = services.create_api_key(tenant=b, actor=users["b-admin"], name="b-key", scopes=["consume"])
    return {"a": a, "b": b, **users, "root": root, "a_key": a_key, "a_secret": a_secret, "b_key": b_key}


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def changelist(model: type) -> str:
    return reverse(f"admin:consumption_{model._meta.model_name}_changelist")


def change_url(obj: Any) -> str:
    return reverse(f"admin:consumption_{obj._meta.model_name}_change", args=[obj.pk])


def post_action(client: Client, model: type, action: str, objs: list[Any]) -> Any:
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(o.pk) for o in objs], "index": "0"}
    return client.post(changelist(model), data, follow=True)


def page(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- API keys ------------------------------------------------------------------------------------------------


def test_a_tenant_admin_sees_only_its_keys_and_never_a_hash(world: dict[str, Any]) -> None:
    client = client_for(world["a-admin"])

    listing = page(client.get(changelist(ApiKey)))
    detail = page(client.get(change_url(world["a_key"])))

    assert "a-key" in listing and "b-key" not in listing
    for html in (listing, detail):
        assert world["a_key"].key_hash not in html and world["b_key"].key_hash not in html
        assert world["a_secret"] not in html and not SECRET.search(html)
        assert "key_hash" not in html
    assert world["a_key"].display in listing
    assert client.get(change_url(world["b_key"])).status_code == 404
    assert client_for(world["a-member"]).get(changelist(ApiKey)).status_code in (302, 403)


def test_the_csv_export_has_no_hash(world: dict[str, Any]) -> None:
    response = post_action(client_for(world["root"]), ApiKey, "export_as_csv", [world["a_key"], world["b_key"]])

    content = b"".join(response.streaming_content).decode()
    assert "a-key" in content and "b-key" in content
    assert world["a_key"].key_hash not in content and world["b_key"].key_hash not in content


def test_adding_a_key_shows_its_secret_once(world: dict[str, Any]) -> None:
    client = client_for(world["a-admin"])
    add = reverse("admin:consumption_apikey_add")
    assert world["b"].slug not in page(client.get(add))  # only the admin's tenants to choose from

    response = client.post(
        add,
        {
            "tenant": str(world["a"].pk),
            "name": "from-admin",
            "scopes": ["consume", "read"],
            "allowed_models": "acme/echo, acme/other",
            "rpm_limit": "30",
        },
        follow=True,
    )

    shown = [m for m in messages_of(response) if SECRET.search(m)]
    assert len(shown) == 1
    secret = SECRET.search(shown[0]).group(0)  # type: ignore[union-attr]
    key = ApiKey.objects.get(name="from-admin")
    assert key.key_hash == hash_secret(secret) and key.created_by == world["a-admin"]
    assert key.scopes == ["consume", "read"] and key.allowed_models == ["acme/echo", "acme/other"]
    assert key.rpm_limit == 30
    assert AuditLog.objects.filter(action="api_key_created", object_id=str(key.pk)).exists()
    # never again
    assert secret not in page(client.get(changelist(ApiKey)))
    assert secret not in page(client.get(change_url(key)))


def test_key_pages_speak_plainly_and_preselect_the_tenant(world: dict[str, Any]) -> None:
    client = client_for(world["a-admin"])
    labels = ("RPM limit", "TPM limit", "Max parallel requests", "Daily budget (USD)", "Monthly budget (USD)")

    add = client.get(reverse("admin:consumption_apikey_add"))
    detail = page(client.get(change_url(world["a_key"])))

    for label in labels:
        assert f">{label}:</label>" in page(add) and f"<label>{label}:</label>" in detail
    assert "Rpm limit" not in detail and "Budget day usd" not in detail and "Max parallel:" not in detail
    assert add.context["adminform"].form["tenant"].value() == world["a"].pk  # the admin's only tenant


def test_the_once_shown_secret_has_a_copy_button(world: dict[str, Any]) -> None:
    client = client_for(world["a-admin"])

    response = client.post(
        reverse("admin:consumption_apikey_add"),
        {"tenant": str(world["a"].pk), "name": "to-copy", "scopes": ["consume"]},
        follow=True,
    )

    html = page(response)
    secret = SECRET.search(html).group(0)  # type: ignore[union-attr]
    # the secret is plain, selectable text in its own element; the script adds the button beside it
    assert f'<code class="once-shown-secret">{secret}</code>' in html
    assert re.search(r'<script src="/static/consumption/copy_secret\.js"', html)


def test_a_key_cannot_be_added_to_another_tenant(world: dict[str, Any]) -> None:
    client = client_for(world["a-admin"])

    response = client.post(
        reverse("admin:consumption_apikey_add"),
        {"tenant": str(world["b"].pk), "name": "intruder", "scopes": ["consume"]},
    )

    assert response.status_code == 200  # the form is shown again with an error
    assert not ApiKey.objects.filter(name="intruder").exists()


def test_rotation_action_shows_the_new_secret_once(world: dict[str, Any]) -> None:
    client = client_for(world["a-admin"])

    response = post_action(client, ApiKey, "rotate_keys", [world["a_key"]])

    shown = [m for m in messages_of(response) if SECRET.search(m)]
    assert len(shown) == 1
    secret = SECRET.search(shown[0]).group(0)  # type: ignore[union-attr]
    successor = ApiKey.objects.get(rotated_from=world["a_key"])
    assert successor.key_hash == hash_secret(secret)
    old = ApiKey.objects.get(pk=world["a_key"].pk)
    assert old.expires_at is not None and old.expires_at > timezone.now() + timedelta(hours=23)
    assert secret not in page(client.get(changelist(ApiKey)))


def test_revocation_action(world: dict[str, Any]) -> None:
    client = client_for(world["a-admin"])

    response = post_action(client, ApiKey, "revoke_keys", [world["a_key"]])

    assert any("revoked" in m for m in messages_of(response))
    assert ApiKey.objects.get(pk=world["a_key"].pk).revoked_at is not None
    # revoking again is refused with the service's reason, not a server error
    again = post_action(client, ApiKey, "revoke_keys", [world["a_key"]])
    assert any("already revoked" in m for m in messages_of(again))


def test_actions_cannot_reach_another_tenants_key(world: dict[str, Any]) -> None:
    post_action(client_for(world["a-admin"]), ApiKey, "revoke_keys", [world["b_key"]])
    post_action(client_for(world["a-admin"]), ApiKey, "rotate_keys", [world["b_key"]])

    assert ApiKey.objects.get(pk=world["b_key"].pk).revoked_at is None
    assert not ApiKey.objects.filter(rotated_from=world["b_key"]).exists()


def test_the_change_page_changes_nothing(world: dict[str, Any]) -> None:
    client = client_for(world["a-admin"])

    client.post(change_url(world["a_key"]), {"name": "renamed", "rpm_limit": "1"})

    key = ApiKey.objects.get(pk=world["a_key"].pk)
    assert key.name == "a-key" and key.rpm_limit is None
    assert client.post(reverse("admin:consumption_apikey_delete", args=[key.pk])).status_code == 403


# --- Ledger, rollups, SLA ----------------------------------------------------------------------------------------


def test_usage_is_read_only_and_scoped(traffic: Traffic) -> None:
    write([entry(traffic, request_id="seen-by-both", latency=300.0)])
    outsider = TenantFactory(slug="initech")
    outsider_admin = UserFactory(username="initech-admin")
    MembershipFactory(tenant=outsider, user=outsider_admin, role=Role.ADMIN)
    record = UsageRecord.objects.get()
    rollup = UsageRollup.objects.get()

    for user in (traffic.consumer.owner, traffic.provider.owner):
        client = client_for(user)
        assert "seen-by-both" in page(client.get(changelist(UsageRecord)))
        assert "seen-by-both" in page(client.get(change_url(record)))
        assert "500.0" in page(client.get(changelist(UsageRollup)))  # the p95 bucket bound of a 300 ms request
        assert client.get(reverse("admin:consumption_usagerecord_add")).status_code == 403
        assert client.post(reverse("admin:consumption_usagerecord_delete", args=[record.pk])).status_code == 403
        assert client.get(change_url(rollup)).status_code == 200
    stranger = client_for(outsider_admin)
    assert "seen-by-both" not in page(stranger.get(changelist(UsageRecord)))
    assert stranger.get(change_url(record)).status_code == 404
    assert stranger.get(change_url(rollup)).status_code == 404
    assert UsageRecord.objects.count() == 1


def test_sla_violations_are_shown_to_their_publisher(traffic: Traffic) -> None:
    from apps.consumption import sla
    from apps.publishing.models import ServiceVersion

    ServiceVersion.objects.filter(pk=traffic.version.pk).update(sla_max_latency_ms=100)
    write([entry(traffic, latency=150.0) for _ in range(10)])
    [violation] = sla.check_sla()

    html = page(client_for(traffic.provider.owner).get(changelist(SlaViolation)))
    assert "warning" in html and "latency" in html
    detail = page(client_for(traffic.provider.owner).get(change_url(violation)))
    assert "availability 100.0 %" in detail and "p95 150.0 ms" in detail
    assert client_for(traffic.consumer.owner).get(change_url(violation)).status_code == 404
    assert client_for(traffic.provider.owner).get(reverse("admin:consumption_slaviolation_add")).status_code == 403


def test_sla_violations_are_named_so(world: dict[str, Any]) -> None:
    index = page(client_for(world["root"]).get(reverse("admin:index")))
    listing = page(client_for(world["root"]).get(changelist(SlaViolation)))

    assert ">SLA violations</a>" in index and "Sla violations" not in index
    assert "Select SLA violation to view" in listing


# --- Routing preferences -----------------------------------------------------------------------------------------


def test_a_key_added_with_routing_preferences_keeps_them_and_bad_ones_are_refused(world: dict[str, Any]) -> None:
    client = client_for(world["a-admin"])
    add = reverse("admin:consumption_apikey_add")
    base = {"tenant": str(world["a"].pk), "name": "routed", "scopes": ["consume"], "allowed_models": ""}

    refused = client.post(add, {**base, "routing": '{"sort": "cheapest", "speed": 1}'})
    text = page(refused)
    assert "routing.speed" in text  # unknown fields first
    assert not ApiKey.objects.filter(name="routed").exists()

    client.post(add, {**base, "routing": '{"data_residency": ["FR"], "sort": "price"}'}, follow=True)
    assert ApiKey.objects.get(name="routed").routing == {"data_residency": ["FR"], "sort": "price"}


def test_a_tenant_admin_sets_its_tenants_routing_in_the_admin(world: dict[str, Any]) -> None:
    from apps.consumption.models import TenantRouting

    client = client_for(world["a-admin"])
    add = reverse("admin:consumption_tenantrouting_add")
    assert world["b"].slug not in page(client.get(add))
    refused = page(client.post(add, {"tenant": str(world["a"].pk), "routing": '{"max_price": {"prompt": -2}}'}))
    assert "routing.max_price.prompt" in refused and not TenantRouting.objects.exists()

    client.post(add, {"tenant": str(world["a"].pk), "routing": '{"only": ["acme/fast"]}'}, follow=True)
    assert TenantRouting.objects.get(tenant=world["a"]).routing == {"only": ["acme/fast"]}
    assert AuditLog.objects.filter(action="tenant_routing_changed", tenant=world["a"]).exists()
