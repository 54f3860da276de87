"""The tenant-scoped admin: who may log in, what each tenant's admins see and change, exports, audit, 404s."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, RequestFactory
from django.urls import reverse

from apps.tenancy import sharing
from apps.tenancy.admin import MembershipAdmin
from apps.tenancy.admin_scoping import TenantScopedAdmin
from apps.tenancy.admin_site import MarketplaceAdminSite
from apps.tenancy.models import (
    AccessRequest,
    AuditLog,
    Grant,
    GrantStatus,
    Membership,
    QuotaOverride,
    Role,
    SharingPolicy,
    Tenant,
    TenantStatus,
    Visibility,
)
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

PASSWORD = "pw-for-tests-1"


@pytest.fixture
def world(db: Any) -> dict[str, Any]:
    """Tenant A (acme) and B (globex), each with an owner, an admin and a member; a platform superuser."""
    a = TenantFactory(slug="acme", name="Acme Corp")
    b = TenantFactory(slug="globex", name="Globex Inc")
    users = {
        "a_owner": UserFactory(username="a-owner"),
        "a_admin": UserFactory(username="a-admin"),
        "a_member": UserFactory(username="a-member"),
        "b_owner": UserFactory(username="b-owner"),
        "b_admin": UserFactory(username="b-admin"),
        "b_member": UserFactory(username="b-member"),
        "root": UserFactory(username="root", is_staff=True, is_superuser=True),
    }
    memberships = {
        "a_owner": MembershipFactory(tenant=a, user=users["a_owner"], role=Role.OWNER),
        "a_admin": MembershipFactory(tenant=a, user=users["a_admin"], role=Role.ADMIN),
        "a_member": MembershipFactory(tenant=a, user=users["a_member"], role=Role.MEMBER),
        "b_owner": MembershipFactory(tenant=b, user=users["b_owner"], role=Role.OWNER),
        "b_admin": MembershipFactory(tenant=b, user=users["b_admin"], role=Role.ADMIN),
        "b_member": MembershipFactory(tenant=b, user=users["b_member"], role=Role.MEMBER),
    }
    return {"a": a, "b": b, **users, "m": memberships}


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def changelist(model: type, **params: str) -> str:
    url = reverse(f"admin:tenancy_{model._meta.model_name}_changelist")
    if params:
        url += "?" + "&".join(f"{k}={v}" for k, v in params.items())
    return url


def change_url(obj: Any) -> str:
    return reverse(f"admin:tenancy_{obj._meta.model_name}_change", args=[obj.pk])


def result_rows(response: Any) -> list[Any]:
    return list(response.context["cl"].result_list)


def post_action(client: Client, model: type, action: str, objs: list[Any], **extra: str) -> Any:
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(o.pk) for o in objs], "index": "0", **extra}
    return client.post(changelist(model), data)


def read_csv(response: Any) -> list[list[str]]:
    content = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(content)))


# --- Logging in ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["a_owner", "a_admin", "root"])
def test_tenant_owners_admins_and_superusers_log_in_without_being_staff(world: dict[str, Any], who: str) -> None:
    # given a tenant owner/admin who is not is_staff (or a superuser)
    user = world[who]
    assert who == "root" or not user.is_staff

    # when they log in through the admin's login form
    response = Client().post(
        reverse("admin:login"), {"username": user.username, "password": PASSWORD, "next": reverse("admin:index")}
    )

    # then they land on the admin index, which answers
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")


@pytest.mark.parametrize("who", ["a_member", "b_member"])
def test_plain_members_cannot_log_in(world: dict[str, Any], who: str) -> None:
    client = Client()
    response = client.post(reverse("admin:login"), {"username": world[who].username, "password": PASSWORD})

    assert response.status_code == 200
    assert "may use the admin" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_viewer_with_a_session_is_sent_to_the_login_page(world: dict[str, Any]) -> None:
    viewer = UserFactory(username="a-viewer")
    MembershipFactory(tenant=world["a"], user=viewer, role=Role.VIEWER)

    response = client_for(viewer).get(changelist(Membership))

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_an_inactive_tenant_admin_cannot_use_the_admin(world: dict[str, Any]) -> None:
    world["a_admin"].is_active = False
    world["a_admin"].save()

    response = Client().post(reverse("admin:login"), {"username": "a-admin", "password": PASSWORD})

    assert response.status_code == 200


def test_the_index_shows_a_tenant_admin_only_the_tenancy_pages_they_may_use(world: dict[str, Any]) -> None:
    response = client_for(world["a_admin"]).get(reverse("admin:index"))

    html = response.content.decode()
    assert response.status_code == 200
    assert changelist(Membership) in html
    assert changelist(AuditLog) in html
    assert reverse("admin:usage_dashboard") in html
    assert "/admin/tenancy/tierquota/" not in html
    assert "/admin/auth/user/" not in html


# --- Seeing only one's tenant -------------------------------------------------------------------------------


def test_a_tenant_admin_sees_only_their_tenants_members(world: dict[str, Any]) -> None:
    response = client_for(world["a_admin"]).get(changelist(Membership))

    assert response.status_code == 200
    assert {m.user.username for m in result_rows(response)} == {"a-owner", "a-admin", "a-member"}
    html = response.content.decode()
    assert "b-admin" not in html
    assert "globex" not in html  # not even in the tenant filter of the sidebar


def test_search_never_reaches_another_tenants_rows(world: dict[str, Any]) -> None:
    client = client_for(world["a_admin"])

    assert result_rows(client.get(changelist(Membership, q="b-"))) == []
    assert result_rows(client.get(changelist(Membership, q="globex"))) == []
    assert [m.user.username for m in result_rows(client.get(changelist(Membership, q="a-member")))] == ["a-member"]


def test_url_filters_cannot_widen_the_scope(world: dict[str, Any]) -> None:
    response = client_for(world["a_admin"]).get(changelist(Membership, tenant__id__exact=str(world["b"].pk)))

    assert {m.tenant.slug for m in result_rows(response)} <= {"acme"}


def test_a_user_admin_in_one_tenant_and_member_in_another_sees_only_the_first(world: dict[str, Any]) -> None:
    MembershipFactory(tenant=world["b"], user=world["a_admin"], role=Role.MEMBER)

    response = client_for(world["a_admin"]).get(changelist(Membership))

    assert {m.tenant.slug for m in result_rows(response)} == {"acme"}


@pytest.mark.parametrize("suffix", ["change", "delete", "history"])
def test_another_tenants_object_urls_are_404(world: dict[str, Any], suffix: str) -> None:
    client = client_for(world["a_admin"])
    b_membership = world["m"]["b_member"]

    response = client.get(reverse(f"admin:tenancy_membership_{suffix}", args=[b_membership.pk]))
    tenant_response = client.get(reverse(f"admin:tenancy_tenant_{suffix}", args=[world["b"].pk]))

    assert response.status_code == 404
    # nobody deletes tenants in the admin (they are deactivated): 403 for every tenant alike
    assert tenant_response.status_code == (403 if suffix == "delete" else 404)


def _answer(client: Client, content_type_id: int, object_id: Any, accept: str) -> tuple[int, Any]:
    """Status and body of a "view on site" request, the URL asked for (echoed by 404s) and the request id left out."""
    url = reverse("admin:view_on_site", args=[content_type_id, object_id])
    response = client.get(url, HTTP_ACCEPT=accept)
    body = response.content.decode().replace(url, "<url>")
    if response["Content-Type"] == "application/json":
        body = {**json.loads(body), "request_id": None}
    return response.status_code, body


@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_view_on_site_tells_a_tenant_admin_nothing_about_other_tenants_objects(
    world: dict[str, Any], accept: str
) -> None:
    # given
    client = client_for(world["a_admin"])
    membership = ContentType.objects.get_for_model(Membership).pk
    missing = _answer(client, membership, uuid.uuid4(), accept)
    # then: another tenant's object, a missing one, a malformed id and an unknown type answer alike
    assert missing[0] == 404
    assert _answer(client, membership, world["m"]["b_member"].pk, accept) == missing
    assert _answer(client, membership, "not-an-id", accept) == missing
    assert _answer(client, ContentType.objects.get_for_model(Tenant).pk, world["b"].pk, accept) == missing
    assert _answer(client, 999_999, world["m"]["b_member"].pk, accept) == missing


def test_view_on_site_still_works_for_ones_own_objects_and_for_superusers(world: dict[str, Any]) -> None:
    membership = ContentType.objects.get_for_model(Membership).pk
    own = _answer(client_for(world["a_admin"]), membership, world["m"]["a_member"].pk, "application/json")
    any_tenants = _answer(client_for(world["root"]), membership, world["m"]["b_member"].pk, "application/json")
    # Django's own answer: these models have no page outside the admin
    for status, body in (own, any_tenants):
        assert status == 404 and "get_absolute_url" in body["error"]["message"]


def test_posting_to_another_tenants_object_changes_nothing(world: dict[str, Any]) -> None:
    b_member = world["m"]["b_member"]

    response = client_for(world["a_admin"]).post(
        reverse("admin:tenancy_membership_change", args=[b_member.pk]), {"role": Role.OWNER}
    )

    assert response.status_code == 404
    b_member.refresh_from_db()
    assert b_member.role == Role.MEMBER


def test_a_tenant_admin_sees_only_their_tenant(world: dict[str, Any]) -> None:
    response = client_for(world["b_admin"]).get(changelist(Tenant))

    assert [t.slug for t in result_rows(response)] == ["globex"]


def test_a_superuser_sees_every_tenants_rows(world: dict[str, Any]) -> None:
    client = client_for(world["root"])

    assert len(result_rows(client.get(changelist(Membership)))) == 6
    assert {t.slug for t in result_rows(client.get(changelist(Tenant)))} == {"acme", "globex"}
    assert client.get(change_url(world["m"]["b_member"])).status_code == 200
    assert client.get(changelist(QuotaOverride)).status_code == 200
    assert client.get(reverse("admin:tenancy_tierquota_changelist")).status_code == 200


def test_tier_quotas_are_for_superusers_only(world: dict[str, Any]) -> None:
    client = client_for(world["a_owner"])

    assert client.get(reverse("admin:tenancy_tierquota_changelist")).status_code == 403


# --- Export -------------------------------------------------------------------------------------------------


def test_export_contains_only_the_selected_rows_of_ones_tenant(world: dict[str, Any]) -> None:
    client = client_for(world["a_admin"])
    selected = [world["m"]["a_member"], world["m"]["b_member"]]  # B's id smuggled into the selection

    response = post_action(client, Membership, "export_as_csv", selected)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    rows = read_csv(response)
    assert rows[0] == ["User", "Tenant", "Role", "Created at"]
    assert [row[0] for row in rows[1:]] == ["a-member"]


def test_export_of_all_filtered_rows_stays_in_ones_tenant(world: dict[str, Any]) -> None:
    client = client_for(world["a_admin"])

    response = post_action(client, Membership, "export_as_csv", [world["m"]["a_member"]], select_across="1")

    assert sorted(row[0] for row in read_csv(response)[1:]) == ["a-admin", "a-member", "a-owner"]


def test_export_neutralises_spreadsheet_formulas(world: dict[str, Any]) -> None:
    world["a"].name = "=HYPERLINK(1)"
    world["a"].save()

    response = post_action(client_for(world["a_admin"]), Tenant, "export_as_csv", [world["a"]])

    header, row = read_csv(response)
    assert row[header.index("Name")] == "'=HYPERLINK(1)"


def test_export_neutralises_formulas_in_related_objects_too(world: dict[str, Any]) -> None:
    # given a username a spreadsheet would run (it reaches the export as the membership's user, a foreign key)
    world["a_member"].username = "@SUM(1)"
    world["a_member"].save()

    response = post_action(client_for(world["a_admin"]), Membership, "export_as_csv", [world["m"]["a_member"]])

    header, row = read_csv(response)
    assert row[header.index("User")] == "'@SUM(1)" and row[header.index("Tenant")] == "acme"


def test_export_has_the_text_of_display_columns_not_their_html(world: dict[str, Any]) -> None:
    response = post_action(client_for(world["a_admin"]), Tenant, "export_as_csv", [world["a"]])

    header, row = read_csv(response)
    assert row[header.index("Usage")] == "dashboard" and row[header.index("Members")] == "3"
    assert not any("<" in cell for cell in row)


# --- Forms: choices limited to one's tenant -----------------------------------------------------------------


def test_foreign_key_choices_offer_only_ones_tenants(world: dict[str, Any]) -> None:
    response = client_for(world["a_admin"]).get(reverse("admin:tenancy_membership_add"))

    choices = list(response.context["adminform"].form.fields["tenant"].queryset)
    assert choices == [world["a"]]
    assert "globex" not in response.content.decode()


def test_the_only_tenant_of_a_tenant_admin_is_preselected_in_add_forms(world: dict[str, Any]) -> None:
    # given an admin of one tenant, an admin of two, and a superuser of none
    two_hats = UserFactory(username="two-hats")
    MembershipFactory(tenant=world["a"], user=two_hats, role=Role.ADMIN)
    MembershipFactory(tenant=world["b"], user=two_hats, role=Role.OWNER)
    add = reverse("admin:tenancy_membership_add")

    # when each opens the add form
    forms = {
        who: client_for(user).get(add).context["adminform"].form
        for who, user in (("one", world["a_admin"]), ("two", two_hats), ("root", world["root"]))
    }

    # then only the one-tenant admin finds their tenant chosen
    assert forms["one"]["tenant"].value() == world["a"].pk
    assert f'<option value="{world["a"].pk}" selected>' in str(forms["one"]["tenant"])
    assert forms["two"]["tenant"].value() is None
    assert forms["root"]["tenant"].value() is None


def test_a_forged_foreign_key_to_another_tenant_is_refused(world: dict[str, Any]) -> None:
    newcomer = UserFactory(username="newcomer")

    response = client_for(world["a_admin"]).post(
        reverse("admin:tenancy_membership_add"),
        {"tenant": str(world["b"].pk), "username": "newcomer", "role": Role.MEMBER},
    )

    assert response.status_code == 200
    assert "tenant" in response.context["adminform"].form.errors
    assert not Membership.objects.filter(user=newcomer).exists()


def test_related_querysets_of_the_base_admin_follow_the_tenant(world: dict[str, Any]) -> None:
    request = RequestFactory().get("/")
    request.user = world["a_admin"]
    model_admin = admin.site._registry[Membership]
    from django.contrib.auth import get_user_model

    assert list(model_admin.related_queryset(request, Tenant)) == [world["a"]]
    assert {u.username for u in model_admin.related_queryset(request, get_user_model())} == {
        "a-owner",
        "a-admin",
        "a-member",
    }
    assert set(model_admin.related_queryset(request, Membership)) == {
        world["m"]["a_owner"],
        world["m"]["a_admin"],
        world["m"]["a_member"],
    }


# --- Changes go through services (and into the audit log) ----------------------------------------------------


def test_adding_a_member_calls_the_service_and_is_audited(world: dict[str, Any]) -> None:
    UserFactory(username="newcomer")
    Tenant.objects.filter(pk=world["a"].pk).update(tier="starter")  # room for a 4th member

    response = client_for(world["a_admin"]).post(
        reverse("admin:tenancy_membership_add"),
        {"tenant": str(world["a"].pk), "username": "newcomer", "role": Role.VIEWER},
    )

    assert response.status_code == 302
    membership = Membership.objects.get(user__username="newcomer")
    assert (membership.tenant, membership.role) == (world["a"], Role.VIEWER)
    entry = AuditLog.objects.get(action="member_added", object_id=str(membership.pk))
    assert entry.actor == world["a_admin"]
    assert entry.tenant == world["a"]


def test_the_members_quota_refusal_is_shown_and_nothing_is_added(world: dict[str, Any]) -> None:
    # given acme on the free tier (3 members) with 3 members already
    UserFactory(username="fourth")

    response = client_for(world["a_admin"]).post(
        reverse("admin:tenancy_membership_add"),
        {"tenant": str(world["a"].pk), "username": "fourth", "role": Role.MEMBER},
        follow=True,
    )

    assert response.status_code == 200
    assert any("members" in str(m).lower() for m in response.context["messages"])
    assert not Membership.objects.filter(user__username="fourth").exists()


def test_role_change_action_calls_the_service(world: dict[str, Any]) -> None:
    response = post_action(client_for(world["a_admin"]), Membership, "make_viewer", [world["m"]["a_member"]])

    assert response.status_code == 302
    world["m"]["a_member"].refresh_from_db()
    assert world["m"]["a_member"].role == Role.VIEWER
    assert AuditLog.objects.filter(action="member_role_changed", tenant=world["a"]).count() == 1


def test_an_admin_cannot_demote_the_owner_and_sees_why(world: dict[str, Any]) -> None:
    response = post_action(client_for(world["a_admin"]), Membership, "make_member", [world["m"]["a_owner"]])

    assert response.status_code == 302
    world["m"]["a_owner"].refresh_from_db()
    assert world["m"]["a_owner"].role == Role.OWNER
    assert not AuditLog.objects.filter(action="member_role_changed").exists()


def test_changing_a_role_on_the_change_page_is_audited(world: dict[str, Any]) -> None:
    membership = world["m"]["a_member"]

    response = client_for(world["a_owner"]).post(change_url(membership), {"role": Role.ADMIN})

    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.ADMIN
    assert AuditLog.objects.get(action="member_role_changed").before == {"role": "member"}


def test_the_last_owner_cannot_be_deleted_through_the_admin(world: dict[str, Any]) -> None:
    owner = world["m"]["a_owner"]

    response = client_for(world["root"]).post(
        reverse("admin:tenancy_membership_delete", args=[owner.pk]), {"post": "yes"}, follow=True
    )

    assert response.status_code == 200
    assert Membership.objects.filter(pk=owner.pk).exists()
    assert any("owner" in str(m) for m in response.context["messages"])


def test_bulk_removal_is_all_or_nothing(world: dict[str, Any]) -> None:
    selected = [world["m"]["a_member"], world["m"]["a_owner"]]

    response = post_action(client_for(world["a_owner"]), Membership, "delete_selected", selected, post="yes")

    assert response.status_code == 302
    assert Membership.objects.filter(pk__in=[m.pk for m in selected]).count() == 2
    assert not AuditLog.objects.filter(action="member_removed").exists()


def test_removing_a_member_through_the_admin_is_audited(world: dict[str, Any]) -> None:
    member = world["m"]["a_member"]

    response = client_for(world["a_admin"]).post(
        reverse("admin:tenancy_membership_delete", args=[member.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Membership.objects.filter(pk=member.pk).exists()
    assert AuditLog.objects.filter(action="member_removed", tenant=world["a"]).count() == 1


def test_a_tenant_admin_edits_the_tenant_profile_through_the_service(world: dict[str, Any]) -> None:
    tenant = world["a"]
    data = {"name": "Acme Renamed", "region": "eu", "timezone": "Europe/Paris", "currency": "EUR", "tier": "enterprise"}

    response = client_for(world["a_admin"]).post(change_url(tenant), data)

    assert response.status_code == 302
    tenant.refresh_from_db()
    assert (tenant.name, tenant.timezone, tenant.currency) == ("Acme Renamed", "Europe/Paris", "EUR")
    assert tenant.tier == "free"  # only owners change the tier; it is read-only for admins
    assert AuditLog.objects.get(action="tenant_updated").actor == world["a_admin"]


def test_an_owner_changes_the_tier_through_the_service(world: dict[str, Any]) -> None:
    tenant = world["a"]
    data = {"name": tenant.name, "region": "", "timezone": "UTC", "currency": "USD", "tier": "starter"}

    client_for(world["a_owner"]).post(change_url(tenant), data)

    tenant.refresh_from_db()
    assert tenant.tier == "starter"
    assert AuditLog.objects.filter(action="tenant_tier_changed").count() == 1


def test_an_invalid_time_zone_is_refused_with_the_services_message(world: dict[str, Any]) -> None:
    tenant = world["a"]
    data = {"name": tenant.name, "region": "", "timezone": "Mars/Olympus", "currency": "USD"}

    response = client_for(world["a_admin"]).post(change_url(tenant), data, follow=True)

    assert any("time zone" in str(m) for m in response.context["messages"])
    tenant.refresh_from_db()
    assert tenant.timezone == "UTC"


def test_tenant_admins_cannot_add_or_delete_tenants(world: dict[str, Any]) -> None:
    client = client_for(world["a_owner"])

    assert client.get(reverse("admin:tenancy_tenant_add")).status_code == 403
    assert client.get(reverse("admin:tenancy_tenant_delete", args=[world["a"].pk])).status_code == 403


def test_a_superuser_creates_a_tenant_with_an_owner_through_the_service(world: dict[str, Any]) -> None:
    data = {
        "name": "Initech",
        "slug": "initech",
        "tier": "starter",
        "region": "us",
        "timezone": "UTC",
        "currency": "USD",
        "owner_username": "b-member",
        "trial_days": "0",
    }

    response = client_for(world["root"]).post(reverse("admin:tenancy_tenant_add"), data)

    assert response.status_code == 302
    tenant = Tenant.objects.get(slug="initech")
    assert tenant.status == TenantStatus.ACTIVE
    assert Membership.objects.get(tenant=tenant).user == world["b_member"]
    assert AuditLog.objects.filter(action="tenant_created", tenant=tenant).exists()


def test_suspend_and_reactivate_are_superuser_actions_that_are_audited(world: dict[str, Any]) -> None:
    root = client_for(world["root"])

    ask = post_action(root, Tenant, "suspend_tenants", [world["b"]])
    done = post_action(root, Tenant, "suspend_tenants", [world["b"]], apply="1", reason="unpaid invoices")

    assert ask.status_code == 200 and b"Reason" in ask.content
    assert done.status_code == 302
    world["b"].refresh_from_db()
    assert (world["b"].status, world["b"].suspension_reason) == (TenantStatus.SUSPENDED, "unpaid invoices")
    post_action(root, Tenant, "reactivate_tenants", [world["b"]])
    world["b"].refresh_from_db()
    assert world["b"].status == TenantStatus.ACTIVE
    assert list(AuditLog.objects.filter(tenant=world["b"]).order_by("created_at").values_list("action", flat=True)) == [
        "tenant_suspended",
        "tenant_reactivated",
    ]


def test_tenant_admins_are_not_offered_the_suspend_action(world: dict[str, Any]) -> None:
    response = client_for(world["a_owner"]).get(changelist(Tenant))

    actions = dict(response.context["action_form"].fields["action"].choices)
    assert "export_as_csv" in actions
    assert "suspend_tenants" not in actions
    assert "reactivate_tenants" not in actions


# --- Quotas -------------------------------------------------------------------------------------------------


def test_quota_overrides_are_set_by_superusers_and_only_viewed_by_tenant_admins(world: dict[str, Any]) -> None:
    response = client_for(world["root"]).post(
        reverse("admin:tenancy_quotaoverride_add"),
        {"tenant": str(world["a"].pk), "quota_type": "members", "limit": "10", "action": "block"},
    )
    assert response.status_code == 302
    override = QuotaOverride.objects.get(tenant=world["a"])
    assert AuditLog.objects.filter(action="quota_override_set", tenant=world["a"]).exists()

    a_admin, b_admin = client_for(world["a_admin"]), client_for(world["b_admin"])
    assert [o.pk for o in result_rows(a_admin.get(changelist(QuotaOverride)))] == [override.pk]
    assert a_admin.get(change_url(override)).status_code == 200  # read-only view
    assert a_admin.post(change_url(override), {"limit": "99"}).status_code == 403
    assert a_admin.get(reverse("admin:tenancy_quotaoverride_add")).status_code == 403
    assert result_rows(b_admin.get(changelist(QuotaOverride))) == []
    assert b_admin.get(change_url(override)).status_code == 404


# --- Sharing ------------------------------------------------------------------------------------------------


@pytest.fixture
def shared(world: dict[str, Any]) -> dict[str, Any]:
    """A's service "acme:svc" shared on the marketplace with approval; B asked for access."""
    sharing.register_resource_type("widget", lambda rid: Tenant.objects.filter(slug=rid.split(":")[0]).first())
    policy = sharing.create_policy(
        resource_type="widget",
        resource_id="acme:svc",
        actor=world["a_admin"],
        visibility=Visibility.MARKETPLACE,
        requires_approval=True,
    )
    access = sharing.request_access(policy=policy, consumer=world["b"], actor=world["b_admin"])
    third = TenantFactory(slug="hooli")
    return {"policy": policy, "access": access, "third": third}


