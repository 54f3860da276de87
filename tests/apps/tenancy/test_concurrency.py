"""Concurrency claims of tenancy, against real PostgreSQL and Redis: quotas and sharing capacity never overshoot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest
from django.db import connection

from apps.tenancy import quotas, services, sharing
from apps.tenancy.exceptions import CapacityError
from apps.tenancy.models import AccessRequest, Grant, QuotaUsage, Role, Tenant, Visibility
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

REPO = Path(__file__).resolve().parents[3]

CONSUMER_SCRIPT = """
import json, sys, threading
import django
django.setup()
from apps.tenancy import quotas
from apps.tenancy.models import Tenant
from django.db import connection
from llm_infra_django.errors import QuotaExceededError

tenant = Tenant.objects.get(slug=sys.argv[1])
threads, attempts = int(sys.argv[2]), int(sys.argv[3])
barrier = threading.Barrier(threads)
allowed, refused = [], []

def work():
    barrier.wait()
    for _ in range(attempts):
        try:
            quotas.consume(tenant, "api_requests")
            allowed.append(1)
        except QuotaExceededError:
            refused.append(1)
    connection.close()

workers = [threading.Thread(target=work) for _ in range(threads)]
[w.start() for w in workers]
[w.join() for w in workers]
print(json.dumps({"allowed": len(allowed), "refused": len(refused)}))
"""


def _test_database_url() -> str:
    parsed = urlparse(os.environ["DATABASE_URL"])
    return urlunparse(parsed._replace(path="/" + connection.settings_dict["NAME"]))


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_quota_consumption_across_processes_never_exceeds_the_limit() -> None:
    # given a tenant whose request quota of 50 blocks, and 4 processes × 10 threads × 5 attempts (200 in all)
    staff = UserFactory(username="ops", is_staff=True, is_superuser=True)
    tenant = TenantFactory(slug="crowded")
    services.set_quota_override(tenant=tenant, quota_type="api_requests", limit=50, action="block", actor=staff)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "settings.test", "DATABASE_URL": _test_database_url()}

    # when they all consume at once
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CONSUMER_SCRIPT, "crowded", "10", "5"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=100)
        assert process.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))

    # then exactly 50 were admitted, everywhere, and the durable counter agrees
    assert sum(r["allowed"] for r in results) == 50
    assert sum(r["refused"] for r in results) == 150
    assert QuotaUsage.objects.get(tenant=tenant, quota_type="api_requests").used == 50
    assert quotas.current_usage(Tenant.objects.get(pk=tenant.pk), "api_requests") == 50


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_twenty_concurrent_approvals_grant_exactly_max_consumers() -> None:
    # given a policy with max_consumers=5 and 20 pending requests from 20 tenants
    provider_admin = UserFactory(username="provider-admin")
    provider = TenantFactory(slug="provider")
    MembershipFactory(tenant=provider, user=provider_admin, role=Role.OWNER)
    sharing.register_resource_type("widget", lambda rid: Tenant.objects.filter(slug=rid.split(":")[0]).first())
    policy = sharing.create_policy(
        resource_type="widget",
        resource_id="provider:w1",
        actor=provider_admin,
        visibility=Visibility.MARKETPLACE,
        requires_approval=True,
        max_consumers=5,
    )
    requests = []
    for index in range(20):
        consumer_admin = UserFactory(username=f"consumer-admin-{index}")
        consumer = TenantFactory(slug=f"consumer-{index}")
        MembershipFactory(tenant=consumer, user=consumer_admin, role=Role.ADMIN)
        requests.append(sharing.request_access(policy=policy, consumer=consumer, actor=consumer_admin))

    # when 20 threads approve at the same moment
    barrier = threading.Barrier(20)
    outcomes: list[str] = []

    def approve(access: AccessRequest) -> None:
        barrier.wait()
        try:
            sharing.approve_request(access=access, actor=provider_admin)
            outcomes.append("granted")
        except CapacityError:
            outcomes.append("full")
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(access,)) for access in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then exactly 5 grants exist and 15 requests stay pending
    assert sorted(outcomes) == ["full"] * 15 + ["granted"] * 5
    assert Grant.objects.filter(policy=policy, status="active").count() == 5
    assert AccessRequest.objects.filter(policy=policy, status="pending").count() == 15
