"""State changes of the publishing app: publish a service, add versions, lifecycle actions, dry-run validation."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, models, transaction

from apps.publishing import hooks, lifecycle, pipeline, selectors
from apps.publishing.crypto import encrypt_secret
from apps.publishing.exceptions import VersionRuleError
from apps.publishing.models import AuthKind, Service, ServiceVersion, Status, ValidationRun, ValidationStep
from apps.publishing.validation import Issue, openapi_issues, schema_issues
from apps.publishing.versioning import VersionError, parse_version
from apps.tenancy.audit import record_audit
from apps.tenancy.models import QuotaType, Role, Tenant
from apps.tenancy.quotas import enforce_count
from apps.tenancy.services import is_platform_staff, require_role
from llm_infra_django.errors import AuthorizationError, ConflictError, ValidationError
from llm_infra_django.jsonvalues import unstorable

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,61}[a-z0-9]$")

# Fields of a version a provider sets (the API's nested representation is flattened to these by the serializer).
VERSION_FIELDS = (
    "name",
    "description",
    "category",
    "tags",
    "capabilities",
    "endpoint_url",
    "protocol",
    "upstream_model",
    "auth_kind",
    "pricing_model",
    "price_input_per_mtok",
    "price_output_per_mtok",
    "price_cached_input_per_mtok",
    "price_per_request",
    "currency",
    "sla_availability",
    "sla_max_latency_ms",
    "sla_timeout_ms",
    "support_level",
    "compliance_level",
    "certifications",
    "data_residency",
    "gdpr_compliant",
    "hipaa_compliant",
    "context_length",
    "modalities",
    "openapi_document",
    "serves",
)
# A catalog model a version offers: `<owner>/<model-slug>` or `…@<version>` (what the reference names is checked by
# the catalog through `hooks.serves_issues`; this is its shape only).
SERVES_REF_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*/[a-z0-9]+(?:-[a-z0-9]+)*(?:@[0-9A-Za-z.+-]{1,64})?$")
MAX_SERVES = 20


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    """Values converted by their model fields (strings to Decimals and so on); bad ones named in a 400."""
    from django.core.exceptions import ValidationError as DjangoValidationError

    errors: dict[str, list[str]] = {}
    for name, value in values.items():
        field = ServiceVersion._meta.get_field(name)
        try:
            if isinstance(field, models.URLField):
                # Endpoints may be single-label hosts (http://ollama:11434/v1): check the shape, not a TLD.
                values[name] = _endpoint_url(field.to_python(value), field.max_length or 500)
            else:
                values[name] = None if value is None and field.null else field.clean(value, None)
        except DjangoValidationError as exc:
            errors[name] = [str(m) for m in exc.messages]
            continue
        problems = unstorable(values[name], name)
        if problems:
            errors[name] = sorted(set(problems.values()))
    for index, tag in enumerate(values.get("tags") or []):
        if not isinstance(tag, str) or not tag or "," in tag or len(tag) > 50:
            errors[f"tags[{index}]"] = ["A tag is 1-50 characters without commas."]
    errors.update(_serves_shape_errors(values.get("serves")))
    if errors:
        raise ValidationError(fields=errors)
    return values


def _serves_shape_errors(serves: Any) -> dict[str, list[str]]:
    if serves is None:
        return {}
    if not isinstance(serves, list) or len(serves) > MAX_SERVES:
        return {"serves": [f"A list of at most {MAX_SERVES} catalog models."]}
    errors = {}
    for index, ref in enumerate(serves):
        if not isinstance(ref, str) or not SERVES_REF_RE.match(ref):
            errors[f"serves[{index}]"] = ["A catalog model: '<owner>/<model-slug>' or '…@<version>'."]
        elif ref in serves[:index]:
            errors[f"serves[{index}]"] = ["Listed twice."]
    return errors


def _check_serves(publisher: Tenant, version: ServiceVersion) -> None:
    """400 naming `serves[<i>]` for each catalog model the publisher may not offer (when an app above publishing
    registered the check: see `hooks.register_serves_checker`)."""
    if version.serves:
        issues = hooks.serves_issues(publisher, list(version.serves))
        if issues:
            raise ValidationError(fields=issues)


def _endpoint_url(value: str, max_length: int) -> str:
    from urllib.parse import urlsplit

    from django.core.exceptions import ValidationError as DjangoValidationError

    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(value) > max_length:
        raise DjangoValidationError(f"An http(s) URL with a host, at most {max_length} characters.")
    return value


def _build_version(service: Service | None, version: str, values: Mapping[str, Any]) -> ServiceVersion:
    """An unsaved version from validated values (`upstream_secret` is encrypted, never kept in clear)."""
    unknown = set(values) - set(VERSION_FIELDS) - {"upstream_secret"}
    if unknown:
        raise ValidationError(fields={name: ["Unknown field."] for name in sorted(unknown)})
    fields = _coerce({k: v for k, v in values.items() if k in VERSION_FIELDS})
    secret = values.get("upstream_secret") or ""
    if secret and fields.get("auth_kind", AuthKind.NONE) == AuthKind.NONE:
        raise ValidationError(fields={"endpoint.auth.kind": ["A secret needs auth kind api_key or bearer."]})
    if fields.get("auth_kind") in (AuthKind.API_KEY, AuthKind.BEARER) and not secret:
        raise ValidationError(fields={"endpoint.auth.secret": ["This auth kind needs a secret."]})
    try:
        major, minor, patch = parse_version(version)
    except VersionError as exc:
        raise VersionRuleError("INVALID_VERSION", str(exc)) from None
    instance = ServiceVersion(service=service, version=version, major=major, minor=minor, patch=patch, **fields)
    instance.upstream_secret_encrypted = encrypt_secret(secret)
    return instance


def _check_increment(service: Service, candidate: ServiceVersion) -> None:
    latest = selectors.latest_version(service, include_retired=True)
    if latest and (candidate.major, candidate.minor, candidate.patch) <= (latest.major, latest.minor, latest.patch):
        raise VersionRuleError(
            "VERSION_NOT_INCREMENTED", f"{candidate.version} is not greater than the latest version {latest.version}."
        )


def _conflict_if_model_slug(publisher: Tenant, slug: str) -> None:
    """One namespace per tenant: a service's slug may not be one of the tenant's catalog model slugs (both are
    called as `<tenant>/<slug>`). The catalog is a peer app: reached through the app registry, never imported."""
    from django.apps import apps

    if not apps.is_installed("apps.catalog"):
        return
    catalog_models = apps.get_model("catalog", "CatalogModel")
    if catalog_models._default_manager.filter(owner=publisher, slug=slug).exists():
        raise ConflictError(
            f"'{publisher.slug}/{slug}' already names one of your catalog models: model and service ids share one "
            "namespace.",
            details={"field": "slug"},
        )


def _submit(version: ServiceVersion, actor: Any) -> ValidationRun:
    """draft → validating, and the pipeline queued after commit (it runs eagerly without a broker)."""
    lifecycle.transition(version, Status.VALIDATING, actor=actor)
    run = ValidationRun.objects.create(version=version)
    transaction.on_commit(lambda: pipeline.start(str(run.pk)))
    return run


@transaction.atomic
def publish_service(
    *, publisher: Tenant, actor: Any, slug: str, version: str, values: Mapping[str, Any]
) -> tuple[Service, ServiceVersion, ValidationRun]:
    """Create a service with its first version and start the publishing pipeline."""
    require_role(publisher, actor, Role.ADMIN)
    if not publisher.is_operational:
        raise ConflictError(f"Tenant '{publisher.slug}' is {publisher.status} and cannot publish.")
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        raise ValidationError(fields={"slug": ["Use 2-63 lower-case letters, digits and single hyphens."]})
    candidate = _build_version(None, version, values)
    _check_serves(publisher, candidate)
    locked = Tenant.objects.select_for_update().get(pk=publisher.pk)
    _conflict_if_model_slug(locked, slug)
    enforce_count(locked, QuotaType.SERVICES_PUBLISHED, current=selectors.count_services_published(locked))
    try:
        with transaction.atomic():
            service = Service.objects.create(publisher=locked, slug=slug)
    except IntegrityError:
        raise ConflictError(
            f"'{publisher.slug}/{slug}' already exists; publish a new version instead.", details={"field": "slug"}
        ) from None
    candidate.service = service
    candidate.save()
    record_audit(
        action="service_created", tenant=locked, actor=actor, obj=service, after={"slug": slug, "version": version}
    )
    run = _submit(candidate, actor)
    return service, candidate, run


@transaction.atomic
def publish_version(
    *, service: Service, actor: Any, version: str, values: Mapping[str, Any]
) -> tuple[ServiceVersion, ValidationRun]:
    """Add a strictly greater version to a service and start the pipeline."""
    require_role(service.publisher, actor, Role.ADMIN)
    candidate = _build_version(service, version, values)
    _check_serves(service.publisher, candidate)
    Service.objects.select_for_update().get(pk=service.pk)
    _check_increment(service, candidate)
    candidate.save()
    return candidate, _submit(candidate, actor)


def dry_run(
    *, version: str, values: Mapping[str, Any], service: Service | None = None, publisher: Tenant | None = None
) -> list[dict[str, Any]]:
    """Steps 1-3 of the pipeline on an unsaved definition; nothing is written. The catalog models of `serves` are
    checked (in the schema step) for the service's publisher, else for `publisher` when given."""
    try:
        candidate = _build_version(service, version, values)
    except VersionRuleError as exc:
        return [{"name": "schema", "outcome": "failed", "messages": exc.details["issues"]}]
    if service is not None:
        try:
            _check_increment(service, candidate)
        except VersionRuleError as exc:
            return [{"name": "schema", "outcome": "failed", "messages": exc.details["issues"]}]
    publisher = service.publisher if service is not None else publisher
    refused = hooks.serves_issues(publisher, list(candidate.serves)) if publisher and candidate.serves else {}
    serves = [Issue("SERVES_REFUSED", path, message) for path, messages in refused.items() for message in messages]
    steps = []
    for name, issues in (
        ("schema", [*schema_issues(candidate), *serves]),
        ("openapi", openapi_issues(candidate.openapi_document)),
        ("policy", pipeline.policy_step_issues(candidate, tenant_slug=service.publisher.slug if service else None)),
    ):
        failed = any(i.severity != "warning" for i in issues)
        steps.append(
            {"name": name, "outcome": "failed" if failed else "passed", "messages": [i.as_dict() for i in issues]}
        )
    return steps


