"""Mutations of the tenancy app: each calls the same service as the REST API."""

from __future__ import annotations

from typing import Any

import graphene

from apps.tenancy import services
from apps.tenancy.graphql.types import MembershipNode, TenantNode
from apps.tenancy.models import Tenant
from llm_infra_django.errors import NotFoundError
from llm_infra_django.graphql import FieldError, mutation


def _tenant(info: graphene.ResolveInfo, slug: str) -> Tenant:
    tenant = TenantNode.get_queryset(Tenant.objects.filter(slug=slug), info).first()
    if tenant is None:
        raise NotFoundError("Tenant", slug)
    return tenant


class TenantCreate(graphene.Mutation):
    class Arguments:
        name = graphene.String(required=True)
        slug = graphene.String(required=True)
        tier = graphene.String()

    tenant = graphene.Field(TenantNode)
    errors = graphene.List(graphene.NonNull(FieldError), required=True)

    @classmethod
    @mutation()
    def mutate(cls, root: Any, info: graphene.ResolveInfo, **kwargs: Any) -> TenantCreate:
        if getattr(info.context, "auth", None) is not None:
            from llm_infra_django.errors import AuthorizationError

            raise AuthorizationError("API keys cannot create tenants.")
        tenant = services.create_tenant(owner=info.context.user, **kwargs)
        return cls(tenant=tenant, errors=[])


class TenantUpdate(graphene.Mutation):
    class Arguments:
        slug = graphene.String(required=True)
        name = graphene.String()
        region = graphene.String()
        timezone = graphene.String()
        currency = graphene.String()

    tenant = graphene.Field(TenantNode)
    errors = graphene.List(graphene.NonNull(FieldError), required=True)

    @classmethod
    @mutation()
    def mutate(cls, root: Any, info: graphene.ResolveInfo, slug: str, **values: Any) -> TenantUpdate:
        tenant = services.update_tenant(tenant=_tenant(info, slug), actor=info.context.user, **values)
        return cls(tenant=tenant, errors=[])


class MemberAdd(graphene.Mutation):
    class Arguments:
        tenant_slug = graphene.String(required=True)
        username = graphene.String()
        email = graphene.String()
        role = graphene.String(required=True)

    member = graphene.Field(MembershipNode)
    errors = graphene.List(graphene.NonNull(FieldError), required=True)

    @classmethod
    @mutation()
    def mutate(cls, root: Any, info: graphene.ResolveInfo, tenant_slug: str, role: str,
               username: str | None = None, email: str | None = None) -> MemberAdd:
        user = services.find_user(username=username, email=email)
        member = services.add_member(tenant=_tenant(info, tenant_slug), user=user, role=role,
                                     actor=info.context.user)
        return cls(member=member, errors=[])


class MemberRoleChange(graphene.Mutation):
    class Arguments:
        member_id = graphene.ID(required=True)
        role = graphene.String(required=True)

    member = graphene.Field(MembershipNode)
    errors = graphene.List(graphene.NonNull(FieldError), required=True)

    @classmethod
    @mutation()
    def mutate(cls, root: Any, info: graphene.ResolveInfo, member_id: str, role: str) -> MemberRoleChange:
        membership = MembershipNode.get_queryset(_memberships(), info).filter(pk=_pk(member_id)).first()
        if membership is None:
            raise NotFoundError("Member", member_id)
        member = services.change_member_role(membership=membership, role=role, actor=info.context.user)
        return cls(member=member, errors=[])


class MemberRemove(graphene.Mutation):
    class Arguments:
        member_id = graphene.ID(required=True)

    ok = graphene.Boolean(required=True)
    errors = graphene.List(graphene.NonNull(FieldError), required=True)

    @classmethod
    @mutation()
    def mutate(cls, root: Any, info: graphene.ResolveInfo, member_id: str) -> MemberRemove:
        membership = MembershipNode.get_queryset(_memberships(), info).filter(pk=_pk(member_id)).first()
        if membership is None:
            raise NotFoundError("Member", member_id)
        services.remove_member(membership=membership, actor=info.context.user)
        return cls(ok=True, errors=[])


def _memberships() -> Any:
    from apps.tenancy.models import Membership

    return Membership.objects.all()


def _pk(node_id: str) -> Any:
    import uuid

    from graphql_relay import from_global_id

    try:
        return uuid.UUID(from_global_id(node_id)[1])
    except Exception:
        try:
            return uuid.UUID(str(node_id))
        except ValueError:
            raise NotFoundError("Member", node_id) from None


class Mutations(graphene.ObjectType):
    tenant_create = TenantCreate.Field()
    tenant_update = TenantUpdate.Field()
    member_add = MemberAdd.Field()
    member_role_change = MemberRoleChange.Field()
    member_remove = MemberRemove.Field()
