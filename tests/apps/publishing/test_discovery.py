"""Discovery: visibility (state, ownership, sharing), each filter and sort, full-text search, facets, query counts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.publishing import discovery
from apps.publishing.discovery import DiscoveryParams, list_services, viewer_of
from apps.publishing.models import Service, ServiceVersion, Status
from apps.tenancy import sharing
from apps.tenancy.models import Role, Tier, Visibility
from llm_infra_django.errors import NotFoundError
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

API = "/api/v1/services/"

BASE: dict[str, Any] = {
    "name": "Service",
    "description": "A service used by the discovery tests.",
    "category": "chat",
    "tags": ["demo"],
    "protocol": "echo",
    "upstream_model": "echo-1",
    "pricing_model": "per_token",
    "price_input_per_mtok": Decimal("1"),
    "price_output_per_mtok": Decimal("2"),
    "compliance_level": "public",
    "data_residency": ["US"],
}


def make_version(
    publisher: Any,
    slug: str,
    version: str = "1.0.0",
    status: str = Status.ACTIVE,
    *,
    published_at: Any = None,
    **fields: Any,
) -> ServiceVersion:
    """A version saved directly in a given state (the pipeline is tested elsewhere)."""
    service, _ = Service.objects.get_or_create(publisher=publisher, slug=slug)
    major, minor, patch = (int(part) for part in version.split("."))
    if published_at is None and status in (Status.ACTIVE, Status.DEPRECATED, Status.SUSPENDED):
        published_at = timezone.now()
    instance = ServiceVersion(
        service=service,
        version=version,
        major=major,
        minor=minor,
        patch=patch,
        status=status,
        published_at=published_at,
        **{**BASE, "name": fields.pop("name", slug.replace("-", " ").title()), **fields},
    )
    instance.save()
    return instance


@pytest.fixture
def world(db: Any, publisher: Any, publisher_admin: Any) -> dict[str, Any]:
    """acme publishes (conftest's `publisher`), globex publishes too, initech consumes (owner carol)."""
    globex = TenantFactory(slug="globex", tier=Tier.PROFESSIONAL)
    gus = UserFactory(username="gus")
    MembershipFactory(tenant=globex, user=gus, role=Role.OWNER)
    initech = TenantFactory(slug="initech", tier=Tier.PROFESSIONAL)
    carol = UserFactory(username="carol")
    MembershipFactory(tenant=initech, user=carol, role=Role.OWNER)
    return {
        "acme": publisher,
        "alice": publisher_admin,
        "globex": globex,
        "gus": gus,
        "initech": initech,
        "carol": carol,
    }


def slugs(page: discovery.DiscoveryPage) -> list[str]:
    return [row.service.slug for row in page.results]


def as_consumer(world: dict[str, Any], **params: Any) -> discovery.DiscoveryPage:
    return list_services(world["initech"], world["carol"], DiscoveryParams(**params))


@pytest.fixture
def popularity_by_context_length() -> Iterator[None]:
    discovery.register_popularity(lambda: F("context_length"))
    yield
    discovery.register_popularity(None)


# --- Visibility ----------------------------------------------------------------------------------------------


def test_consumers_see_only_the_latest_active_version_of_each_service(world: dict[str, Any]) -> None:
    # given
    make_version(world["acme"], "chat", "1.0.0")
    make_version(world["acme"], "chat", "1.1.0")
    make_version(world["acme"], "chat", "2.0.0", Status.PENDING_APPROVAL)
    make_version(world["acme"], "old", "1.0.0", Status.DEPRECATED)
    make_version(world["globex"], "draft", "1.0.0", Status.DRAFT)
    make_version(world["globex"], "failed", "1.0.0", Status.FAILED_VALIDATION)
    make_version(world["globex"], "suspended", "1.0.0", Status.SUSPENDED)
    make_version(world["globex"], "live", "3.0.0")
    # when
    page = as_consumer(world, sort="name")
    # then
    assert [(row.service.slug, row.version) for row in page.results] == [("chat", "1.1.0"), ("live", "3.0.0")]
    assert page.count == 2


def test_publishers_also_see_their_own_services_in_every_state(world: dict[str, Any]) -> None:
    make_version(world["acme"], "chat", "1.0.0")
    make_version(world["acme"], "chat", "2.0.0", Status.FAILED_VALIDATION)
    make_version(world["acme"], "draft", "0.1.0", Status.DRAFT)
    make_version(world["globex"], "hidden-draft", "1.0.0", Status.DRAFT)
    make_version(world["globex"], "live", "1.0.0")

    page = list_services(world["acme"], world["alice"], DiscoveryParams(sort="name"))

    assert [(row.service.slug, row.version, row.status) for row in page.results] == [
        ("chat", "2.0.0", "failed_validation"),
        ("draft", "0.1.0", "draft"),
        ("live", "1.0.0", "active"),
    ]
    own_drafts = list_services(world["acme"], world["alice"], DiscoveryParams(statuses=("draft",)))
    assert slugs(own_drafts) == ["draft"]


def test_platform_staff_see_the_latest_version_of_every_service(world: dict[str, Any], staff: Any) -> None:
    make_version(world["acme"], "chat", "1.0.0")
    make_version(world["acme"], "chat", "1.1.0", Status.PENDING_APPROVAL)
    make_version(world["globex"], "draft", "1.0.0", Status.DRAFT)

    queue = list_services(None, staff, DiscoveryParams(statuses=("pending_approval",)))

    assert [(row.service.slug, row.version) for row in queue.results] == [("chat", "1.1.0")]
    assert list_services(None, staff, DiscoveryParams()).count == 2


def test_sharing_policies_decide_what_other_tenants_see(world: dict[str, Any]) -> None:
    # given: one service per visibility, plus one without any policy
    alice = world["alice"]
    ids = {}
    for slug in ("no-policy", "public", "marketplace", "tenant-listed", "tenant-unlisted", "private", "granted"):
        ids[slug] = make_version(world["acme"], slug).service_id
    visibilities = {
        "public": Visibility.PUBLIC,
        "marketplace": Visibility.MARKETPLACE,
        "tenant-listed": Visibility.TENANT,
        "tenant-unlisted": Visibility.TENANT,
        "private": Visibility.PRIVATE,
    }
    for slug, visibility in visibilities.items():
        sharing.create_policy(
            resource_type="service",
            resource_id=str(ids[slug]),
            actor=alice,
            visibility=visibility,
            allowed_tenants=["initech"] if slug == "tenant-listed" else [],
        )
    granted = sharing.create_policy(
        resource_type="service",
        resource_id=str(ids["granted"]),
        actor=alice,
        visibility=Visibility.MARKETPLACE,
        requires_approval=False,
    )
    sharing.request_access(policy=granted, consumer=world["initech"], actor=world["carol"])
    sharing.update_policy(policy=granted, actor=alice, visibility=Visibility.PRIVATE)

    # when / then
    assert sorted(slugs(as_consumer(world))) == ["granted", "marketplace", "no-policy", "public", "tenant-listed"]
    outsider = list_services(world["globex"], world["gus"], DiscoveryParams())
    assert sorted(slugs(outsider)) == ["marketplace", "no-policy", "public"]
    nobody = list_services(None, UserFactory(username="loner"), DiscoveryParams())
    assert sorted(slugs(nobody)) == ["marketplace", "no-policy", "public"]
    owner = list_services(world["acme"], alice, DiscoveryParams())
    assert owner.count == 7


def test_blocked_tenants_do_not_see_a_public_service(world: dict[str, Any]) -> None:
    service_id = make_version(world["acme"], "public").service_id
    sharing.create_policy(
        resource_type="service",
        resource_id=str(service_id),
        actor=world["alice"],
        visibility=Visibility.PUBLIC,
        blocked_tenants=["initech"],
    )
    assert slugs(as_consumer(world)) == []
    assert slugs(list_services(world["globex"], world["gus"], DiscoveryParams())) == ["public"]


def test_a_policy_must_name_the_service_by_its_canonical_id(world: dict[str, Any]) -> None:
    # a policy in another spelling of the id would be ignored by access checks: it is refused instead
    service_id = make_version(world["acme"], "private").service_id
    for spelling in (service_id.hex.upper(), service_id.hex, str(service_id).upper()):
        with pytest.raises(NotFoundError):
            sharing.create_policy(
                resource_type="service", resource_id=spelling, actor=world["alice"], visibility="private"
            )
    sharing.create_policy(
        resource_type="service", resource_id=str(service_id), actor=world["alice"], visibility="private"
    )
    assert slugs(as_consumer(world)) == []
    viewer = viewer_of(world["initech"], world["carol"])
    with pytest.raises(NotFoundError):
        discovery.get_visible_service(service_id, viewer)


def test_detail_of_an_invisible_service_is_a_404(world: dict[str, Any]) -> None:
    draft = make_version(world["globex"], "draft", status=Status.DRAFT)
    client = APIClient()
    client.force_authenticate(world["carol"])
    response = client.get(f"{API}{draft.service_id}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    client.force_authenticate(world["gus"])
    assert client.get(f"{API}{draft.service_id}/").status_code == 200


# --- Filters -------------------------------------------------------------------------------------------------


@pytest.fixture
def catalog(world: dict[str, Any]) -> dict[str, Any]:
    acme, globex = world["acme"], world["globex"]
    make_version(
        acme,
        "chatty",
        category="chat",
        tags=["Llama", "chat"],
        price_input_per_mtok=Decimal("0.20"),
        sla_availability=Decimal("99.95"),
        sla_max_latency_ms=800,
        compliance_level="public",
        data_residency=["FR", "DE"],
        gdpr_compliant=True,
        context_length=8192,
    )
    make_version(
        acme,
        "embedder",
        category="embeddings",
        tags=["vectors"],
        pricing_model="per_request",
        price_input_per_mtok=None,
        price_output_per_mtok=None,
        price_per_request=Decimal("0.001"),
        sla_availability=Decimal("99.0"),
        sla_max_latency_ms=200,
        compliance_level="internal",
        data_residency=["US"],
        context_length=512,
    )
    make_version(
        globex,
        "translator",
        category="translation",
        tags=["mistral", "translation"],
        price_input_per_mtok=Decimal("3"),
        sla_availability=Decimal("99.9"),
        sla_max_latency_ms=3000,
        compliance_level="confidential",
        data_residency=["DE"],
        gdpr_compliant=True,
        context_length=32768,
    )
    make_version(
        globex,
        "free-chat",
        category="chat",
        tags=["free"],
        pricing_model="free",
        price_input_per_mtok=None,
        price_output_per_mtok=None,
        sla_availability=Decimal("95"),
        sla_max_latency_ms=5000,
        data_residency=["US"],
        context_length=4096,
    )
    make_version(
        globex,
        "subscription",
        category="summarization",
        tags=["news"],
        pricing_model="subscription",
        price_input_per_mtok=None,
        price_output_per_mtok=None,
        sla_availability=Decimal("99.5"),
        data_residency=["GB"],
        context_length=16000,
    )
    return world


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"categories": ("chat",)}, {"chatty", "free-chat"}),
        ({"categories": ("chat", "embeddings")}, {"chatty", "free-chat", "embedder"}),
        ({"tags": ("llama",)}, {"chatty"}),
        ({"tags": ("LLAMA", "news")}, {"chatty", "subscription"}),
        ({"tags": ("lla",)}, set()),
        ({"pricing_models": ("per_request",)}, {"embedder"}),
        ({"pricing_models": ("free", "subscription")}, {"free-chat", "subscription"}),
        ({"max_price": Decimal("0.5")}, {"chatty", "embedder", "free-chat"}),
        ({"max_price": Decimal("0")}, {"free-chat"}),
        ({"min_availability": Decimal("99.9")}, {"chatty", "translator"}),
        ({"max_latency_ms": 800}, {"chatty", "embedder"}),
        ({"compliance_levels": ("confidential",)}, {"translator"}),
        ({"compliance_levels": ("public", "internal")}, {"chatty", "embedder", "free-chat", "subscription"}),
        ({"residency": ("DE",)}, {"chatty", "translator"}),
        ({"residency": ("fr", "GB")}, {"chatty", "subscription"}),
        ({"publisher": "globex"}, {"translator", "free-chat", "subscription"}),
        ({"publisher": "nobody"}, set()),
        ({"categories": ("chat",), "residency": ("US",)}, {"free-chat"}),
    ],
)
def test_each_filter(catalog: dict[str, Any], params: dict[str, Any], expected: set[str]) -> None:
    page = as_consumer(catalog, **params)
    assert set(slugs(page)) == expected
    assert page.count == len(expected)


