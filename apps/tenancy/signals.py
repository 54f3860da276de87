"""Events other apps (and operators' receivers) can listen to."""

from django.dispatch import Signal

# sender=Tenant; kwargs: tenant, quota_type, limit, used, period_end
quota_soft_limit_reached = Signal()
# sender=Tenant; kwargs: tenant, quota_type, limit, used, period_end (ALERT quotas passing their limit)
quota_alert = Signal()
# sender=Tenant; kwargs: tenant (status, tier or limits changed: cached views of the tenant must be dropped)
tenant_changed = Signal()
