"""The publishing admin: tenant scoping of services, versions and runs; read-only pages; lifecycle actions by role."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from apps.publishing.models import ServiceVersion, Status, ValidationRun, ValidationStep
from apps.tenancy.models import AuditLog, Role
from tests.apps.publishing.test_discovery import make_version
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

CHANGELIST = "admin:publishing_serviceversion_changelist"


@pytest.fixture
def world(db: Any, publisher: Any, publisher_admin: Any, staff: Any) -> dict[str, Any]:
    globex = TenantFactory(slug="globex")
    gus = UserFactory(username="gus")
    MembershipFactory(tenant=globex, user=gus, role=Role.OWNER)
    return {
        "acme_live": make_version(publisher, "acme-chat"),
        "acme_pending": make_version(publisher, "acme-pending", status=Status.PENDING_APPROVAL),
        "globex_live": make_version(globex, "globex-chat"),
        "globex_pending": make_version(globex, "globex-pending", status=Status.PENDING_APPROVAL),
        "alice": publisher_admin,
        "gus": gus,
        "staff": staff,
    }


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def run_action(client: Client, action: str, versions: list[ServiceVersion], notes: str = "") -> list[str]:
    response = client.post(
        reverse(CHANGELIST),
        {"action": action, ACTION_CHECKBOX_NAME: [str(v.pk) for v in versions], "notes": notes, "index": 0},
        follow=True,
    )
    assert response.status_code == 200
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_tenant_admins_see_only_their_versions(world: dict[str, Any]) -> None:
    alice = login(world["alice"])
    page = alice.get(reverse(CHANGELIST)).content.decode()
    assert "acme/acme-chat" in page and "acme/acme-pending" in page
    assert "globex" not in page
    other = reverse("admin:publishing_serviceversion_change", args=[world["globex_live"].pk])
    assert alice.get(other).status_code == 404
    own = reverse("admin:publishing_serviceversion_change", args=[world["acme_live"].pk])
    assert alice.get(own).status_code == 200
    services = alice.get(reverse("admin:publishing_service_changelist")).content.decode()
    assert "acme/acme-chat" in services and "globex" not in services
    staff_page = login(world["staff"]).get(reverse(CHANGELIST)).content.decode()
    assert "acme/acme-chat" in staff_page and "globex/globex-chat" in staff_page


def test_pages_are_read_only_for_everyone(world: dict[str, Any]) -> None:
    for user in ("alice", "staff"):
        client = login(world[user])
        assert client.get(reverse("admin:publishing_serviceversion_add")).status_code == 403
        url = reverse("admin:publishing_serviceversion_change", args=[world["acme_live"].pk])
        page = client.get(url).content.decode()
        assert 'name="name"' not in page and "Save" not in page
        assert client.post(url, {"status": "retired"}).status_code == 403
        delete = reverse("admin:publishing_serviceversion_delete", args=[world["acme_live"].pk])
        assert client.get(delete).status_code == 403
    world["acme_live"].refresh_from_db()
    assert world["acme_live"].status == Status.ACTIVE


def test_staff_actions_are_offered_to_platform_staff_only(world: dict[str, Any]) -> None:
    alice_page = login(world["alice"]).get(reverse(CHANGELIST)).content.decode()
    assert "deprecate_versions" in alice_page
    for staff_only in ("approve_versions", "reject_versions", "suspend_versions", "reactivate_versions"):
        assert staff_only not in alice_page
    staff_page = login(world["staff"]).get(reverse(CHANGELIST)).content.decode()
    assert "approve_versions" in staff_page and 'name="notes"' in staff_page
    # Posting a staff action anyway is refused by the admin (the action is not available).
    login(world["alice"]).post(
        reverse(CHANGELIST),
        {"action": "approve_versions", ACTION_CHECKBOX_NAME: [str(world["acme_pending"].pk)], "index": 0},
    )
    world["acme_pending"].refresh_from_db()
    assert world["acme_pending"].status == Status.PENDING_APPROVAL


def test_staff_approve_reject_suspend_and_reactivate(world: dict[str, Any]) -> None:
    staff = login(world["staff"])
    messages = run_action(staff, "approve_versions", [world["acme_pending"]], notes="checked")
    assert messages == ["1 service version approved."]
    messages = run_action(staff, "reject_versions", [world["globex_pending"]])
    assert any("Say why" in m for m in messages)
    run_action(staff, "reject_versions", [world["globex_pending"]], notes="incomplete documentation")
    messages = run_action(staff, "suspend_versions", [world["acme_live"], world["globex_pending"]], notes="abuse")
    assert messages[0] == "1 service version suspended."
    assert "cannot become suspended" in messages[1]
    for key, status in [("acme_pending", "active"), ("globex_pending", "rejected"), ("acme_live", "suspended")]:
        world[key].refresh_from_db()
        assert world[key].status == status, key
    assert world["globex_pending"].review_notes == "incomplete documentation"
    assert world["acme_live"].suspension_reason == "abuse"
    run_action(staff, "reactivate_versions", [world["acme_live"]])
    world["acme_live"].refresh_from_db()
    assert world["acme_live"].status == Status.ACTIVE
    assert AuditLog.objects.filter(action="service_version_suspended").count() == 1


def test_tenant_admins_deprecate_and_retire_their_own(world: dict[str, Any]) -> None:
    alice = login(world["alice"])
    assert run_action(alice, "deprecate_versions", [world["acme_live"]]) == ["1 service version deprecated."]
    run_action(alice, "deprecate_versions", [world["globex_live"]])  # not in scope: silently not selected
    world["globex_live"].refresh_from_db()
    assert world["globex_live"].status == Status.ACTIVE
    assert run_action(alice, "retire_versions", [world["acme_live"]]) == ["1 service version retired."]


def test_runs_show_their_steps_and_services_their_versions(world: dict[str, Any]) -> None:
    run = ValidationRun.objects.create(version=world["acme_live"], outcome="failed", result_status="failed_validation")
    ValidationStep.objects.create(
        run=run,
        name="schema",
        position=0,
        outcome="failed",
        messages=[{"code": "GDPR_REQUIRED", "field": "compliance.gdpr", "message": "m", "severity": "error"}],
    )
    alice = login(world["alice"])
    page = alice.get(reverse("admin:publishing_validationrun_change", args=[run.pk])).content.decode()
    assert "GDPR_REQUIRED" in page and "compliance.gdpr" in page
    version_page = alice.get(reverse("admin:publishing_serviceversion_change", args=[world["acme_live"].pk]))
    assert "failed_validation" in version_page.content.decode()
    gus = login(world["gus"])
    assert gus.get(reverse("admin:publishing_validationrun_change", args=[run.pk])).status_code == 404
    assert str(run.pk) not in gus.get(reverse("admin:publishing_validationrun_changelist")).content.decode()
    service_page = alice.get(reverse("admin:publishing_service_change", args=[world["acme_live"].service_id]))
    assert "1.0.0" in service_page.content.decode()
