"""Durable spend counters move from micro-dollars to the ledger's own quantum (10⁻¹⁰ USD): each row × 10 000. (Redis
counters of the old unit have other names and are never read again: admission seeds the new ones from here.)
`manage.py rebuild_quota_usage` recomputes the rows from the ledger itself."""

from django.db import migrations
from django.db.models import F

SCALE = 10_000


def to_ledger_units(apps, schema_editor):
    usage = apps.get_model("tenancy", "QuotaUsage")
    usage.objects.filter(quota_type="spend_usd").update(used=F("used") * SCALE)


def to_micro_dollars(apps, schema_editor):
    usage = apps.get_model("tenancy", "QuotaUsage")
    usage.objects.filter(quota_type="spend_usd").update(used=F("used") / SCALE)


class Migration(migrations.Migration):
    dependencies = [("tenancy", "0002_tier_defaults")]

    operations = [migrations.RunPython(to_ledger_units, to_micro_dollars)]