def test_requests_and_grants_are_visible_to_both_sides_only(world: dict[str, Any], shared: dict[str, Any]) -> None:
    outsider = UserFactory(username="hooli-admin")
    MembershipFactory(tenant=shared["third"], user=outsider, role=Role.OWNER)

    assert len(result_rows(client_for(world["a_admin"]).get(changelist(AccessRequest)))) == 1
    assert len(result_rows(client_for(world["b_admin"]).get(changelist(AccessRequest)))) == 1
    assert result_rows(client_for(outsider).get(changelist(AccessRequest))) == []
    assert client_for(outsider).get(change_url(shared["access"])).status_code == 404
    assert client_for(outsider).get(change_url(shared["policy"])).status_code == 404


def test_the_provider_approves_and_revokes_through_actions(world: dict[str, Any], shared: dict[str, Any]) -> None:
    provider = client_for(world["a_admin"])

    post_action(client_for(world["b_admin"]), AccessRequest, "approve_requests", [shared["access"]])
    assert not Grant.objects.exists()  # the consumer cannot approve its own request

    post_action(provider, AccessRequest, "approve_requests", [shared["access"]])
    grant = Grant.objects.get()
    post_action(provider, Grant, "revoke_grants", [grant])

    grant.refresh_from_db()
    assert grant.status == GrantStatus.REVOKED
    actions = set(AuditLog.objects.filter(tenant=world["a"]).values_list("action", flat=True))
    assert {"sharing_grant_created", "sharing_request_approved", "sharing_grant_revoked"} <= actions


