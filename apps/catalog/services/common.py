"""What every catalog write checks and records: the actor's role, the owner's state, the audit entry."""

from __future__ import annotations

from typing import Any

from apps.tenancy.audit import record_audit
from apps.tenancy.models import Role, Tenant
from apps.tenancy.services import require_role
from llm_infra_django.errors import ConflictError


def require_admin(tenant: Tenant, actor: Any) -> None:
    require_role(tenant, actor, Role.ADMIN)


def require_operational(tenant: Tenant) -> None:
    if not tenant.is_operational:
        raise ConflictError(f"Tenant '{tenant.slug}' is {tenant.status} and cannot change the catalog.")


def audit(action: str, tenant: Tenant, actor: Any, obj: Any, before: Any = None, after: Any = None) -> None:
    record_audit(action=action, tenant=tenant, actor=actor, obj=obj, before=before, after=after)
