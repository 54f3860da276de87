"""Mutations of the publishing app: each validates its input with the REST API's serializer and calls the same
service function as the REST view; domain and validation errors are payload errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import graphene
from graphene.types.generic import GenericScalar

from apps.publishing import discovery, services
from apps.publishing.api import serializers
from apps.publishing.conf import publishing_settings
from apps.publishing.graphql.types import (
    DryRunStepType,
    ServiceNode,
    ServiceVersionNode,
    ValidationRunType,
    runs_of,
    viewer,
)
from apps.publishing.models import Service, ServiceVersion
from apps.tenancy.context import require_tenant
from apps.tenancy.graphql.scoping import platform_staff
from llm_infra_django.drf.validation import validated
from llm_infra_django.errors import AuthorizationError, ValidationError
from llm_infra_django.graphql import FieldError, key_scope, mutation, node_pk, requires

Errors = graphene.List(graphene.NonNull(FieldError), required=True)
DEFINITION_HELP = "The service definition: the same JSON document as the REST API's body."


def _definition(value: Any) -> Any:
    """The definition, refused above `MAX_SERVICE_BYTES` (as the REST API refuses such a body)."""
    limit = publishing_settings.MAX_SERVICE_BYTES
    size = len(json.dumps(value, default=str))
    if size > limit:
        raise ValidationError(
            f"The definition ({size} bytes) is larger than the limit of {limit} bytes.",
            fields={"definition": [f"At most {limit} bytes."]},
        )
    return {} if value is None else value


def _context(info: graphene.ResolveInfo) -> dict[str, Any]:
    return {"request": info.context, "viewer": viewer(info)}


def _service(info: graphene.ResolveInfo, service_id: str) -> Service:
    return discovery.get_visible_service(node_pk(service_id, "ServiceNode", "Service"), viewer(info))


class PublishPayload(graphene.ObjectType):
    service = graphene.Field(ServiceNode)
    version = graphene.Field(ServiceVersionNode)
    validation_run = graphene.Field(ValidationRunType)
    errors = Errors


def _published(version: ServiceVersion) -> PublishPayload:
    """The payload after publishing: the version and its run as they stand (final unless a broker is set)."""
    version.refresh_from_db()
    return PublishPayload(service=version.service, version=version, validation_run=runs_of(version).first(), errors=[])


class ServicePublish(graphene.Mutation):
    """Create a service and its first version for your tenant and start the publishing pipeline."""

    class Arguments:
        definition = GenericScalar(required=True, description=DEFINITION_HELP + " (`slug` and `version` included)")

    Output = PublishPayload

    @classmethod
    @mutation()
    @requires(key_scope("publish"))
    def mutate(cls, root: Any, info: graphene.ResolveInfo, definition: Any) -> PublishPayload:
        data = validated(serializers.ServicePublishSerializer, _definition(definition), _context(info))
        slug, number = data.pop("slug"), data.pop("version")
        publisher = require_tenant(info.context)
        _service, version, _run = services.publish_service(
            publisher=publisher, actor=info.context.user, slug=slug, version=number, values=data
        )
        return _published(version)


class ServiceVersionCreate(graphene.Mutation):
    """Publish a strictly greater version of a service."""

    class Arguments:
        service_id = graphene.ID(required=True)
        definition = GenericScalar(required=True, description=DEFINITION_HELP)

    Output = PublishPayload

    @classmethod
    @mutation()
    @requires(key_scope("publish"))
    def mutate(cls, root: Any, info: graphene.ResolveInfo, service_id: str, definition: Any) -> PublishPayload:
        service = _service(info, service_id)
        data = validated(serializers.ServiceDefinitionSerializer, _definition(definition), _context(info))
        number = data.pop("version")
        version, _run = services.publish_version(service=service, actor=info.context.user, version=number, values=data)
        return _published(version)


class ServiceValidate(graphene.Mutation):
    """Dry run: the schema, OpenAPI and policy steps over a definition; nothing is saved."""

    class Arguments:
        definition = GenericScalar(
            required=True, description=DEFINITION_HELP + " (`service`: validate as its next version)"
        )

    valid = graphene.Boolean()
    steps = graphene.List(graphene.NonNull(DryRunStepType))
    errors = Errors

    @classmethod
    @mutation()
    @requires(key_scope("publish"))
    def mutate(cls, root: Any, info: graphene.ResolveInfo, definition: Any) -> ServiceValidate:
        data = validated(serializers.DryRunSerializer, _definition(definition), _context(info))
        service_id = data.pop("service", None)
        data.pop("slug", None)
        number = data.pop("version")
        service = None
        if service_id is not None:
            service = _service(info, str(service_id))
            if not viewer(info).manages(service):
                raise AuthorizationError("Only the publisher's members validate versions of its services.")
        steps = services.dry_run(version=number, values=data, service=service)
        return cls(
            valid=all(step["outcome"] != "failed" for step in steps),
            steps=[DryRunStepType(**step) for step in steps],
            errors=[],
        )


class ServiceRetire(graphene.Mutation):
    """Retire every live version of a service (publisher admins or staff); nothing is deleted."""

    class Arguments:
        service_id = graphene.ID(required=True)

    service = graphene.Field(ServiceNode)
    retired_versions = graphene.Int()
    errors = Errors

    @classmethod
    @mutation()
    @requires(key_scope("publish"))
    def mutate(cls, root: Any, info: graphene.ResolveInfo, service_id: str) -> ServiceRetire:
        service = _service(info, service_id)
        retired = services.retire_service(service=service, actor=info.context.user)
        return cls(service=service, retired_versions=retired, errors=[])


class VersionPayload(graphene.ObjectType):
    version = graphene.Field(ServiceVersionNode)
    errors = Errors


Check = Callable[[graphene.ResolveInfo], None]
PUBLISHER = (key_scope("publish"),)
STAFF = (platform_staff,)


def _lifecycle(
    name: str,
    serializer_class: type,
    call: Callable[[ServiceVersion, Any, dict[str, Any]], Any],
    doc: str,
    checks: tuple[Check, ...],
    **arguments: Any,
) -> type[graphene.Mutation]:
    """A lifecycle mutation: the version of a visible service, input validated by the REST serializer, the same
    service function as the REST action (which checks the caller's role and the transition)."""

    def mutate(cls: Any, root: Any, info: graphene.ResolveInfo, service_id: str, **values: Any) -> VersionPayload:
        service = _service(info, service_id)
        data = validated(serializer_class, {k: v for k, v in values.items() if v is not None}, _context(info))
        version = discovery.get_version(service, data.pop("version", None))
        call(version, info.context.user, data)
        version.refresh_from_db()
        return VersionPayload(version=version, errors=[])

    version_argument = graphene.String(description="Default: the latest version that is not retired.")
    return type(
        name,
        (graphene.Mutation,),
        {
            "__doc__": doc,
            "Arguments": type(
                "Arguments", (), {"service_id": graphene.ID(required=True), "version": version_argument, **arguments}
            ),
            "Output": VersionPayload,
            "mutate": classmethod(mutation()(requires(*checks)(mutate))),
        },
    )


VersionApprove = _lifecycle(
    "ServiceVersionApprove",
    serializers.VersionApproveSerializer,
    lambda v, actor, d: services.approve_version(version=v, actor=actor, notes=d.get("notes", "")),
    "Platform staff: pending_approval → active.",
    STAFF,
    notes=graphene.String(),
)
VersionReject = _lifecycle(
    "ServiceVersionReject",
    serializers.VersionRejectSerializer,
    lambda v, actor, d: services.reject_version(version=v, actor=actor, notes=d["notes"]),
    "Platform staff: pending_approval → rejected, with notes for the publisher.",
    STAFF,
    notes=graphene.String(required=True),
)
VersionSuspend = _lifecycle(
    "ServiceVersionSuspend",
    serializers.VersionSuspendSerializer,
    lambda v, actor, d: services.suspend_version(version=v, actor=actor, reason=d["reason"]),
    "Platform staff: active → suspended, with the reason.",
    STAFF,
    reason=graphene.String(required=True),
)
VersionDeprecate = _lifecycle(
    "ServiceVersionDeprecate",
    serializers.VersionActionSerializer,
    lambda v, actor, d: services.deprecate_version(version=v, actor=actor),
    "Publisher admins: active → deprecated; retired automatically after the grace period.",
    PUBLISHER,
)
VersionReactivate = _lifecycle(
    "ServiceVersionReactivate",
    serializers.VersionActionSerializer,
    lambda v, actor, d: services.reactivate_version(version=v, actor=actor),
    "Back to active: staff lift a suspension, publisher admins undo a deprecation.",
    PUBLISHER,
)
VersionRetire = _lifecycle(
    "ServiceVersionRetire",
    serializers.VersionActionSerializer,
    lambda v, actor, d: services.retire_version(version=v, actor=actor),
    "Publisher admins or staff: active, deprecated or suspended → retired (terminal).",
    PUBLISHER,
)


class Mutations(graphene.ObjectType):
    service_publish = ServicePublish.Field()
    service_version_create = ServiceVersionCreate.Field()
    service_validate = ServiceValidate.Field()
    service_retire = ServiceRetire.Field()
    service_version_approve = VersionApprove.Field()
    service_version_reject = VersionReject.Field()
    service_version_suspend = VersionSuspend.Field()
    service_version_deprecate = VersionDeprecate.Field()
    service_version_reactivate = VersionReactivate.Field()
    service_version_retire = VersionRetire.Field()
