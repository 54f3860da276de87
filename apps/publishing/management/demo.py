"""The demo data of `seed_demo`, converged through the services: every step creates what is missing, nothing else."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from apps.publishing import selectors, services
from apps.publishing.models import Protocol, Service, ServiceVersion, Status
from apps.publishing.pipeline import STEP_FUNCTIONS, StepFailed
from apps.tenancy import services as tenancy_services
from apps.tenancy import sharing
from apps.tenancy.audit import record_audit
from apps.tenancy.models import Role, Tenant, Visibility
from apps.tenancy.selectors import get_role, list_policies_for_tenant, list_tenants_for_user

ADMIN_USERNAME = "admin"
PROVIDER_USERNAME = "provider"
CONSUMER_USERNAME = "consumer"
PROVIDER_SLUG = "demo-provider"
CONSUMER_SLUG = "demo-consumer"
PROVIDER_TIER = "professional"  # tenancy's Tier values
CONSUMER_TIER = "starter"
ECHO_SLUG = "echo"
LOCAL_SLUG = "local-llm"
DEFAULT_UPSTREAM_URL = "http://127.0.0.1:11434/v1"  # Ollama's OpenAI-compatible API
DEFAULT_UPSTREAM_MODEL = "llama3.2"
FIRST_VERSION = "1.0.0"


def echo_definition() -> dict[str, Any]:
    """The `demo-provider/echo` service: the built-in echo provider, per-token pricing, public."""
    return {
        "name": "Echo (demo)",
        "description": (
            "The marketplace's built-in echo provider: answers chat, completion and embedding requests "
            "deterministically and without network (the reply echoes the last user message), with real token counts "
            "from a simple documented tokenizer. Try the marketplace end to end with it."
        ),
        "category": "chat",
        "tags": ["demo", "echo", "chat", "embeddings"],
        "capabilities": [
            {"name": "chat", "description": "Chat completions, streamed or not.", "parameters": {"max_tokens": 8192}},
            {"name": "completions", "description": "Legacy text completions.", "parameters": {}},
            {"name": "embeddings", "description": "Deterministic unit vectors.", "parameters": {"dimensions": 64}},
        ],
        "protocol": Protocol.ECHO,
        "upstream_model": "echo-1",
        "pricing_model": "per_token",
        "price_input_per_mtok": "0.50",
        "price_output_per_mtok": "1.50",
        "sla_availability": "99.9",
        "sla_max_latency_ms": 100,
        "sla_timeout_ms": 5000,
        "support_level": "basic",
        "compliance_level": "public",
        "data_residency": ["US"],
        "context_length": 8192,
        "modalities": ["text"],
    }


def local_definition(url: str, model: str) -> dict[str, Any]:
    """The `demo-provider/local-llm` service: an OpenAI-compatible server at `url` serving `model`."""
    return {
        "name": "Local LLM (demo)",
        "description": (
            "An OpenAI-compatible server of your own (Ollama, vLLM, llama.cpp) published through the marketplace; "
            "seed_demo points it at --upstream-url."
        ),
        "category": "chat",
        "tags": ["demo", "local", "chat"],
        "capabilities": [{"name": "chat", "description": "Chat completions, streamed or not.", "parameters": {}}],
        "protocol": Protocol.OPENAI,
        "endpoint_url": url,
        "upstream_model": model,
        "pricing_model": "per_token",
        "price_input_per_mtok": "0.20",
        "price_output_per_mtok": "0.60",
        "sla_availability": "99.0",
        "sla_max_latency_ms": 30000,
        "sla_timeout_ms": 120000,
        "support_level": "basic",
        "compliance_level": "public",
        "data_residency": ["US"],
        "context_length": 8192,
        "modalities": ["text"],
    }


@dataclass
class ServiceOutcome:
    """Where a demo service stands after seeding: its newest version, what this run did, and why it failed."""

    model_id: str
    version: ServiceVersion
    action: str
    problem: str = ""


@dataclass
class SeedResult:
    """What `seed_demo` found or made."""

    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # username → (user, created by this run, whether the password given to this run logs it in)
    users: dict[str, tuple[Any, bool, bool]] = field(default_factory=dict)
    services: dict[str, ServiceOutcome] = field(default_factory=dict)


# --- Users and tenants --------------------------------------------------------------------------------------


def ensure_user(result: SeedResult, username: str, password: str, *, superuser: bool = False) -> Any:
    """The user named `username`, created with `password` when missing (an existing user is left as it is)."""
    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    if user is not None:
        result.users[username] = (user, False, user.check_password(password))
        if superuser and not user.is_superuser:
            result.notes.append(f"User {username!r} exists but is not a superuser; it was left unchanged.")
        return user
    with transaction.atomic():
        email = f"{username}@demo.invalid"
        if superuser:
            user = user_model.objects.create_superuser(username=username, email=email, password=password)
        else:
            user = user_model.objects.create_user(username=username, email=email, password=password)
        record_audit(
            action="user_created",
            tenant=None,
            actor=None,
            obj=user,
            after={"username": username, "is_superuser": superuser, "source": "seed_demo"},
        )
    result.users[username] = (user, True, True)
    result.changes.append(f"created user {username}" + (" (superuser)" if superuser else ""))
    return user


def ensure_tenant(result: SeedResult, *, slug: str, name: str, tier: str, owner: Any, admin: Any) -> Tenant:
    """The tenant `slug` (created active, with `owner` as its owner); an existing one gains `owner` if missing."""
    tenant = list_tenants_for_user(admin).filter(slug=slug).first()
    if tenant is None:
        tenant = tenancy_services.create_tenant(name=name, slug=slug, owner=owner, tier=tier, trial_days=0)
        result.changes.append(f"created tenant {slug} ({tier}) owned by {owner.get_username()}")
    elif get_role(tenant, owner) is None:
        tenancy_services.add_member(tenant=tenant, user=owner, role=Role.OWNER, actor=admin)
        result.changes.append(f"made {owner.get_username()} an owner of {slug}")
    if tenant.tier != tier:
        result.notes.append(f"Tenant {slug} is on the {tenant.tier} tier (the demo uses {tier}); left unchanged.")
    if not tenant.is_operational:
        result.notes.append(f"Tenant {slug} is {tenant.status}: it cannot publish or consume until reactivated.")
    return tenant


def trust_publisher(result: SeedResult, tenant: Tenant, actor: Any) -> Tenant:
    """Make the tenant a trusted publisher (its public services go live without manual approval)."""
    if tenant.trusted_publisher:
        return tenant
    tenant = tenancy_services.set_trusted_publisher(tenant=tenant, trusted=True, actor=actor)
    result.changes.append(f"made {tenant.slug} a trusted publisher")
    return tenant


# --- Services -----------------------------------------------------------------------------------------------


def _settled(version: ServiceVersion, wait_seconds: float) -> ServiceVersion:
    """The version once the pipeline is done with it (instant when tasks run eagerly; polled with a worker)."""
    deadline = time.monotonic() + wait_seconds
    version.refresh_from_db()
    while version.status in (Status.DRAFT, Status.VALIDATING) and time.monotonic() < deadline:
        time.sleep(0.2)
        version.refresh_from_db()
    return version


def _next_patch(service: Service) -> str:
    latest = selectors.latest_version(service, include_retired=True)
    return FIRST_VERSION if latest is None else f"{latest.major}.{latest.minor}.{latest.patch + 1}"


def _reachable_now(version: ServiceVersion) -> bool:
    """Whether the pipeline's endpoint probe would pass today for this (failed) version (nothing is written)."""
    try:
        STEP_FUNCTIONS["probe"](version)
    except StepFailed:
        return False
    return True


