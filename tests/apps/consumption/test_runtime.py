"""Routes of model ids: a model whose version cannot be served says why — but only to tenants that may use it (its
publisher, tenants with access); to any other tenant it is as unknown as a model that does not exist."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.consumption.services import create_api_key
from apps.publishing import services as publishing
from apps.publishing.models import ServiceVersion, Status
from apps.tenancy import sharing
from apps.tenancy.models import Role, Tier
from tests.apps.consumption.conftest import ECHO_DEFINITION
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

UNKNOWN = "The model '{model}' does not exist or is not available."


def key_of(tenant: Any) -> str:
    return create_api_key(tenant=tenant, actor=tenant.owner, name="test")[1]


def publish(provider: Any, slug: str, **values: Any) -> ServiceVersion:
    _, version, _ = publishing.publish_service(
        publisher=provider, actor=provider.owner, slug=slug, version="1.0.0", values={**ECHO_DEFINITION, **values}
    )
    version.refresh_from_db()
    return version


@pytest.fixture
def outsider(transactional_db: Any) -> Any:
    """A tenant the provider's sharing policies block."""
    owner = UserFactory(username="outsider-owner")
    tenant = TenantFactory(slug="initech", tier=Tier.PROFESSIONAL)
    MembershipFactory(tenant=tenant, user=owner, role=Role.OWNER)
    tenant.owner = owner
    return tenant


@pytest.fixture
def staff(transactional_db: Any) -> Any:
    return UserFactory(username="platform-staff", is_staff=True, is_superuser=True)


def share(provider: Any, version: ServiceVersion, *, blocked: list[str]) -> None:
    """Open the service to the marketplace without approval, except to the `blocked` tenants."""
    sharing.create_policy(
        resource_type="service",
        resource_id=str(version.service_id),
        actor=provider.owner,
        visibility="marketplace",
        requires_approval=False,
        blocked_tenants=blocked,
    )


def error_of(model: str, secret: str) -> tuple[int, str]:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}]}
    response = Client().post(
        "/v1/chat/completions", body, content_type="application/json", headers={"Authorization": f"Bearer {secret}"}
    )
    return response.status_code, response.json()["error"]["message"]


def failed_version(provider: Any) -> ServiceVersion:
    """`acme/broken`, which fails the publishing pipeline's policy step (a sanctioned data residency)."""
    version = publish(provider, "broken", data_residency=["US", "KP"])
    assert version.status == Status.FAILED_VALIDATION
    return version


def test_a_failed_validation_is_named_to_its_publisher_and_to_tenants_with_access(provider, consumer, outsider) -> None:
    # given a version that failed validation, shared with everyone but the outsider
    version = failed_version(provider)
    share(provider, version, blocked=["initech"])

    # when its publisher and a tenant with access call it
    answers = [error_of("acme/broken", key_of(tenant)) for tenant in (provider, consumer)]

    # then both learn why
    expected = "The model 'acme/broken' is not available: its version 1.0.0 failed validation"
    assert [status for status, _ in answers] == [404, 404]
    assert all(message.startswith(expected) for _, message in answers), answers


def test_a_tenant_without_access_cannot_tell_an_unavailable_model_from_an_unknown_one(provider, outsider) -> None:
    # given a version that failed validation, and a policy blocking the outsider
    version = failed_version(provider)
    share(provider, version, blocked=["initech"])
    secret = key_of(outsider)

    # when the outsider calls it, a pinned version of it, and models that do not exist
    answers = {
        model: error_of(model, secret)
        for model in ("acme/broken", "acme/broken@1.0.0", "acme/nothing", "nobody/nothing")
    }

    # then every answer is the same bare 404
    assert answers == {model: (404, UNKNOWN.format(model=model)) for model in answers}


@pytest.mark.parametrize(
    ("change", "model", "reason"),
    [
        ("suspend", "acme/echo", "its version 1.0.0 is suspended"),
        ("suspend", "acme/echo@1.0.0", "its version 1.0.0 is suspended"),
        ("deprecate", "acme/echo", "its version 1.0.0 is deprecated; 'acme/echo@1.0.0' can be called until it retires"),
        ("retire", "acme/echo@1.0.0", "its version 1.0.0 is retired"),
        ("untrusted", "acme/echo", "its version 1.0.0 is waiting for a platform admin's approval"),
    ],
)
def test_each_unavailable_status_says_so(provider, consumer, staff, change: str, model: str, reason: str) -> None:
    # given a version taken off the air (or waiting for approval: its publisher is not trusted)
    if change == "untrusted":
        provider.trusted_publisher = False
        provider.save()
    version = publish(provider, "echo")
    if change == "suspend":
        publishing.suspend_version(version=version, actor=staff, reason="abuse report")
    elif change == "deprecate":
        publishing.deprecate_version(version=version, actor=provider.owner)
    elif change == "retire":
        publishing.retire_version(version=version, actor=provider.owner)

    # when a tenant with access calls it
    status, message = error_of(model, key_of(consumer))

    # then
    assert (status, message) == (404, f"The model '{model}' is not available: {reason}.")


def test_a_pinned_deprecated_version_is_still_served(provider, consumer) -> None:
    # given
    version = publish(provider, "echo")
    publishing.deprecate_version(version=version, actor=provider.owner)

    # when
    response = Client().post(
        "/v1/chat/completions",
        {"model": "acme/echo@1.0.0", "messages": [{"role": "user", "content": "Hi"}]},
        content_type="application/json",
        headers={"Authorization": f"Bearer {key_of(consumer)}"},
    )

    # then
    assert response.status_code == 200, response.content
