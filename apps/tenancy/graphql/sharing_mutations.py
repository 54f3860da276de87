"""Mutations of sharing, for the acting tenant (as `/api/v1/sharing/...`): policies, access requests (ask, approve,
reject) and grants (revoke) — the REST serializers validate, the `sharing` services act."""

from __future__ import annotations

from typing import Any

import graphene

from apps.tenancy import selectors, sharing
from apps.tenancy.api import serializers
from apps.tenancy.graphql.mutations import TenancyPayload, context, tenant_admin_scope
from apps.tenancy.graphql.scoping import acting_admin, acting_tenant
from apps.tenancy.graphql.sharing_types import (
    AccessGrantNode,
    AccessRequestNode,
    SharingPolicyNode,
    requests_with_grants,
)
from apps.tenancy.models import AccessRequest, Grant, SharingPolicy
from llm_infra_django.drf.validation import validated
from llm_infra_django.errors import NotFoundError
from llm_infra_django.graphql import Decimal as GqlDecimal
from llm_infra_django.graphql import mutation, node_pk, requires


def _one(queryset: Any, node_id: str, type_name: str, what: str) -> Any:
    """The row of the acting tenant's `queryset` that `node_id` names (404 otherwise)."""
    found = queryset.filter(pk=node_pk(node_id, type_name, what)).first()
    if found is None:
        raise NotFoundError(what, node_id)
    return found


def policy_of(info: graphene.ResolveInfo, node_id: str) -> SharingPolicy:
    return _one(selectors.list_policies_for_tenant(acting_tenant(info)), node_id, "SharingPolicyNode", "Sharing policy")


def access_request_of(info: graphene.ResolveInfo, node_id: str) -> AccessRequest:
    requests = requests_with_grants(selectors.list_requests_for_tenant(acting_tenant(info)))
    return _one(requests, node_id, "AccessRequestNode", "Access request")


def grant_of(info: graphene.ResolveInfo, node_id: str) -> Grant:
    return _one(selectors.list_grants_for_tenant(acting_tenant(info)), node_id, "AccessGrantNode", "Grant")


class PolicyArguments:
    """The conditions of a sharing policy (as `SharingPolicyUpdateSerializer` takes them)."""

    visibility = graphene.String(description="private, tenant, marketplace or public.")
    allowed_tenants = graphene.List(graphene.NonNull(graphene.String), description="Tenant slugs (visibility tenant).")
    blocked_tenants = graphene.List(graphene.NonNull(graphene.String))
    tier_minimum = graphene.String(description="Empty: any tier.")
    regions = graphene.List(graphene.NonNull(graphene.String), description="Consumer regions; empty = any.")
    max_cost_per_month = GqlDecimal()
    requires_approval = graphene.Boolean()
    max_consumers = graphene.Int()
    expires_at = graphene.DateTime()
    provider_share_percent = GqlDecimal()
    platform_fee_percent = GqlDecimal()


class SharingPolicyCreate(TenancyPayload):
    """Share a resource the acting tenant owns (its admins); one policy per resource."""

    class Arguments(PolicyArguments):
        resource_type = graphene.String(required=True, description="A registered kind: service, model, ...")
        resource_id = graphene.String(required=True)

    policy = graphene.Field(SharingPolicyNode)

    @classmethod
    @mutation()
    @requires(tenant_admin_scope, acting_admin)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, **values: Any) -> SharingPolicyCreate:
        data = validated(serializers.SharingPolicyCreateSerializer, values, context(info))
        return cls(policy=sharing.create_policy(actor=info.context.user, owner=acting_tenant(info), **data))


class SharingPolicyUpdate(TenancyPayload):
    """Change a sharing policy (its admins); existing grants stay."""

    class Arguments(PolicyArguments):
        id = graphene.ID(required=True)

    policy = graphene.Field(SharingPolicyNode)

    @classmethod
    @mutation()
    @requires(tenant_admin_scope, acting_admin)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, id: str, **values: Any) -> SharingPolicyUpdate:
        policy = policy_of(info, id)
        data = validated(serializers.SharingPolicyUpdateSerializer, values, context(info))
        return cls(policy=sharing.update_policy(policy=policy, actor=info.context.user, **data))


class AccessRequestCreate(TenancyPayload):
    """Ask, for the acting tenant (its admins), for access to a shared resource: approved at once, with its grant,
    when the policy needs no approval."""

    class Arguments:
        policy_id = graphene.ID(required=True, description="Node id (or UUID) of the sharing policy.")
        message = graphene.String()

    access_request = graphene.Field(AccessRequestNode)

    @classmethod
    @mutation()
    @requires(tenant_admin_scope, acting_admin)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, policy_id: str, **values: Any) -> AccessRequestCreate:
        try:
            policy: Any = str(node_pk(policy_id, "SharingPolicyNode", "Sharing policy"))
        except NotFoundError:
            policy = policy_id  # the serializer names what is wrong with it, as in REST
        data = validated(serializers.AccessRequestCreateSerializer, {"policy": policy, **values}, context(info))
        access = sharing.request_access(
            policy=data["policy"],
            consumer=acting_tenant(info),
            actor=info.context.user,
            message=data.get("message", ""),
        )
        return cls(access_request=access)


class AccessRequestApprove(TenancyPayload):
    """Approve a request made on the acting tenant's policy (its admins): creates the grant, unless the policy is at
    capacity or the request is no longer pending."""

    class Arguments:
        id = graphene.ID(required=True)
        note = graphene.String()

    grant = graphene.Field(AccessGrantNode)
    access_request = graphene.Field(AccessRequestNode)

    @classmethod
    @mutation()
    @requires(tenant_admin_scope, acting_admin)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, id: str, **values: Any) -> AccessRequestApprove:
        access = access_request_of(info, id)
        data = validated(serializers.DecisionSerializer, values, context(info))
        grant = sharing.approve_request(access=access, actor=info.context.user, note=data.get("note", ""))
        return cls(grant=grant, access_request=grant.request)


class AccessRequestReject(TenancyPayload):
    """Reject a pending request made on the acting tenant's policy (its admins)."""

    class Arguments:
        id = graphene.ID(required=True)
        note = graphene.String()

    access_request = graphene.Field(AccessRequestNode)

    @classmethod
    @mutation()
    @requires(tenant_admin_scope, acting_admin)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, id: str, **values: Any) -> AccessRequestReject:
        access = access_request_of(info, id)
        data = validated(serializers.DecisionSerializer, values, context(info))
        return cls(
            access_request=sharing.reject_request(access=access, actor=info.context.user, note=data.get("note", ""))
        )


class AccessGrantRevoke(TenancyPayload):
    """End a grant: the provider's admins, or the consumer's giving its access up."""

    class Arguments:
        id = graphene.ID(required=True)

    grant = graphene.Field(AccessGrantNode)

    @classmethod
    @mutation()
    @requires(tenant_admin_scope, acting_admin)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, id: str) -> AccessGrantRevoke:
        return cls(grant=sharing.revoke_grant(grant=grant_of(info, id), actor=info.context.user))


class SharingMutations(graphene.ObjectType):
    sharing_policy_create = SharingPolicyCreate.Field()
    sharing_policy_update = SharingPolicyUpdate.Field()
    access_request_create = AccessRequestCreate.Field()
    access_request_approve = AccessRequestApprove.Field()
    access_request_reject = AccessRequestReject.Field()
    access_grant_revoke = AccessGrantRevoke.Field()
