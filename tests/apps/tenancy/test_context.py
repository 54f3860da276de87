"""Tenant context: API key tenant, X-Tenant only for members, the single membership; never a header alone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from apps.tenancy.context import require_tenant, resolve_tenant, tenant_for_logs
from apps.tenancy.models import Role
from llm_infra_django.errors import AuthenticationError, AuthorizationError, ValidationError
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


def request_for(user, header: str | None = None, auth=None):
    extra = {"HTTP_X_TENANT": header} if header else {}
    request = RequestFactory().get("/", **extra)
    request.user = user
    if auth is not None:
        request.auth = auth
    return request


def test_single_membership_is_the_tenant(tenant, owner) -> None:
    request = request_for(owner)
    assert resolve_tenant(request) == tenant
    assert tenant_for_logs(request) == "acme"


def test_header_picks_among_memberships(tenant, owner) -> None:
    other = TenantFactory(slug="other")
    MembershipFactory(tenant=other, user=owner, role=Role.VIEWER)
    assert resolve_tenant(request_for(owner, "other")) == other
    with pytest.raises(ValidationError) as caught:
        resolve_tenant(request_for(owner), required=True)
    assert "X-Tenant" in caught.value.details["fields"]


def test_header_alone_never_grants_access(tenant) -> None:
    stranger = UserFactory(username="mallory")
    with pytest.raises(AuthorizationError):
        resolve_tenant(request_for(stranger, "acme"))
    with pytest.raises(AuthorizationError):
        resolve_tenant(request_for(stranger, "no-such-tenant"))
    with pytest.raises(AuthenticationError):
        resolve_tenant(request_for(AnonymousUser(), "acme"))


def test_a_header_no_slug_can_match_is_refused_like_an_unknown_tenant(tenant, owner) -> None:
    # a NUL character reached the database, which refuses to compare it: a 500 on every endpoint
    with pytest.raises(AuthorizationError):
        resolve_tenant(request_for(owner, "ac\x00me"))


def test_api_key_tenant_wins_and_a_conflicting_header_is_refused(tenant) -> None:
    other = TenantFactory(slug="other")
    key = SimpleNamespace(tenant_id=other.pk, tenant=other)
    assert resolve_tenant(request_for(AnonymousUser(), auth=key)) == other
    with pytest.raises(AuthorizationError):
        resolve_tenant(request_for(AnonymousUser(), "acme", auth=key))


def test_no_tenant_when_required(db) -> None:
    with pytest.raises(AuthorizationError):
        resolve_tenant(request_for(UserFactory(username="loner")), required=True)
    assert resolve_tenant(request_for(AnonymousUser())) is None


def test_a_required_tenant_is_the_request_s_or_an_error_saying_why(tenant, owner) -> None:
    # given
    other = TenantFactory(slug="other")
    MembershipFactory(tenant=other, user=owner, role=Role.VIEWER)

    # then
    assert require_tenant(request_for(owner, "other")) == other
    with pytest.raises(ValidationError):
        require_tenant(request_for(owner))
    with pytest.raises(AuthorizationError):
        require_tenant(request_for(UserFactory(username="loner")))
