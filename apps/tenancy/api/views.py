"""Views of the tenancy REST API: thin adapters from HTTP to the tenancy services and selectors."""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from apps.tenancy import quotas, selectors, services, sharing
from apps.tenancy.api import filters, serializers
from apps.tenancy.api.pagination import TenancyPagination
from apps.tenancy.api.schema import TENANT_HEADER_PARAMETER
from apps.tenancy.context import require_tenant, resolve_tenant
from apps.tenancy.models import AccessRequest, AuditLog, Grant, Membership, QuotaOverride, SharingPolicy, Tenant
from apps.tenancy.permissions import (
    IsPlatformStaff,
    IsTenantAdmin,
    IsTenantMember,
    IsTenantOwner,
    TenantHeaderCheckMixin,
)
from llm_infra_django.drf.schema import ErrorResponses
from llm_infra_django.drf.validation import ValidatedInputMixin
from llm_infra_django.errors import AuthorizationError, NotFoundError
from llm_infra_django.scopes import has_scope

errors = ErrorResponses(
    {
        401: "Not authenticated.",
        402: "A quota of the tenant is exhausted.",
        403: "Authenticated, but the caller's role (or its X-Tenant header) does not allow this.",
        404: "Nothing visible to the caller has this id (other tenants' objects are never revealed).",
        409: "Conflicts with the current state: a duplicate, an invalid transition, or a full policy.",
        422: "Breaks a business rule, e.g. removing or demoting the last owner.",
    }
)


def _tenant_for_staff(slug: str) -> Tenant:
    """Any tenant by slug: platform staff act on tenants they do not belong to (suspend, overrides, ...)."""
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise NotFoundError("Tenant", slug)
    return tenant


def api_key_of(request: Request) -> Any | None:
    """The API key that authenticated the request, if any (known by its tenant: tenancy does not import the app
    that issues keys, as `permissions.has_role` does not)."""
    auth = getattr(request, "auth", None)
    return auth if getattr(auth, "tenant_id", None) is not None else None


class ApiKeyScope(BasePermission):
    """API keys act for their own tenant only; here they read with any management scope and write only with the
    `admin` scope. Session requests pass (their tenant roles decide)."""

    message = "This API key lacks the 'admin' scope."

    def has_permission(self, request: Request, view: Any) -> bool:
        key = api_key_of(request)
        if key is None or request.method in SAFE_METHODS:
            return True
        return has_scope(key, "admin")


class TenantVisible(BasePermission):
    """Resolve the view's tenant first, so that a tenant the caller cannot see is a 404 before any role check."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not getattr(request.user, "is_authenticated", False):
            return False
        view.get_tenant()
        return True


class TenancyViewSet(TenantHeaderCheckMixin, ValidatedInputMixin, viewsets.GenericViewSet):
    """Base of the tenancy views: permissions per action, filters, pagination, strict input."""

    filter_backends = [DjangoFilterBackend]
    pagination_class = TenancyPagination
    metadata_class = None
    permissions_by_action: ClassVar[dict[str, list[Any]]] = {}
    default_permissions: ClassVar[list[Any]] = [IsAuthenticated]

    def get_permissions(self) -> list[BasePermission]:
        classes = self.permissions_by_action.get(self.action or "", self.default_permissions)
        return [ApiKeyScope(), *(permission() for permission in classes)]

    def output(self, instance: Any, serializer_class: type[BaseSerializer] | None = None, **kwargs: Any) -> Any:
        serializer_class = serializer_class or self.get_serializer_class()
        return serializer_class(instance, context=self.get_serializer_context(), **kwargs).data

    def paginated(self, queryset: QuerySet[Any]) -> Response:
        page = self.paginate_queryset(self.filter_queryset(queryset))
        return self.get_paginated_response(self.output(page, many=True))


class TenantFromURLMixin:
    """The tenant named by the URL's slug, if the caller can see it (404 otherwise); staff actions see all."""

    staff_actions: ClassVar[frozenset[str]] = frozenset()
    kwargs: dict[str, Any]
    request: Request
    action: str | None

    def get_tenant(self) -> Tenant:
        tenant: Tenant | None = getattr(self, "_tenant", None)
        if tenant is None:
            slug = self.kwargs["slug"]
            if api_key_of(self.request) is not None:
                tenant = resolve_tenant(self.request)
                if tenant is None or tenant.slug != slug:
                    raise NotFoundError("Tenant", slug)
            elif self.action in self.staff_actions and services.is_platform_staff(self.request.user):
                tenant = _tenant_for_staff(slug)
            else:
                tenant = selectors.get_tenant_for_user(self.request.user, slug)
            self._tenant = tenant
        return tenant