def test_sharing_policies_name_tenants_by_slug_and_save_through_the_service(
    world: dict[str, Any], shared: dict[str, Any]
) -> None:
    policy = shared["policy"]
    client = client_for(world["a_admin"])

    form_page = client.get(change_url(policy))
    assert "allowed_tenants" not in form_page.context["adminform"].form.fields  # no widget listing all tenants
    data = {
        "visibility": Visibility.TENANT,
        "tier_minimum": "",
        "regions": "eu, us",
        "max_cost_per_month": "",
        "requires_approval": "on",
        "max_consumers": "3",
        "expires_at_0": "",
        "expires_at_1": "",
        "provider_share_percent": "80.00",
        "platform_fee_percent": "20.00",
        "allowed_tenant_slugs": "globex, hooli",
        "blocked_tenant_slugs": "",
    }
    response = client.post(change_url(policy), data)

    assert response.status_code == 302
    policy.refresh_from_db()
    assert (policy.visibility, policy.regions, policy.max_consumers) == (Visibility.TENANT, ["eu", "us"], 3)
    assert {t.slug for t in policy.allowed_tenants.all()} == {"globex", "hooli"}
    assert AuditLog.objects.filter(action="sharing_policy_updated", object_id=str(policy.pk)).exists()


def test_an_unknown_tenant_slug_in_a_policy_is_refused(world: dict[str, Any], shared: dict[str, Any]) -> None:
    policy = shared["policy"]
    data = {
        "visibility": Visibility.TENANT,
        "regions": "",
        "requires_approval": "on",
        "provider_share_percent": "80.00",
        "platform_fee_percent": "20.00",
        "allowed_tenant_slugs": "no-such-tenant",
    }

    response = client_for(world["a_admin"]).post(change_url(policy), data, follow=True)

    assert any("no-such-tenant" in str(m) for m in response.context["messages"])
    assert SharingPolicy.objects.get(pk=policy.pk).visibility == Visibility.MARKETPLACE


