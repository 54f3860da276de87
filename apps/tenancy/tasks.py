"""Periodic tasks of the tenancy app."""

from celery import shared_task

from apps.tenancy.sharing import expire_grants


@shared_task(name="tenancy.expire_grants")
def expire_grants_task() -> int:
    """Mark grants past their expiry as expired."""
    return expire_grants()
