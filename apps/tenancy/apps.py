"""App configuration for `apps.tenancy`, and the admin configuration that installs the marketplace's admin site."""

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class TenancyConfig(AppConfig):
    name = "apps.tenancy"
    label = "tenancy"
    verbose_name = "Tenancy"
    default_auto_field = "django.db.models.BigAutoField"
    default = True


class MarketplaceAdminConfig(admin_apps.AdminConfig):
    """`django.contrib.admin` with the tenant-aware site as `admin.site` (named in INSTALLED_APPS instead of it)."""

    default = False
    default_site = "apps.tenancy.admin_site.MarketplaceAdminSite"
