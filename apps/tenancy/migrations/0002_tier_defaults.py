"""The default limits of each tier (SPEC §3), as data."""

from decimal import Decimal

from django.db import migrations

# quota type → (period, {tier: (limit, action)}); -1 = unlimited.
TIER_DEFAULTS = {
    "api_requests": (
        "month",
        {
            "free": (10_000, "block"),
            "starter": (100_000, "throttle"),
            "professional": (1_000_000, "alert"),
            "enterprise": (-1, "alert"),
        },
    ),
    "tokens": (
        "month",
        {
            "free": (1_000_000, "block"),
            "starter": (20_000_000, "throttle"),
            "professional": (200_000_000, "alert"),
            "enterprise": (-1, "alert"),
        },
    ),
    "spend_usd": (
        "month",
        {
            "free": (10, "block"),
            "starter": (500, "throttle"),
            "professional": (10_000, "alert"),
            "enterprise": (-1, "alert"),
        },
    ),
    "members": (
        "none",
        {"free": (3, "block"), "starter": (10, "block"), "professional": (50, "alert"), "enterprise": (-1, "alert")},
    ),
    "services_published": (
        "none",
        {"free": (5, "block"), "starter": (25, "block"), "professional": (100, "alert"), "enterprise": (-1, "alert")},
    ),
    "api_keys": (
        "none",
        {"free": (5, "block"), "starter": (50, "block"), "professional": (500, "alert"), "enterprise": (-1, "alert")},
    ),
}


def load(apps, schema_editor):
    TierQuota = apps.get_model("tenancy", "TierQuota")
    for quota_type, (period, tiers) in TIER_DEFAULTS.items():
        for tier, (limit, action) in tiers.items():
            TierQuota.objects.update_or_create(
                tier=tier,
                quota_type=quota_type,
                defaults={"period": period, "limit": Decimal(limit), "action": action},
            )


def unload(apps, schema_editor):
    apps.get_model("tenancy", "TierQuota").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("tenancy", "0001_initial")]
    operations = [migrations.RunPython(load, unload)]