def test_facets_count_the_filtered_set_across_pages(catalog: dict[str, Any]) -> None:
    page = as_consumer(catalog, residency=("US", "DE"), limit=1)
    assert len(page.results) == 1 and page.count == 4
    assert page.facets == {
        "category": {"chat": 2, "embeddings": 1, "translation": 1},
        "pricing_model": {"free": 1, "per_request": 1, "per_token": 2},
        "compliance_level": {"confidential": 1, "internal": 1, "public": 2},
    }


# --- Sorting and pagination ----------------------------------------------------------------------------------


def test_sort_by_name_price_rating_and_newest(catalog: dict[str, Any]) -> None:
    assert slugs(as_consumer(catalog, sort="name")) == ["chatty", "embedder", "free-chat", "subscription", "translator"]
    # Free (0) < 0.001 per request < 0.20 per 1M input < 3 per 1M input; subscriptions have no comparable price.
    assert slugs(as_consumer(catalog, sort="price")) == [
        "free-chat",
        "embedder",
        "chatty",
        "translator",
        "subscription",
    ]
    assert slugs(as_consumer(catalog, sort="rating")) == [
        "chatty",
        "translator",
        "subscription",
        "embedder",
        "free-chat",
    ]
    now = timezone.now()
    for days, slug in enumerate(["translator", "chatty", "subscription", "free-chat", "embedder"]):
        ServiceVersion.objects.filter(service__slug=slug).update(published_at=now - timedelta(days=days))
    expected = ["translator", "chatty", "subscription", "free-chat", "embedder"]
    assert slugs(as_consumer(catalog, sort="newest")) == expected
    assert slugs(as_consumer(catalog)) == expected  # the default without a search