# --- Lifecycle actions --------------------------------------------------------------------------------------


def _require_publisher_admin(version: ServiceVersion, actor: Any) -> None:
    if not is_platform_staff(actor):
        require_role(version.service.publisher, actor, Role.ADMIN)


def _require_staff(actor: Any, what: str) -> None:
    if not is_platform_staff(actor):
        raise AuthorizationError(f"Only platform staff can {what}.")


def approve_version(*, version: ServiceVersion, actor: Any, notes: str = "") -> ServiceVersion:
    """Platform staff approve a version waiting for approval."""
    _require_staff(actor, "approve services")
    return lifecycle.transition(version, Status.ACTIVE, actor=actor, reason=notes)


def reject_version(*, version: ServiceVersion, actor: Any, notes: str) -> ServiceVersion:
    """Platform staff reject a version waiting for approval, saying why."""
    _require_staff(actor, "reject services")
    if not notes or not notes.strip():
        raise ValidationError(fields={"notes": ["Say why the service is rejected."]})
    return lifecycle.transition(version, Status.REJECTED, actor=actor, reason=notes.strip())


def deprecate_version(*, version: ServiceVersion, actor: Any) -> ServiceVersion:
    """The publisher deprecates an active version; it is retired after the grace period."""
    _require_publisher_admin(version, actor)
    return lifecycle.transition(version, Status.DEPRECATED, actor=actor)