def _add_policy(client: Client, resource_id: str) -> list[str]:
    """What the admin answers to "add sharing policy" for a resource id: its messages and form errors."""
    data = {
        "resource_type": "widget",
        "resource_id": resource_id,
        "visibility": Visibility.MARKETPLACE,
        "regions": "",
        "provider_share_percent": "80.00",
        "platform_fee_percent": "20.00",
    }
    response = client.post(reverse("admin:tenancy_sharingpolicy_add"), data, follow=True)
    assert response.status_code == 200
    form = response.context.get("adminform")
    errors = [str(e) for field_errors in (form.form.errors.values() if form else []) for e in field_errors]
    return [str(m) for m in response.context["messages"]] + errors


@pytest.mark.parametrize("resource_id", ["acme:svc", "acme:unshared"], ids=["with-a-policy", "without-one"])
def test_adding_a_policy_for_another_tenants_resource_answers_not_found(
    world: dict[str, Any], shared: dict[str, Any], resource_id: str
) -> None:
    # given B's admin, who may add policies for B's resources only
    client = client_for(world["b_admin"])
    policies = SharingPolicy.objects.count()

    # when they name A's resource, and then a resource that does not exist
    foreign = _add_policy(client, resource_id)
    missing = _add_policy(client, "nobody:svc")

    # then both get the same "not found", nothing names A or says a policy exists, and nothing was saved
    assert [text.replace(resource_id, "<id>") for text in foreign] == [
        text.replace("nobody:svc", "<id>") for text in missing
    ]
    assert "not found" in " ".join(foreign).lower()
    assert SharingPolicy.objects.count() == policies


