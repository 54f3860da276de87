"""REST API of models and versions: writes by tenant admins, 400s naming field paths, search with facets."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.catalog.models import CatalogModel, ModelVersion
from apps.tenancy.models import Role, Tenant
from tests.apps.catalog.factories import artifact
from tests.apps.tenancy.api_support import assert_error, client_for
from tests.apps.tenancy.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

API = "/api/v1"


def model_body(**overrides: Any) -> dict[str, Any]:
    return {
        "slug": "support-llama",
        "name": "Support Llama",
        "description": "A support assistant fine-tuned on tickets.",
        "base_model_name": "Llama-3-8B",
        "base_model_provider": "meta-llama",
        "model_type": "fine_tuned",
        "category": "chat",
        "tags": ["support", "Chat"],
        "languages": ["en", "fr"],
        "license": "apache-2.0",
        "visibility": "public",
        **overrides,
    }


def test_an_admin_adds_a_model_and_its_versions(acme: Tenant, alice: Any) -> None:
    # given
    client = client_for(alice)

    # when
    created = client.post(f"{API}/models/", model_body(), format="json")
    version = client.post(
        f"{API}/models/acme--support-llama/versions/",
        {"version": "1.0.0", "artifacts": [artifact("w.safetensors", 2048)], "status": "ready", "p95_latency_ms": 800},
        format="json",
    )
    published = client.patch(f"{API}/models/acme--support-llama/", {"status": "published"}, format="json")

    # then
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["handle"] == "acme--support-llama"
    assert body["owner"] == "acme" and body["status"] == "draft"
    assert body["tags"] == ["support", "chat"]
    assert body["commercial_use"] is True  # apache-2.0 allows it
    assert version.status_code == 201, version.content
    assert version.json()["size_bytes"] == 2048
    assert version.json()["quality_score"] == "84"  # performance only: 100·(1 − 0.8/5)
    assert published.status_code == 200 and published.json()["status"] == "published"
    assert published.json()["latest_version"] == "1.0.0"


def test_bad_input_is_a_400_naming_every_field_path_and_nothing_is_written(acme: Tenant, alice: Any) -> None:
    # given
    client = client_for(alice)

    # when
    response = client.post(
        f"{API}/models/",
        model_body(slug="Bad Slug", tags=["ok", ""], languages=["english"], visibility="everyone", colour="blue"),
        format="json",
    )

    # then
    body = assert_error(response, 400, "validation_error")
    assert set(body["error"]["details"]["fields"]) == {"slug", "tags[1]", "languages[0]", "visibility", "colour"}
    assert not CatalogModel.objects.exists()


def test_bad_artifacts_are_named_by_their_path(acme: Tenant, alice: Any, make_model: Any) -> None:
    # given
    make_model()
    client = client_for(alice)

    # when
    response = client.post(
        f"{API}/models/acme--support-llama/versions/",
        {
            "version": "1.0",
            "artifacts": [artifact("a"), artifact("b", sha256="xyz", size_bytes="big")],
            "served_by": ["not-a-uuid"],
        },
        format="json",
    )

    # then
    body = assert_error(response, 400, "validation_error")
    assert set(body["error"]["details"]["fields"]) == {
        "version",
        "artifacts[1].sha256",
        "artifacts[1].size_bytes",
        "served_by[0]",
    }
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize("payload", [[1, 2], "text", None])
def test_a_body_that_is_not_an_object_is_a_400(acme: Tenant, alice: Any, payload: Any) -> None:
    response = client_for(alice).post(f"{API}/models/", payload, format="json")
    assert_error(response, 400, "validation_error")


def test_a_malformed_json_body_is_a_400(acme: Tenant, alice: Any) -> None:
    response = client_for(alice).post(f"{API}/models/", "{not json", content_type="application/json")
    assert_error(response, 400)


def test_writes_need_a_login_and_the_admin_role(acme: Tenant, published: Any) -> None:
    # given a member (not admin) of acme
    member = UserFactory(username="mia")
    MembershipFactory(tenant=acme, user=member, role=Role.MEMBER)
    published()

    # when / then
    assert_error(client_for().post(f"{API}/models/", model_body(), format="json"), 401)
    assert_error(client_for(member).post(f"{API}/models/", model_body(slug="x2"), format="json"), 403)
    assert_error(
        client_for(member).patch(f"{API}/models/acme--support-llama/", {"name": "Renamed"}, format="json"), 403
    )
    assert CatalogModel.objects.get().name == "Support Llama"


def test_a_duplicate_slug_is_a_conflict(acme: Tenant, alice: Any, make_model: Any) -> None:
    make_model()
    response = client_for(alice).post(f"{API}/models/", model_body(), format="json")
    assert_error(response, 409, "conflict")


def test_an_invalid_transition_is_a_conflict_and_rolls_back_the_whole_patch(
    acme: Tenant, alice: Any, make_model: Any
) -> None:
    # given a draft without versions
    make_model()

    # when it would be renamed and published at once
    response = client_for(alice).patch(
        f"{API}/models/acme--support-llama/", {"name": "New name", "status": "deprecated"}, format="json"
    )

    # then
    assert_error(response, 409, "invalid_transition")
    assert CatalogModel.objects.get().name == "Support Llama"


def test_publishing_needs_a_ready_version(acme: Tenant, alice: Any, make_model: Any) -> None:
    make_model()
    response = client_for(alice).patch(f"{API}/models/acme--support-llama/", {"status": "published"}, format="json")
    assert_error(response, 422, "business_rule_error")


def test_versions_are_listed_greatest_first(acme: Tenant, alice: Any, published: Any, make_version: Any) -> None:
    # given
    model = published(version="1.2.0")
    make_version(model, "1.10.0")
    make_version(model, "2.0.0-rc.1")

    # when
    response = client_for(alice).get(f"{API}/models/{model.handle}/versions/")

    # then
    assert [row["version"] for row in response.json()["results"]] == ["2.0.0-rc.1", "1.10.0", "1.2.0"]
    assert client_for(alice).get(f"{API}/models/{model.handle}/").json()["latest_version"] == "1.10.0"


def test_a_version_is_changed_and_linked_to_the_services_serving_it(
    acme: Tenant, alice: Any, published: Any, globex: Tenant
) -> None:
    # given a service version of acme, and one of globex
    from apps.publishing.models import Service, ServiceVersion

    def service_version(tenant: Tenant, slug: str) -> ServiceVersion:
        service = Service.objects.create(publisher=tenant, slug=slug)
        return ServiceVersion.objects.create(
            service=service,
            version="1.0.0",
            major=1,
            minor=0,
            patch=0,
            name=slug,
            description="d" * 20,
            category="chat",
        )

    ours, theirs = service_version(acme, "chat"), service_version(globex, "other")
    model = published()
    client = client_for(alice)

    # when
    refused = client.patch(
        f"{API}/models/{model.handle}/versions/1.0.0/", {"served_by": [str(ours.pk), str(theirs.pk)]}, format="json"
    )
    linked = client.patch(
        f"{API}/models/{model.handle}/versions/1.0.0/",
        {"served_by": [str(ours.pk)], "changelog": "Linked", "p95_latency_ms": 1000},
        format="json",
    )

    # then another tenant's service cannot be linked, and nothing of the refused call was written
    assert set(assert_error(refused, 400)["error"]["details"]["fields"]) == {"served_by[1]"}
    assert linked.status_code == 200, linked.content
    assert linked.json()["served_by"] == [
        {"service_version": str(ours.pk), "model_id": "acme/chat@1.0.0", "status": "draft"}
    ]
    assert linked.json()["changelog"] == "Linked"


@pytest.mark.parametrize("served_by", [False, 5, "not-a-list", {"id": "x"}])
def test_served_by_that_is_not_a_list_is_a_400_and_writes_nothing(
    acme: Tenant, alice: Any, published: Any, served_by: Any
) -> None:
    # given (found by the contract fuzzer: `served_by: false` was a 500)
    model = published()
    client = client_for(alice)

    # when
    updated = client.patch(
        f"{API}/models/{model.handle}/versions/1.0.0/", {"served_by": served_by, "changelog": "x"}, format="json"
    )
    created = client.post(
        f"{API}/models/{model.handle}/versions/",
        {"version": "2.0.0", "artifacts": [artifact("v2.safetensors")], "served_by": served_by},
        format="json",
    )

    # then
    assert set(assert_error(updated, 400)["error"]["details"]["fields"]) == {"served_by"}
    assert set(assert_error(created, 400)["error"]["details"]["fields"]) == {"served_by"}
    assert ModelVersion.objects.get(model=model, version="1.0.0").changelog == ""
    assert not ModelVersion.objects.filter(model=model, version="2.0.0").exists()


def test_nul_characters_are_a_400_naming_the_field_and_nothing_is_written(
    acme: Tenant, alice: Any, published: Any
) -> None:
    # given (PostgreSQL stores no NUL in text: these were 500s)
    model = published()
    client = client_for(alice)

    # when
    created = client.post(f"{API}/models/", model_body(slug="nul", name="Nul\u0000"), format="json")
    changed = client.patch(
        f"{API}/models/{model.handle}/", {"description": "a\u0000b", "tags": ["ok", "b\u0000"]}, format="json"
    )
    versioned = client.patch(f"{API}/models/{model.handle}/versions/1.0.0/", {"changelog": "\u0000"}, format="json")

    # then
    assert set(assert_error(created, 400)["error"]["details"]["fields"]) == {"name"}
    assert set(assert_error(changed, 400)["error"]["details"]["fields"]) == {"description", "tags[1]"}
    assert set(assert_error(versioned, 400)["error"]["details"]["fields"]) == {"changelog"}
    assert not CatalogModel.objects.filter(slug="nul").exists()
    model.refresh_from_db()
    assert "\u0000" not in model.description and model.versions.get().changelog == ""


def test_a_handle_or_version_that_cannot_exist_is_a_404(acme: Tenant, alice: Any, published: Any) -> None:
    # given
    model = published()
    client = client_for(alice)

    # when
    odd_version = client.get(f"{API}/models/{model.handle}/versions/1.0%00/")
    odd_dataset = client.get(f"{API}/datasets/acme--x%00y/")

    # then
    assert_error(odd_version, 404)
    assert_error(odd_dataset, 404)


def test_archiving_removes_a_model_from_other_tenants_listings(
    acme: Tenant, alice: Any, bob: Any, globex: Tenant, published: Any
) -> None:
    # given
    model = published()

    # when
    response = client_for(alice).delete(f"{API}/models/{model.handle}/")

    # then
    assert response.status_code == 204
    assert client_for(bob).get(f"{API}/models/").json()["count"] == 0
    assert client_for(alice).get(f"{API}/models/{model.handle}/").json()["status"] == "archived"


# --- Search ---------------------------------------------------------------------------------------------------


@pytest.fixture
def shelf(published: Any, make_model: Any, make_version: Any, alice: Any) -> None:
    """Four published public models with different facets."""
    published("chat-en", category="chat", tags=["support"], languages=["en"], license="apache-2.0")
    published("chat-fr", category="chat", tags=["support", "french"], languages=["fr", "en"], license="mit")
    published("coder", category="code-generation", tags=["code"], languages=["en"], license="cc-by-nc-4.0")
    published("summ", category="summarization", tags=[], languages=["de"], license="", commercial_use=False)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"chat-en", "chat-fr", "coder", "summ"}),
        ("category=chat", {"chat-en", "chat-fr"}),
        ("tags=support,french", {"chat-fr"}),
        ("languages=en", {"chat-en", "chat-fr", "coder"}),
        ("license=MIT", {"chat-fr"}),
        ("commercial_use=false", {"coder", "summ"}),
        ("q=chat fr", {"chat-fr"}),
        ("visibility=public&owner=acme", {"chat-en", "chat-fr", "coder", "summ"}),
        ("visibility=private", set()),
    ],
)
def test_search_filters(acme: Tenant, bob: Any, globex: Tenant, shelf: None, query: str, expected: set[str]) -> None:
    response = client_for(bob).get(f"{API}/models/?{query}")
    assert response.status_code == 200, response.content
    assert {row["slug"] for row in response.json()["results"]} == expected


def test_search_by_minimum_quality(acme: Tenant, alice: Any, bob: Any, globex: Tenant, published: Any) -> None:
    # given models scoring 50 and 90 on MMLU
    from apps.catalog import services

    for slug, score in (("low", 50), ("high", 90)):
        model = published(slug)
        services.submit_evaluation(
            version=model.versions.get(), actor=alice, values={"benchmark": "mmlu", "score": score}
        )

    # when
    response = client_for(bob).get(f"{API}/models/?min_quality=75")

    # then
    assert [row["slug"] for row in response.json()["results"]] == ["high"]
    assert [row["slug"] for row in client_for(bob).get(f"{API}/models/").json()["results"]] == ["high", "low"]


def test_facets_count_the_whole_result(acme: Tenant, bob: Any, globex: Tenant, shelf: None) -> None:
    # when
    facets = client_for(bob).get(f"{API}/models/?limit=1").json()["facets"]

    # then
    assert facets["category"] == {"chat": 2, "code-generation": 1, "summarization": 1}
    assert facets["license"] == {"(none)": 1, "apache-2.0": 1, "cc-by-nc-4.0": 1, "mit": 1}
    assert facets["commercial_use"] == {"false": 2, "true": 2}
    assert facets["tags"] == {"support": 2, "code": 1, "french": 1}
    assert facets["languages"] == {"en": 3, "de": 1, "fr": 1}


@pytest.mark.parametrize("query", ["category=spaceships", "min_quality=101", "commercial_use=maybe", "ordering=x"])
def test_bad_search_parameters_are_a_400_naming_them(acme: Tenant, bob: Any, globex: Tenant, query: str) -> None:
    response = client_for(bob).get(f"{API}/models/?{query}")
    assert query.split("=")[0] in assert_error(response, 400, "validation_error")["error"]["details"]["fields"]


def test_a_bad_value_of_a_list_filter_is_named_by_its_path(db: Any) -> None:
    # when
    response = Client().get(f"{API}/models/?tags=ok,b%00d")

    # then the path, as for a body's fields (`artifacts[1].sha256`) and in GraphQL
    fields = assert_error(response, 400, "validation_error")["error"]["details"]["fields"]
    assert fields == {"tags[1]": ["Null characters are not allowed."]}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("tags=" + ",".join(f"t{i}" for i in range(8000)), "tags"),
        ("&".join(f"tags=t{i}" for i in range(21)), "tags"),
        ("languages=" + ",".join(["en"] * 21), "languages"),
        ("tags=" + "x" * 101, "tags"),
    ],
)
def test_list_filters_beyond_their_bounds_are_a_quick_400_naming_them(db: Any, query: str, field: str) -> None:
    # when: anyone (no login) asks
    started = time.perf_counter()
    response = Client().get(f"{API}/models/?{query}")
    # then
    assert set(assert_error(response, 400, "validation_error")["error"]["details"]["fields"]) == {field}
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("tags=support", {"chat-en", "chat-fr"}),
        ("tags=support&tags=FRENCH", {"chat-fr"}),
        ("tags=support,french,code", set()),
        ("languages=en,fr&tags=support", {"chat-fr"}),
    ],
)
def test_tags_and_languages_must_all_match(
    acme: Tenant, bob: Any, globex: Tenant, shelf: None, query: str, expected: set[str]
) -> None:
    assert {row["slug"] for row in client_for(bob).get(f"{API}/models/?{query}").json()["results"]} == expected


def test_the_number_of_queries_does_not_grow_with_the_number_of_tags(
    acme: Tenant, bob: Any, globex: Tenant, shelf: None, published: Any
) -> None:
    # given a model with 20 tags among others
    tags = [f"t{i}" for i in range(20)]
    published("tagged", tags=tags)
    client = client_for(bob)

    def queries(wanted: list[str]) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(f"{API}/models/", {"tags": ",".join(wanted)})
        assert [row["slug"] for row in response.json()["results"]] == ["tagged"]
        return len(captured)

    # when / then
    assert queries(tags[:1]) == queries(tags)


def test_a_page_costs_the_same_number_of_queries_whatever_its_size(
    acme: Tenant, alice: Any, bob: Any, globex: Tenant, published: Any, make_version: Any
) -> None:
    # given 12 published models with 2 versions each
    for index in range(12):
        model = published(f"m{index}", tags=["t"], languages=["en"])
        make_version(model, "1.1.0")
    client = client_for(bob)

    def queries(limit: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(f"{API}/models/?limit={limit}&tags=t")
        assert len(response.json()["results"]) == limit
        return len(captured)

    # when / then
    assert queries(2) == queries(12)