def test_popularity_uses_the_registered_expression_else_newest(
    catalog: dict[str, Any], popularity_by_context_length: None
) -> None:
    assert slugs(as_consumer(catalog, sort="popularity")) == [
        "translator",
        "subscription",
        "chatty",
        "free-chat",
        "embedder",
    ]
    discovery.register_popularity(None)
    assert slugs(as_consumer(catalog, sort="popularity")) == slugs(as_consumer(catalog, sort="newest"))


def test_pages_do_not_overlap_and_limit_is_capped(world: dict[str, Any]) -> None:
    same_time = timezone.now()
    for index in range(7):
        make_version(world["acme"], f"svc-{index}", published_at=same_time)
    seen = []
    for offset in range(0, 7, 3):
        seen += slugs(as_consumer(world, limit=3, offset=offset))
    assert sorted(seen) == [f"svc-{index}" for index in range(7)]
    assert as_consumer(world, limit=1000).limit == 100
    assert as_consumer(world, offset=50).results == []


# --- Full-text search ----------------------------------------------------------------------------------------


@pytest.fixture
def searchable(world: dict[str, Any]) -> dict[str, Any]:
    make_version(
        world["acme"],
        "translate",
        name="Fast Translation",
        description="Translates documents between European languages.",
        tags=["translation"],
    )
    make_version(
        world["acme"],
        "coder",
        name="Code Helper",
        description="Writes Python and Rust code from plain English descriptions.",
        tags=["code"],
    )
    make_version(
        world["globex"],
        "legal",
        name="Legal Summaries",
        description="Summarises contracts; also translates legal documents into French.",
        tags=["legal"],
    )
    return world


