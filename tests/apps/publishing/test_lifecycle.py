"""The lifecycle state machine, roles of each action, versions and model-id routes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from apps.publishing import lifecycle, selectors, services
from apps.publishing.exceptions import InvalidTransitionError, VersionRuleError
from apps.publishing.models import Service, ServiceVersion, Status
from apps.tenancy.models import Role
from llm_infra_django.errors import AuthorizationError, NotFoundError, QuotaExceededError, ValidationError
from tests.apps.publishing.conftest import definition
from tests.apps.tenancy.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

ALL = list(Status.values)
PAIRS = [(a, b) for a in ALL for b in ALL if a != b]


def make_version(publisher, status: str, version: str = "1.0.0") -> ServiceVersion:
    service, _ = Service.objects.get_or_create(publisher=publisher, slug="svc")
    major, minor, patch = map(int, version.split("."))
    return ServiceVersion.objects.create(
        service=service,
        version=version,
        major=major,
        minor=minor,
        patch=patch,
        status=status,
        name="Svc",
        description="A service for lifecycle tests.",
        category="chat",
        protocol="echo",
    )


@pytest.mark.parametrize(("current", "target"), PAIRS)
def test_every_transition_is_allowed_or_refused_as_specified(publisher, current: str, target: str) -> None:
    version = make_version(publisher, current)
    if target in lifecycle.TRANSITIONS[current]:
        lifecycle.transition(version, target, actor=None)
        assert ServiceVersion.objects.get(pk=version.pk).status == target
    else:
        with pytest.raises(InvalidTransitionError) as caught:
            lifecycle.transition(version, target, actor=None)
        assert caught.value.status_code == 409
        assert caught.value.details["allowed"] == lifecycle.TRANSITIONS[current]
        assert ServiceVersion.objects.get(pk=version.pk).status == current


def test_retired_is_terminal() -> None:
    assert lifecycle.TRANSITIONS[Status.RETIRED] == []


def test_staff_only_actions(publisher, publisher_admin, staff) -> None:
    version = make_version(publisher, Status.PENDING_APPROVAL)
    with pytest.raises(AuthorizationError):
        services.approve_version(version=version, actor=publisher_admin)
    services.approve_version(version=version, actor=staff)
    with pytest.raises(AuthorizationError):
        services.suspend_version(version=version, actor=publisher_admin, reason="x")
    with pytest.raises(ValidationError):
        services.suspend_version(version=version, actor=staff, reason="")
    services.suspend_version(version=version, actor=staff, reason="abuse report")
    with pytest.raises(AuthorizationError):
        services.reactivate_version(version=version, actor=publisher_admin)
    services.reactivate_version(version=version, actor=staff)


def test_publisher_admin_actions_and_outsiders(publisher, publisher_admin) -> None:
    version = make_version(publisher, Status.ACTIVE)
    outsider = UserFactory(username="outsider")
    viewer = MembershipFactory(tenant=publisher, role=Role.VIEWER).user
    for actor in (outsider, viewer):
        with pytest.raises(AuthorizationError):
            services.deprecate_version(version=version, actor=actor)
    services.deprecate_version(version=version, actor=publisher_admin)
    version.refresh_from_db()
    assert version.retire_at - version.deprecated_at == timedelta(days=30)
    services.reactivate_version(version=version, actor=publisher_admin)
    services.retire_version(version=version, actor=publisher_admin)
    assert ServiceVersion.objects.get(pk=version.pk).status == Status.RETIRED


def test_retire_due_versions_after_the_grace_period(publisher, publisher_admin) -> None:
    version = make_version(publisher, Status.ACTIVE)
    services.deprecate_version(version=version, actor=publisher_admin)
    assert services.retire_due_versions() == 0
    assert services.retire_due_versions(now=timezone.now() + timedelta(days=31)) == 1
    assert ServiceVersion.objects.get(pk=version.pk).status == Status.RETIRED


def test_the_retire_due_versions_command_and_its_beat_entry(publisher, publisher_admin, settings) -> None:
    from io import StringIO

    from django.core.management import call_command

    version = make_version(publisher, Status.ACTIVE)
    services.deprecate_version(version=version, actor=publisher_admin)
    ServiceVersion.objects.filter(pk=version.pk).update(retire_at=timezone.now() - timedelta(minutes=1))
    out = StringIO()
    call_command("retire_due_versions", stdout=out)
    assert "Retired 1 version(s)." in out.getvalue()
    assert ServiceVersion.objects.get(pk=version.pk).status == Status.RETIRED
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "publishing.retire_due_versions" in scheduled


def test_new_versions_must_strictly_increase(publisher, publisher_admin) -> None:
    service, _first, _ = services.publish_service(
        publisher=publisher, actor=publisher_admin, slug="echo", version="1.0.0", values=definition()
    )
    for bad in ("1.0.0", "0.9.9", "1.0.1-rc.1", "1.0.1+abc"):
        with pytest.raises(VersionRuleError) as caught:
            services.publish_version(service=service, actor=publisher_admin, version=bad, values=definition())
        assert caught.value.details["issues"][0]["code"] in ("VERSION_NOT_INCREMENTED", "INVALID_VERSION")
        assert caught.value.details["fields"] == {"version": [caught.value.details["issues"][0]["message"]]}
    assert service.versions.count() == 1
    second, _ = services.publish_version(
        service=service,
        actor=publisher_admin,
        version="1.1.0",
        values=definition(description="The second version of the service."),
    )
    assert second.major == 1 and second.minor == 1


def test_duplicate_slug_and_bad_input_write_nothing(publisher, publisher_admin) -> None:
    services.publish_service(
        publisher=publisher, actor=publisher_admin, slug="echo", version="1.0.0", values=definition()
    )
    from llm_infra_django.errors import ConflictError

    with pytest.raises(ConflictError):
        services.publish_service(
            publisher=publisher, actor=publisher_admin, slug="echo", version="2.0.0", values=definition()
        )
    with pytest.raises(ValidationError) as caught:
        services.publish_service(
            publisher=publisher,
            actor=publisher_admin,
            slug="other",
            version="1.0.0",
            values=definition(category="poetry", sla_timeout_ms="soon"),
        )
    assert set(caught.value.details["fields"]) == {"category", "sla_timeout_ms"}
    assert Service.objects.count() == 1


def test_services_published_quota(publisher, publisher_admin) -> None:
    publisher.trusted_publisher = True
    for index in range(5):
        services.publish_service(
            publisher=publisher, actor=publisher_admin, slug=f"svc-{index}", version="1.0.0", values=definition()
        )
    with pytest.raises(QuotaExceededError):
        services.publish_service(
            publisher=publisher, actor=publisher_admin, slug="svc-6", version="1.0.0", values=definition()
        )


def test_model_id_resolution_latest_active_and_pins(publisher, staff) -> None:
    old = make_version(publisher, Status.ACTIVE, "1.0.0")
    newest = make_version(publisher, Status.ACTIVE, "1.2.0")
    make_version(publisher, Status.PENDING_APPROVAL, "2.0.0")
    assert selectors.resolve_version("acme/svc") == newest
    assert selectors.resolve_version("acme/svc@1.0.0") == old
    lifecycle.transition(old, Status.DEPRECATED, actor=None)
    assert selectors.resolve_version("acme/svc@1.0.0") == old  # pinned deprecated versions keep working
    for unknown in ("acme/svc@2.0.0", "acme/nope", "other/svc"):
        with pytest.raises(NotFoundError):
            selectors.resolve_version(unknown)
    for malformed in ("svc", "a/b/c", "acme/svc@"):
        with pytest.raises(ValidationError):
            selectors.resolve_version(malformed)


@pytest.mark.django_db(transaction=True)
def test_routes_are_cached_and_dropped_on_status_change(publisher) -> None:
    cache.delete(selectors.route_cache_key("acme/svc"))  # another test may have cached this model id
    first = make_version(publisher, Status.ACTIVE, "1.0.0")
    second = make_version(publisher, Status.ACTIVE, "1.1.0")
    assert selectors.get_route("acme/svc").version == "1.1.0"
    assert selectors.get_route("acme/svc").version_id == str(second.pk)  # served from the cache
    lifecycle.transition(second, Status.SUSPENDED, actor=None, reason="incident")
    route = selectors.get_route("acme/svc")
    assert route.version == "1.0.0" and route.version_id == str(first.pk)
    assert route.price_input_per_mtok is None and route.protocol == "echo"