def ensure_service(
    result: SeedResult,
    *,
    publisher: Tenant,
    actor: Any,
    admin: Any,
    slug: str,
    values: dict[str, Any],
    wait_seconds: float,
) -> ServiceOutcome:
    """Publish the service when missing. An existing one gets a new patch version only when its endpoint changed,
    or when its newest version failed validation and its endpoint answers now; one waiting for approval is approved
    by the platform admin. Anything else (active, deprecated, suspended, retired) is left as it is."""
    model_id = f"{publisher.slug}/{slug}"
    service = Service.objects.filter(publisher=publisher, slug=slug).first()
    if service is None:
        _, version, _ = services.publish_service(
            publisher=publisher, actor=actor, slug=slug, version=FIRST_VERSION, values=values
        )
        action = f"published {model_id}@{FIRST_VERSION}"
    else:
        version = selectors.latest_version(service, include_retired=True)
        endpoint = (values.get("endpoint_url", ""), values.get("upstream_model", ""))
        changed = version is not None and (version.endpoint_url, version.upstream_model) != endpoint
        retry = (
            version is not None
            and not changed
            and version.status == Status.FAILED_VALIDATION
            and version.protocol == Protocol.OPENAI
            and _reachable_now(version)
        )
        if version is None or changed or retry:
            number = _next_patch(service)
            version, _ = services.publish_version(service=service, actor=actor, version=number, values=values)
            why = "the endpoint changed" if changed else "its endpoint answers now" if retry else "it had none"
            action = f"published {model_id}@{number} ({why})"
        else:
            action = ""
    version = _settled(version, wait_seconds)
    if version.status == Status.PENDING_APPROVAL:
        version = services.approve_version(version=version, actor=admin, notes="Demo service approved by seed_demo.")
        action = (action + "; " if action else "") + f"approved {model_id}@{version.version}"
    if action:
        result.changes.append(action)
    problem = version.review_notes if version.status == Status.FAILED_VALIDATION else ""
    outcome = ServiceOutcome(model_id=model_id, version=version, action=action or "unchanged", problem=problem)
    result.services[model_id] = outcome
    return outcome