def test_search_matches_name_description_and_tags(searchable: dict[str, Any]) -> None:
    assert set(slugs(as_consumer(searchable, search="python"))) == {"coder"}
    assert set(slugs(as_consumer(searchable, search="Legal"))) == {"legal"}
    assert set(slugs(as_consumer(searchable, search="documents"))) == {"translate", "legal"}
    assert set(slugs(as_consumer(searchable, search="documents french"))) == {"legal"}
    assert slugs(as_consumer(searchable, search="kubernetes")) == []


def test_search_combines_with_filters_and_facets(searchable: dict[str, Any]) -> None:
    page = as_consumer(searchable, search="documents", publisher="acme")
    assert slugs(page) == ["translate"]
    assert page.facets["category"] == {"chat": 1}


@pytest.mark.postgres
def test_postgres_full_text_search_stems_ranks_and_uses_the_gin_index(searchable: dict[str, Any]) -> None:
    assert connection.vendor == "postgresql"
    # Stemming: "translating" finds "Translation"/"translates"; web-search syntax: -excluded, "or".
    assert set(slugs(as_consumer(searchable, search="translating"))) == {"translate", "legal"}
    assert set(slugs(as_consumer(searchable, search="translating -legal"))) == {"translate"}
    assert set(slugs(as_consumer(searchable, search="python or contracts"))) == {"coder", "legal"}
    assert set(slugs(as_consumer(searchable, search='"plain english"'))) == {"coder"}
    # Relevance (the default when searching): the name, description and tag all match → ranked first.
    assert slugs(as_consumer(searchable, search="translation"))[0] == "translate"
    viewer = viewer_of(searchable["initech"], searchable["carol"])
    queryset, ranked = discovery._search(discovery.visible_rows(viewer), "translation")
    assert ranked
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = queryset.explain()
    assert "publishing_version_fts" in plan