def test_a_second_policy_for_ones_own_resource_is_refused_by_the_service(
    world: dict[str, Any], shared: dict[str, Any]
) -> None:
    answer = _add_policy(client_for(world["a_admin"]), "acme:svc")

    assert answer == ["This resource already has a sharing policy; update it instead."]
    assert SharingPolicy.objects.count() == 1


# --- Audit log ----------------------------------------------------------------------------------------------


def test_the_audit_log_is_read_only_and_scoped(world: dict[str, Any], shared: dict[str, Any]) -> None:
    a_entry = AuditLog.objects.filter(tenant=world["a"]).first()
    b_entry = AuditLog.objects.filter(tenant=world["b"]).first()
    for who in ("a_admin", "root"):
        client = client_for(world[who])
        listing = client.get(changelist(AuditLog))
        actions = dict(listing.context["action_form"].fields["action"].choices)
        assert "delete_selected" not in actions
        assert client.get(reverse("admin:tenancy_auditlog_add")).status_code == 403
        assert client.get(reverse("admin:tenancy_auditlog_delete", args=[a_entry.pk])).status_code == 403
        view = client.get(change_url(a_entry))
        assert view.status_code == 200
        assert b'name="_save"' not in view.content
        assert client.post(change_url(a_entry), {"action": "forged"}).status_code == 403
    a_rows = result_rows(client_for(world["a_admin"]).get(changelist(AuditLog)))
    assert a_rows and {entry.tenant_id for entry in a_rows} == {world["a"].pk}
    assert client_for(world["a_admin"]).get(change_url(b_entry)).status_code == 404
    assert AuditLog.objects.get(pk=a_entry.pk).action == a_entry.action