class TenantFromContextMixin:
    """The caller's tenant: from its API key, its `X-Tenant` header (members only) or its single membership."""

    request: Request

    def get_tenant(self) -> Tenant:
        return require_tenant(self.request)


# --- Tenants -------------------------------------------------------------------------------------------------


class TenantViewSet(TenantFromURLMixin, TenancyViewSet):
    """Tenants the caller belongs to; their profile, tier and status."""

    serializer_class = serializers.TenantSerializer
    filterset_class = filters.TenantFilter
    staff_actions = frozenset({"suspend", "reactivate", "deactivate"})
    permissions_by_action: ClassVar[dict[str, list[Any]]] = {
        "list": [IsAuthenticated],
        "create": [IsAuthenticated],
        "retrieve": [IsTenantMember],
        "partial_update": [IsTenantAdmin],
        "change_tier": [IsTenantOwner],
        "suspend": [TenantVisible, IsPlatformStaff],
        "reactivate": [TenantVisible, IsPlatformStaff],
        "deactivate": [TenantVisible, IsTenantOwner | IsPlatformStaff],
    }

    def get_queryset(self) -> QuerySet[Tenant]:
        if getattr(self, "swagger_fake_view", False):
            return Tenant.objects.none()
        key = api_key_of(self.request)
        if key is not None:
            return Tenant.objects.filter(pk=key.tenant_id)
        # The selector aggregates (member counts), and Django drops Meta.ordering from GROUP BY queries.
        return selectors.list_tenants_for_user(self.request.user).order_by("slug")

    @extend_schema(
        tags=["tenants"],
        summary="List the caller's tenants",
        description="Tenants the caller is a member of (platform superusers: all tenants; an API key: its own).",
        responses={200: serializers.TenantSerializer, **errors(400, 401, 403)},
    )
    def list(self, request: Request) -> Response:
        return self.paginated(self.get_queryset())

    @extend_schema(
        tags=["tenants"],
        summary="Create a tenant",
        description="The caller becomes its owner. It starts in trial (or active when the platform gives no trial).",
        request=serializers.TenantCreateSerializer,
        responses={201: serializers.TenantSerializer, **errors(400, 401, 403, 409)},
    )
    def create(self, request: Request) -> Response:
        if api_key_of(request) is not None:
            raise AuthorizationError("Create tenants from a user session, not with an API key.")
        data = self.validated(serializers.TenantCreateSerializer, request.data)
        tenant = services.create_tenant(
            owner=request.user,
            name=data["name"],
            slug=data["slug"],
            tier=data.get("tier"),
            region=data.get("region", ""),
            timezone_name=data.get("timezone", "UTC"),
            currency=data.get("currency", "USD"),
        )
        return Response(self.output(tenant), status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=["tenants"],
        summary="Show a tenant",
        description="Any member.",
        responses={200: serializers.TenantSerializer, **errors(401, 403, 404)},
    )
    def retrieve(self, request: Request, slug: str) -> Response:
        return Response(self.output(self.get_tenant()))

    @extend_schema(
        tags=["tenants"],
        summary="Change a tenant's profile",
        description="Admins and owners: name, region, timezone, currency.",
        request=serializers.TenantUpdateSerializer,
        responses={200: serializers.TenantSerializer, **errors(400, 401, 403, 404)},
    )
    def partial_update(self, request: Request, slug: str) -> Response:
        values = self.validated(serializers.TenantUpdateSerializer, request.data)
        tenant = services.update_tenant(tenant=self.get_tenant(), actor=request.user, **values)
        return Response(self.output(tenant))

    @extend_schema(
        tags=["tenants"],
        summary="Change a tenant's tier",
        description="Owners. Limits follow the new tier; quota overrides stay.",
        request=serializers.TierChangeSerializer,
        responses={200: serializers.TenantSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def change_tier(self, request: Request, slug: str) -> Response:
        data = self.validated(serializers.TierChangeSerializer, request.data)
        tenant = services.change_tier(tenant=self.get_tenant(), tier=data["tier"], actor=request.user)
        return Response(self.output(tenant))

    @extend_schema(
        tags=["tenants"],
        summary="Suspend a tenant",
        description="Platform staff. Its keys and services stop answering until it is reactivated.",
        request=serializers.SuspendSerializer,
        responses={200: serializers.TenantSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def suspend(self, request: Request, slug: str) -> Response:
        data = self.validated(serializers.SuspendSerializer, request.data)
        tenant = services.suspend_tenant(tenant=self.get_tenant(), actor=request.user, reason=data["reason"])
        return Response(self.output(tenant))

    @extend_schema(
        tags=["tenants"],
        summary="Reactivate a tenant",
        description="Platform staff: lifts a suspension or ends a trial.",
        request=None,
        responses={200: serializers.TenantSerializer, **errors(401, 403, 404, 409)},
    )
    def reactivate(self, request: Request, slug: str) -> Response:
        tenant = services.reactivate_tenant(tenant=self.get_tenant(), actor=request.user)
        return Response(self.output(tenant))

    @extend_schema(
        tags=["tenants"],
        summary="Deactivate a tenant for good",
        description="Its owners or platform staff. A deactivated tenant cannot be reactivated.",
        request=None,
        responses={200: serializers.TenantSerializer, **errors(401, 403, 404, 409)},
    )
    def deactivate(self, request: Request, slug: str) -> Response:
        tenant = services.deactivate_tenant(tenant=self.get_tenant(), actor=request.user)
        return Response(self.output(tenant))


# --- Members -------------------------------------------------------------------------------------------------


class MemberViewSet(TenantFromURLMixin, TenancyViewSet):
    """Members of a tenant and their roles."""

    serializer_class = serializers.MembershipSerializer
    filterset_class = filters.MemberFilter
    permissions_by_action: ClassVar[dict[str, list[Any]]] = {
        "list": [IsTenantMember],
        "retrieve": [IsTenantMember],
        "create": [IsTenantAdmin],
        "partial_update": [IsTenantAdmin],
        # Members may remove themselves; the service decides who may remove whom.
        "destroy": [IsTenantMember],
    }

    def get_queryset(self) -> QuerySet[Membership]:
        if getattr(self, "swagger_fake_view", False):
            return Membership.objects.none()
        return selectors.list_members(self.get_tenant())

    @extend_schema(
        tags=["members"],
        summary="List a tenant's members",
        description="Any member.",
        responses={200: serializers.MembershipSerializer, **errors(400, 401, 403, 404)},
    )
    def list(self, request: Request, slug: str) -> Response:
        return self.paginated(self.get_queryset())

    @extend_schema(
        tags=["members"],
        summary="Add a member",
        description="Admins add members, admins and viewers; only owners add owners. The user is named by username "
        "or email (404 when there is no such user). The tier's members quota applies (402).",
        request=serializers.MemberCreateSerializer,
        responses={201: serializers.MembershipSerializer, **errors(400, 401, 402, 403, 404, 409)},
    )
    def create(self, request: Request, slug: str) -> Response:
        data = self.validated(serializers.MemberCreateSerializer, request.data)
        user = services.find_user(username=data.get("username"), email=data.get("email"))
        membership = services.add_member(tenant=self.get_tenant(), user=user, role=data["role"], actor=request.user)
        return Response(self.output(membership), status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=["members"],
        summary="Show a member",
        responses={200: serializers.MembershipSerializer, **errors(401, 403, 404)},
    )
    def retrieve(self, request: Request, slug: str, member_id: UUID) -> Response:
        return Response(self.output(selectors.get_member(self.get_tenant(), member_id)))

    @extend_schema(
        tags=["members"],
        summary="Change a member's role",
        description="Admins; only owners make or unmake owners. The last owner cannot be demoted (422).",
        request=serializers.MemberUpdateSerializer,
        responses={200: serializers.MembershipSerializer, **errors(400, 401, 403, 404, 422)},
    )
    def partial_update(self, request: Request, slug: str, member_id: UUID) -> Response:
        data = self.validated(serializers.MemberUpdateSerializer, request.data)
        membership = selectors.get_member(self.get_tenant(), member_id)
        membership = services.change_member_role(membership=membership, role=data["role"], actor=request.user)
        return Response(self.output(membership))

    @extend_schema(
        tags=["members"],
        summary="Remove a member",
        description="Admins remove members (owners remove owners); any member may remove itself. The last owner "
        "cannot leave (422).",
        responses={204: None, **errors(401, 403, 404, 422)},
    )
    def destroy(self, request: Request, slug: str, member_id: UUID) -> Response:
        services.remove_member(membership=selectors.get_member(self.get_tenant(), member_id), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Quotas, usage, audit log --------------------------------------------------------------------------------


class QuotaViewSet(TenantFromURLMixin, TenancyViewSet):
    """Limits and current usage of a tenant's quotas; platform staff override them."""

    serializer_class = serializers.QuotaStatusSerializer
    pagination_class = None
    staff_actions = frozenset({"update", "destroy"})
    permissions_by_action: ClassVar[dict[str, list[Any]]] = {
        "list": [IsTenantMember],
        "retrieve": [IsTenantMember],
        "update": [TenantVisible, IsPlatformStaff],
        "destroy": [TenantVisible, IsPlatformStaff],
    }

    def get_queryset(self) -> QuerySet[QuotaOverride]:
        return QuotaOverride.objects.none()  # rows come from the quota engine; this only types the schema

    def _row(self, quota_type: str) -> dict[str, Any]:
        for row in quotas.quota_status(self.get_tenant()):
            if row["quota_type"] == quota_type:
                return row
        raise NotFoundError("Quota", quota_type)

    @extend_schema(
        tags=["quotas"],
        summary="List a tenant's quotas",
        description="Any member: each quota's limit (tier default or override), period, action, usage, percentage, "
        "remaining and reset time.",
        responses={200: serializers.QuotaStatusSerializer(many=True), **errors(401, 403, 404)},
    )
    def list(self, request: Request, slug: str) -> Response:
        return Response(self.output(quotas.quota_status(self.get_tenant()), many=True))

    @extend_schema(
        tags=["quotas"],
        summary="Show one quota",
        responses={200: serializers.QuotaStatusSerializer, **errors(401, 403, 404)},
    )
    def retrieve(self, request: Request, slug: str, quota_type: str) -> Response:
        return Response(self.output(self._row(quota_type)))

    @extend_schema(
        tags=["quotas"],
        summary="Override a quota",
        description="Platform staff replace the tier's limit (and optionally its action) for this tenant.",
        request=serializers.QuotaOverrideSerializer,
        responses={200: serializers.QuotaStatusSerializer, **errors(400, 401, 403, 404)},
    )
    def update(self, request: Request, slug: str, quota_type: str) -> Response:
        data = self.validated(serializers.QuotaOverrideSerializer, request.data)
        services.set_quota_override(
            tenant=self.get_tenant(),
            quota_type=quota_type,
            limit=data["limit"],
            action=data.get("action") or None,
            actor=request.user,
        )
        return Response(self.output(self._row(quota_type)))

    @extend_schema(
        tags=["quotas"],
        summary="Clear a quota override",
        description="Platform staff return the quota to its tier default (404 when it has no override).",
        responses={204: None, **errors(401, 403, 404)},
    )
    def destroy(self, request: Request, slug: str, quota_type: str) -> Response:
        services.clear_quota_override(tenant=self.get_tenant(), quota_type=quota_type, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UsageViewSet(TenantFromURLMixin, TenancyViewSet):
    """Usage of the metered quotas in their current period."""

    serializer_class = serializers.UsageSerializer
    pagination_class = None
    permissions_by_action: ClassVar[dict[str, list[Any]]] = {"retrieve": [IsTenantMember]}

    def get_queryset(self) -> QuerySet[Tenant]:
        return Tenant.objects.none()  # usage comes from the quota engine; this only types the schema

    @extend_schema(
        tags=["usage"],
        summary="Usage in the current period",
        description="Any member: requests, tokens and spend counted in the current period of each metered quota "
        "(calendar periods in the tenant's time zone).",
        responses={200: serializers.UsageSerializer, **errors(401, 403, 404)},
    )
    def retrieve(self, request: Request, slug: str) -> Response:
        return Response(self.output(selectors.get_usage(self.get_tenant())))


class AuditLogViewSet(TenantFromURLMixin, TenancyViewSet):
    """A tenant's audit log: read-only (no write route exists)."""

    serializer_class = serializers.AuditLogSerializer
    filterset_class = filters.AuditLogFilter
    permissions_by_action: ClassVar[dict[str, list[Any]]] = {"list": [IsTenantAdmin]}
    default_permissions: ClassVar[list[Any]] = [IsTenantAdmin]

    def get_queryset(self) -> QuerySet[AuditLog]:
        if getattr(self, "swagger_fake_view", False):
            return AuditLog.objects.none()
        return selectors.list_audit_log(self.get_tenant())

    @extend_schema(
        tags=["audit log"],
        summary="Read a tenant's audit log",
        description="Admins and owners: every state change (who, what, before and after), newest first.",
        responses={200: serializers.AuditLogSerializer, **errors(400, 401, 403, 404)},
    )
    def list(self, request: Request, slug: str) -> Response:
        return self.paginated(self.get_queryset())


# --- Sharing -------------------------------------------------------------------------------------------------


class SharingPolicyViewSet(TenantFromContextMixin, TenancyViewSet):
    """Sharing policies of the resources the caller's tenant provides."""

    serializer_class = serializers.SharingPolicySerializer
    filterset_class = filters.SharingPolicyFilter
    permissions_by_action: ClassVar[dict[str, list[Any]]] = {
        "list": [IsTenantMember],
        "retrieve": [IsTenantMember],
        "create": [IsTenantAdmin],
        "partial_update": [IsTenantAdmin],
    }

    def get_queryset(self) -> QuerySet[SharingPolicy]:
        if getattr(self, "swagger_fake_view", False):
            return SharingPolicy.objects.none()
        return selectors.list_policies_for_tenant(self.get_tenant())

    def _policy(self, pk: UUID) -> SharingPolicy:
        policy = self.get_queryset().filter(pk=pk).first()
        if policy is None:
            raise NotFoundError("Sharing policy", pk)
        return policy

    @extend_schema(
        tags=["sharing"],
        summary="List the caller's sharing policies",
        parameters=[TENANT_HEADER_PARAMETER],
        responses={200: serializers.SharingPolicySerializer, **errors(400, 401, 403)},
    )
    def list(self, request: Request) -> Response:
        return self.paginated(self.get_queryset())

    @extend_schema(
        tags=["sharing"],
        summary="Share a resource",
        description="Admins of the tenant owning the resource. One policy per resource (409 for a second).",
        parameters=[TENANT_HEADER_PARAMETER],
        request=serializers.SharingPolicyCreateSerializer,
        responses={201: serializers.SharingPolicySerializer, **errors(400, 401, 403, 404, 409)},
    )
    def create(self, request: Request) -> Response:
        values = self.validated(serializers.SharingPolicyCreateSerializer, request.data)
        policy = sharing.create_policy(actor=request.user, owner=self.get_tenant(), **values)
        return Response(self.output(policy), status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=["sharing"],
        summary="Show a sharing policy",
        parameters=[TENANT_HEADER_PARAMETER],
        responses={200: serializers.SharingPolicySerializer, **errors(400, 401, 403, 404)},
    )
    def retrieve(self, request: Request, pk: UUID) -> Response:
        return Response(self.output(self._policy(pk)))

    @extend_schema(
        tags=["sharing"],
        summary="Change a sharing policy",
        description="Admins. Existing grants stay.",
        parameters=[TENANT_HEADER_PARAMETER],
        request=serializers.SharingPolicyUpdateSerializer,
        responses={200: serializers.SharingPolicySerializer, **errors(400, 401, 403, 404)},
    )
    def partial_update(self, request: Request, pk: UUID) -> Response:
        values = self.validated(serializers.SharingPolicyUpdateSerializer, request.data)
        policy = sharing.update_policy(policy=self._policy(pk), actor=request.user, **values)
        return Response(self.output(policy))


class AccessRequestViewSet(TenantFromContextMixin, TenancyViewSet):
    """Access requests the caller's tenant made (as a consumer) or received (as a provider)."""

    serializer_class = serializers.AccessRequestSerializer
    filterset_class = filters.AccessRequestFilter
    permissions_by_action: ClassVar[dict[str, list[Any]]] = {
        "list": [IsTenantMember],
        "retrieve": [IsTenantMember],
        "create": [IsTenantAdmin],
        "approve": [IsTenantAdmin],
        "reject": [IsTenantAdmin],
    }

    def get_queryset(self) -> QuerySet[AccessRequest]:
        if getattr(self, "swagger_fake_view", False):
            return AccessRequest.objects.none()
        return selectors.list_requests_for_tenant(self.get_tenant()).select_related("grant")

    def _access(self, pk: UUID) -> AccessRequest:
        access = self.get_queryset().filter(pk=pk).first()
        if access is None:
            raise NotFoundError("Access request", pk)
        return access

    @extend_schema(
        tags=["sharing"],
        summary="List access requests made or received",
        parameters=[TENANT_HEADER_PARAMETER],
        responses={200: serializers.AccessRequestSerializer, **errors(400, 401, 403)},
    )
    def list(self, request: Request) -> Response:
        return self.paginated(self.get_queryset())

    @extend_schema(
        tags=["sharing"],
        summary="Ask for access to a shared resource",
        description="Admins of the consumer tenant. Approved at once, with its grant, when the policy needs no "
        "approval; 403 `policy_violation` lists the conditions the tenant does not meet.",
        parameters=[TENANT_HEADER_PARAMETER],
        request=serializers.AccessRequestCreateSerializer,
        responses={201: serializers.AccessRequestSerializer, **errors(400, 401, 403, 409)},
    )
    def create(self, request: Request) -> Response:
        data = self.validated(serializers.AccessRequestCreateSerializer, request.data)
        access = sharing.request_access(
            policy=data["policy"], consumer=self.get_tenant(), actor=request.user, message=data.get("message", "")
        )
        return Response(self.output(access), status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=["sharing"],
        summary="Show an access request",
        parameters=[TENANT_HEADER_PARAMETER],
        responses={200: serializers.AccessRequestSerializer, **errors(400, 401, 403, 404)},
    )
    def retrieve(self, request: Request, pk: UUID) -> Response:
        return Response(self.output(self._access(pk)))

    @extend_schema(
        tags=["sharing"],
        summary="Approve an access request",
        description="Admins of the provider. Creates the grant; 409 when the policy is at capacity or the request "
        "is no longer pending.",
        parameters=[TENANT_HEADER_PARAMETER],
        request=serializers.DecisionSerializer,
        responses={200: serializers.GrantSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def approve(self, request: Request, pk: UUID) -> Response:
        data = self.validated(serializers.DecisionSerializer, request.data)
        grant = sharing.approve_request(access=self._access(pk), actor=request.user, note=data.get("note", ""))
        return Response(self.output(grant, serializers.GrantSerializer))

    @extend_schema(
        tags=["sharing"],
        summary="Reject an access request",
        description="Admins of the provider; 409 when the request is no longer pending.",
        parameters=[TENANT_HEADER_PARAMETER],
        request=serializers.DecisionSerializer,
        responses={200: serializers.AccessRequestSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def reject(self, request: Request, pk: UUID) -> Response:
        data = self.validated(serializers.DecisionSerializer, request.data)
        access = sharing.reject_request(access=self._access(pk), actor=request.user, note=data.get("note", ""))
        return Response(self.output(access))


class GrantViewSet(TenantFromContextMixin, TenancyViewSet):
    """Grants the caller's tenant holds (as a consumer) or gave (as a provider)."""

    serializer_class = serializers.GrantSerializer
    filterset_class = filters.GrantFilter
    permissions_by_action: ClassVar[dict[str, list[Any]]] = {
        "list": [IsTenantMember],
        "retrieve": [IsTenantMember],
        "revoke": [IsTenantAdmin],
    }

    def get_queryset(self) -> QuerySet[Grant]:
        if getattr(self, "swagger_fake_view", False):
            return Grant.objects.none()
        return selectors.list_grants_for_tenant(self.get_tenant())

    def _grant(self, pk: UUID) -> Grant:
        grant = self.get_queryset().filter(pk=pk).first()
        if grant is None:
            raise NotFoundError("Grant", pk)
        return grant

    @extend_schema(
        tags=["sharing"],
        summary="List grants held or given",
        parameters=[TENANT_HEADER_PARAMETER],
        responses={200: serializers.GrantSerializer, **errors(400, 401, 403)},
    )
    def list(self, request: Request) -> Response:
        return self.paginated(self.get_queryset())

    @extend_schema(
        tags=["sharing"],
        summary="Show a grant",
        parameters=[TENANT_HEADER_PARAMETER],
        responses={200: serializers.GrantSerializer, **errors(400, 401, 403, 404)},
    )
    def retrieve(self, request: Request, pk: UUID) -> Response:
        return Response(self.output(self._grant(pk)))

    @extend_schema(
        tags=["sharing"],
        summary="Revoke a grant",
        description="Admins of the provider, or of the consumer giving its access up; 409 when it is not active.",
        parameters=[TENANT_HEADER_PARAMETER],
        request=None,
        responses={200: serializers.GrantSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def revoke(self, request: Request, pk: UUID) -> Response:
        grant = sharing.revoke_grant(grant=self._grant(pk), actor=request.user)
        return Response(self.output(grant))
