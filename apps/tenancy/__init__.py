"""Tenants, members, tiers and quotas, sharing, audit log, tenant context and admin scoping."""