def suspend_version(*, version: ServiceVersion, actor: Any, reason: str) -> ServiceVersion:
    """Platform staff take a version off the air."""
    _require_staff(actor, "suspend services")
    if not reason or not reason.strip():
        raise ValidationError(fields={"reason": ["Say why the service is suspended."]})
    return lifecycle.transition(version, Status.SUSPENDED, actor=actor, reason=reason.strip())


def reactivate_version(*, version: ServiceVersion, actor: Any) -> ServiceVersion:
    """Back to active: staff for a suspended version, the publisher for a deprecated one."""
    if version.status == Status.SUSPENDED:
        _require_staff(actor, "lift a suspension")
    else:
        _require_publisher_admin(version, actor)
    return lifecycle.transition(version, Status.ACTIVE, actor=actor)


def retire_version(*, version: ServiceVersion, actor: Any) -> ServiceVersion:
    """Retire a version for good (deleting a service retires it)."""
    _require_publisher_admin(version, actor)
    return lifecycle.transition(version, Status.RETIRED, actor=actor)


def retire_service(*, service: Service, actor: Any) -> int:
    """Retire every version that can be retired; returns how many."""
    if not is_platform_staff(actor):
        require_role(service.publisher, actor, Role.ADMIN)
    retired = 0
    for version in service.versions.filter(status__in=[Status.ACTIVE, Status.DEPRECATED, Status.SUSPENDED]):
        lifecycle.transition(version, Status.RETIRED, actor=actor)
        retired += 1
    return retired


def retire_due_versions(*, now: Any = None) -> int:
    """Retire deprecated versions whose grace period is over (scheduled task and management command)."""
    from django.utils import timezone

    now = now or timezone.now()
    retired = 0
    for version in ServiceVersion.objects.filter(status=Status.DEPRECATED, retire_at__lte=now):
        lifecycle.transition(version, Status.RETIRED, actor=None, reason="deprecation grace period over")
        retired += 1
    return retired


def report_serves(*, version: ServiceVersion, linked: list[str], refused: Mapping[str, list[str]]) -> None:
    """Record in the version's latest validation run how its `serves` was applied when it became active: a `serves`
    step listing the models linked (info) and those refused (errors naming `serves[<i>]`). The version stays active
    either way: the refused models are simply not offered."""
    run = version.validation_runs.order_by("-started_at").first()
    if run is None:
        return
    issues = [Issue("SERVES_LINKED", "serves", f"Offers {ref}.", "info") for ref in linked]
    issues += [Issue("SERVES_REFUSED", path, message) for path, messages in refused.items() for message in messages]
    ValidationStep.objects.create(
        run=run,
        name="serves",
        position=len(pipeline.STEPS),
        outcome=ValidationStep.Outcome.FAILED if refused else ValidationStep.Outcome.PASSED,
        messages=[issue.as_dict() for issue in issues],
    )
