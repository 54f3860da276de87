"""`seed_demo`: what it creates, idempotency, and the OpenAI-compatible service against real and absent upstreams."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from apps.publishing import selectors
from apps.publishing.models import Protocol, Service, ServiceVersion, Status, ValidationRun
from apps.tenancy import services as tenancy_services
from apps.tenancy.models import AuditLog, Membership, Role, SharingPolicy, Tenant, Visibility
from apps.tenancy.sharing import can_use
from tests.conftest import free_port

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = "demo-provider/echo"
LOCAL = "demo-provider/local-llm"


def seed(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("seed_demo", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def counts() -> dict[str, int]:
    models = (get_user_model(), Tenant, Membership, Service, ServiceVersion, ValidationRun, SharingPolicy, AuditLog)
    return {model.__name__: model.objects.count() for model in models}


def newest(model_id: str) -> ServiceVersion:
    publisher, slug = model_id.split("/")
    return ServiceVersion.objects.filter(service__publisher__slug=publisher, service__slug=slug).first()


def unreachable_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


def test_seed_creates_the_demo_and_a_second_run_changes_nothing(local_upstream) -> None:
    # given a real OpenAI-compatible server
    url = f"{local_upstream.url}/v1"

    # when
    out, err = seed("--upstream-url", url)

    # then: the users
    users = get_user_model().objects
    admin = users.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password("admin")
    provider_user, consumer_user = users.get(username="provider"), users.get(username="consumer")
    assert not provider_user.is_staff and provider_user.check_password("demo")
    # the tenants
    provider = Tenant.objects.get(slug="demo-provider")
    consumer = Tenant.objects.get(slug="demo-consumer")
    assert (provider.tier, provider.status, provider.trusted_publisher) == ("professional", "active", True)
    assert (consumer.tier, consumer.status, consumer.trusted_publisher) == ("starter", "active", False)
    assert Membership.objects.get(tenant=provider, user=provider_user).role == Role.OWNER
    assert Membership.objects.get(tenant=consumer, user=consumer_user).role == Role.OWNER
    # the echo service: live, priced per token, public, US
    echo = newest(ECHO)
    assert (echo.version, echo.status, echo.protocol, echo.category) == ("1.0.0", Status.ACTIVE, Protocol.ECHO, "chat")
    assert (echo.pricing_model, echo.price_input_per_mtok, echo.price_output_per_mtok) == (
        "per_token",
        Decimal("0.50"),
        Decimal("1.50"),
    )
    assert (echo.compliance_level, echo.data_residency) == ("public", ["US"])
    # the OpenAI-compatible service, probed for real
    local = newest(LOCAL)
    assert (local.status, local.protocol, local.endpoint_url) == (Status.ACTIVE, Protocol.OPENAI, url)
    assert [path for path, _headers in local_upstream.requests] == ["/v1/models"]
    # both routable and visible to every tenant, the consumer and a tenant created later
    latecomer = tenancy_services.create_tenant(name="Late", slug="late-comer", owner=None, trial_days=0)
    for version in (echo, local):
        assert selectors.get_route(version.model_id).version_id == str(version.pk)
        policy = SharingPolicy.objects.get(resource_type="service", resource_id=str(version.service_id))
        assert (policy.visibility, policy.requires_approval) == (Visibility.PUBLIC, False)
        assert can_use(consumer, "service", str(version.service_id))
        assert can_use(latecomer, "service", str(version.service_id))
    # every change went through the services: audited
    actions = set(AuditLog.objects.values_list("action", flat=True))
    assert {
        "user_created",
        "tenant_created",
        "member_added",
        "tenant_trusted_publisher_changed",
        "service_created",
        "service_version_active",
        "sharing_policy_created",
    } <= actions
    # what it prints
    assert "http://127.0.0.1:8000/admin/" in out
    for text in ("admin     admin", "provider  demo", "consumer  demo", ECHO, LOCAL, url):
        assert text in out
    assert "curl http://127.0.0.1:8000/v1/chat/completions" in out
    assert 'OpenAI(base_url="http://127.0.0.1:8000/v1"' in out
    assert "export KEY=$(.venv/bin/python manage.py create_api_key --tenant demo-consumer --scopes consume,read" in out
    assert "mk_" not in out  # no invented key
    assert "local use only" in err

    # when run again
    before = counts()
    again, _ = seed("--upstream-url", url)

    # then nothing was created, changed or audited
    assert counts() == before
    assert "nothing to do" in again
    assert "admin     admin" in again  # the login still printed
    assert newest(ECHO).pk == echo.pk and newest(LOCAL).pk == local.pk


def test_an_unreachable_upstream_leaves_local_llm_failed_and_the_command_succeeds() -> None:
    url = unreachable_url()

    out, _ = seed("--upstream-url", url)

    local = newest(LOCAL)
    assert local.status == Status.FAILED_VALIDATION
    assert "ENDPOINT_UNREACHABLE" in str(ValidationRun.objects.get(version=local).steps.get(name="probe").messages)
    assert newest(ECHO).status == Status.ACTIVE
    assert "failed_validation" in out
    assert f"GET {url}/models failed" in out
    assert "run seed_demo again" in out
    # and a second run with the upstream still down creates nothing
    before = counts()
    seed("--upstream-url", url)
    assert counts() == before


def test_a_failed_service_gets_a_new_version_once_its_upstream_answers(local_upstream) -> None:
    # given a first run while the upstream is unhealthy
    local_upstream.status = 503
    url = f"{local_upstream.url}/v1"
    seed("--upstream-url", url)
    assert newest(LOCAL).status == Status.FAILED_VALIDATION

    # when the upstream recovers and seed_demo runs again
    local_upstream.status = 200
    out, _ = seed("--upstream-url", url)

    # then a new patch version went through the pipeline and is the one served
    local = newest(LOCAL)
    assert (local.version, local.status) == ("1.0.1", Status.ACTIVE)
    assert selectors.resolve_version(LOCAL).pk == local.pk
    assert "published demo-provider/local-llm@1.0.1 (its endpoint answers now)" in out


def test_a_new_upstream_url_publishes_a_new_version(local_upstream) -> None:
    seed("--upstream-url", unreachable_url())

    out, _ = seed("--upstream-url", local_upstream.url, "--upstream-model", "qwen2.5")

    local = newest(LOCAL)
    assert (local.version, local.status, local.endpoint_url) == ("1.0.1", Status.ACTIVE, local_upstream.url)
    assert local.upstream_model == "qwen2.5"
    assert "(the endpoint changed)" in out
    assert ServiceVersion.objects.filter(service=local.service).count() == 2


def test_options_come_from_the_environment(monkeypatch, local_upstream) -> None:
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "s3cret-admin")
    monkeypatch.setenv("DEMO_UPSTREAM_URL", local_upstream.url)
    monkeypatch.setenv("DEMO_SITE_URL", "http://demo.example:9000")

    out, _ = seed()

    assert get_user_model().objects.get(username="admin").check_password("s3cret-admin")
    assert newest(LOCAL).endpoint_url == local_upstream.url
    assert "http://demo.example:9000/admin/" in out
    assert "admin     s3cret-admin" in out


def test_existing_tenants_and_users_are_completed_not_duplicated() -> None:
    # given a consumer tenant created earlier by someone else, and a user whose password was changed
    other = get_user_model().objects.create_user(username="someone", password="x")
    tenancy_services.create_tenant(name="Mine", slug="demo-consumer", owner=other, tier="free", trial_days=0)
    get_user_model().objects.create_user(username="provider", password="changed")

    out, _ = seed("--upstream-url", unreachable_url())

    consumer = Tenant.objects.get(slug="demo-consumer")
    owners = set(Membership.objects.filter(tenant=consumer, role=Role.OWNER).values_list("user__username", flat=True))
    assert owners == {"someone", "consumer"}
    assert consumer.tier == "free"  # an existing tenant's tier is not overridden
    assert "is on the free tier" in out
    assert get_user_model().objects.get(username="provider").check_password("changed")
    assert "provider  (existing password kept)" in out
    assert Tenant.objects.filter(slug__startswith="demo-").count() == 2


def test_a_bad_upstream_url_is_refused() -> None:
    with pytest.raises(CommandError, match="--upstream-url must be an http"):
        seed("--upstream-url", "ftp://example.com")
    assert not Tenant.objects.exists()