def ensure_public(result: SeedResult, *, version: ServiceVersion, actor: Any) -> None:
    """A sharing policy making the service visible to every tenant: public, no approval needed."""
    service = version.service
    policy = list_policies_for_tenant(service.publisher).filter(resource_type="service", resource_id=str(service.pk))
    existing = policy.first()
    if existing is None:
        sharing.create_policy(
            resource_type="service",
            resource_id=str(service.pk),
            actor=actor,
            visibility=Visibility.PUBLIC,
            requires_approval=False,
        )
        result.changes.append(f"shared {service} publicly (no approval needed)")
    elif existing.visibility != Visibility.PUBLIC or existing.requires_approval:
        sharing.update_policy(policy=existing, actor=actor, visibility=Visibility.PUBLIC, requires_approval=False)
        result.changes.append(f"made the sharing policy of {service} public without approval")


# --- Everything ---------------------------------------------------------------------------------------------


def seed(
    *,
    admin_password: str,
    user_password: str,
    upstream_url: str,
    upstream_model: str,
    wait_seconds: float = 30.0,
) -> SeedResult:
    """Converge the database to the demo data; safe to run any number of times."""
    result = SeedResult()
    admin = ensure_user(result, ADMIN_USERNAME, admin_password, superuser=True)
    provider_user = ensure_user(result, PROVIDER_USERNAME, user_password)
    consumer_user = ensure_user(result, CONSUMER_USERNAME, user_password)
    provider = ensure_tenant(
        result, slug=PROVIDER_SLUG, name="Demo Provider", tier=PROVIDER_TIER, owner=provider_user, admin=admin
    )
    ensure_tenant(
        result, slug=CONSUMER_SLUG, name="Demo Consumer", tier=CONSUMER_TIER, owner=consumer_user, admin=admin
    )
    provider = trust_publisher(result, provider, admin)
    for slug, values in (
        (ECHO_SLUG, echo_definition()),
        (LOCAL_SLUG, local_definition(upstream_url, upstream_model)),
    ):
        outcome = ensure_service(
            result,
            publisher=provider,
            actor=provider_user,
            admin=admin,
            slug=slug,
            values=values,
            wait_seconds=wait_seconds,
        )
        ensure_public(result, version=outcome.version, actor=provider_user)
    return result