# --- The base admin's own rules -------------------------------------------------------------------------------


def test_a_tenant_field_that_does_not_lead_to_a_tenant_is_refused_at_start_up() -> None:
    class Broken(TenantScopedAdmin):
        tenant_field = "user"

    with pytest.raises(ImproperlyConfigured):
        Broken(Membership, MarketplaceAdminSite(name="broken"))


def test_secret_fields_never_appear_in_forms_lists_searches_or_exports(world: dict[str, Any]) -> None:
    class WithSecret(TenantScopedAdmin):
        tenant_field = "pk"
        secret_fields = ("suspension_reason",)
        list_display = ["slug", "suspension_reason"]
        search_fields = ["slug", "suspension_reason"]

    site = MarketplaceAdminSite(name="secrets")
    model_admin = WithSecret(Tenant, site)
    request = RequestFactory().get("/")
    request.user = world["root"]

    assert "suspension_reason" not in model_admin.get_list_display(request)
    assert "suspension_reason" not in model_admin.get_search_fields(request)
    assert "suspension_reason" not in model_admin.get_export_fields(request)
    assert "suspension_reason" not in model_admin.get_fields(request, world["a"])
    assert "suspension_reason" not in model_admin.get_form(request, world["a"]).base_fields
    assert "suspension_reason" in model_admin.get_exclude(request)


def test_membership_admin_is_a_tenant_scoped_admin() -> None:
    assert isinstance(admin.site._registry[Membership], MembershipAdmin)
    assert isinstance(admin.site, MarketplaceAdminSite)
