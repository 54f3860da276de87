"""Concurrent lineage inserts on real PostgreSQL: edges that together would close a cycle are never all accepted."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from apps.catalog import lineage, selectors, services
from apps.catalog.exceptions import LineageCycleError
from apps.catalog.models import Dataset, LineageEdge
from apps.tenancy.models import Role
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory


def _insert_concurrently(owner: Any, actor: Any, pairs: list[tuple[Dataset, Dataset]]) -> list[str]:
    """Add every `(source, target)` edge from its own thread (own connection), all released at once."""
    barrier = threading.Barrier(len(pairs))
    outcomes: list[str] = []
    lock = threading.Lock()

    def add(source: Dataset, target: Dataset) -> None:
        try:
            barrier.wait(timeout=30)
            services.add_lineage_edge(
                owner=owner,
                actor=actor,
                source={"kind": "dataset", "ref": str(source.pk)},
                target={"kind": "dataset", "ref": str(target.pk)},
                edge_type="preprocessed_by",
            )
            outcome = "added"
        except LineageCycleError:
            outcome = "cycle"
        except Exception as exc:
            outcome = f"error: {type(exc).__name__}: {exc}"
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=add, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(outcomes)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_two_edges_that_together_close_a_cycle_are_never_both_added() -> None:
    # given
    user = UserFactory(username="racer")
    tenant = TenantFactory(slug="racers")
    MembershipFactory(tenant=tenant, user=user, role=Role.OWNER)

    for round_ in range(10):
        first, second = (
            services.create_dataset(owner=tenant, actor=user, slug=f"r{round_}-{name}", values={"name": name})
            for name in ("a", "b")
        )

        # when a→b and b→a are added at the same moment
        outcomes = _insert_concurrently(tenant, user, [(first, second), (second, first)])

        # then exactly one is refused as a cycle
        assert outcomes == ["added", "cycle"], outcomes
    assert LineageEdge.objects.filter(graph__owner=tenant).count() == 10
    assert selectors.validate_lineage(tenant).cycle_nodes == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_a_ring_inserted_by_eight_threads_at_once_loses_exactly_one_edge() -> None:
    # given 8 datasets; any 7 edges of the ring 0→1→…→7→0 form a path, all 8 a cycle
    user = UserFactory(username="ringer")
    tenant = TenantFactory(slug="ringers")
    MembershipFactory(tenant=tenant, user=user, role=Role.OWNER)

    for round_ in range(3):
        datasets = [
            services.create_dataset(owner=tenant, actor=user, slug=f"g{round_}-{i}", values={"name": f"g{round_}-{i}"})
            for i in range(8)
        ]

        # when every edge of the ring is added at the same moment
        outcomes = _insert_concurrently(tenant, user, [(datasets[i], datasets[(i + 1) % 8]) for i in range(8)])

        # then
        assert outcomes == ["added"] * 7 + ["cycle"], outcomes
    edges = LineageEdge.objects.filter(graph__owner=tenant).values_list("source_id", "target_id")
    assert lineage.find_cycle([], edges) == []