def test_sqlite_falls_back_to_case_insensitive_terms(searchable: dict[str, Any]) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the portable fallback runs on SQLite")
    assert set(slugs(as_consumer(searchable, search="TRANSLAT"))) == {"translate", "legal"}
    assert set(slugs(as_consumer(searchable, search="rust python"))) == {"coder"}


# --- Constant number of queries -----------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [5, 100])
def test_a_page_costs_the_same_number_of_queries_whatever_its_size(
    world: dict[str, Any], django_assert_num_queries: Any, page_size: int
) -> None:
    # given: 120 visible services from two publishers, a policy-hidden one, capabilities and tags on each row
    for index in range(120):
        publisher = world["acme"] if index % 2 else world["globex"]
        make_version(
            publisher,
            f"svc-{index:03d}",
            tags=["bulk", f"t{index}"],
            capabilities=[{"name": "chat", "description": "", "parameters": {}}],
        )
    hidden = make_version(world["acme"], "hidden").service_id
    sharing.create_policy(resource_type="service", resource_id=str(hidden), actor=world["alice"], visibility="private")
    client = APIClient()
    client.force_login(world["carol"])
    client.get(API)  # warm-up: session and content types
    # when / then: session, user, tenant (membership), viewer (memberships), hiding policies, facets, page
    with django_assert_num_queries(7):
        response = client.get(API, {"limit": page_size, "tags": "bulk", "sort": "price"})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 120 and len(body["results"]) == page_size


def test_the_publisher_view_costs_the_same_queries(world: dict[str, Any], django_assert_num_queries: Any) -> None:
    for index in range(30):
        make_version(world["acme"], f"own-{index}", status=Status.DRAFT if index % 3 else Status.ACTIVE)
    client = APIClient()
    client.force_login(world["alice"])
    client.get(API)
    with CaptureQueriesContext(connection) as small:
        assert client.get(API, {"limit": 5}).status_code == 200
    with django_assert_num_queries(len(small.captured_queries)):
        response = client.get(API, {"limit": 100})
    assert response.json()["count"] == 30
