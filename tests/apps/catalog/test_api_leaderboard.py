"""Leaderboard ordering and ties, and version comparison deltas."""

from __future__ import annotations

from typing import Any

import pytest

from apps.catalog import services
from apps.tenancy.models import Tenant
from tests.apps.catalog.factories import artifact
from tests.apps.tenancy.api_support import assert_error, client_for

pytestmark = pytest.mark.django_db

API = "/api/v1"


def submit(version: Any, actor: Any, benchmark: str, score: float, **values: Any) -> Any:
    return services.submit_evaluation(
        version=version, actor=actor, values={"benchmark": benchmark, "score": score, **values}
    )


def test_the_leaderboard_ranks_by_score_with_shared_ranks_for_ties(
    acme: Tenant, alice: Any, bob: Any, globex: Tenant, published: Any
) -> None:
    # given five models; two tie at 80 and two at 60
    for slug, score in (("delta", 80), ("alpha", 60), ("charlie", 91.5), ("bravo", 80), ("echo", 60)):
        submit(published(slug).versions.get(), alice, "mmlu", score)

    # when
    rows = client_for(bob).get(f"{API}/leaderboard/?benchmark=MMLU").json()["results"]

    # then highest first, equal scores share a rank and are listed by handle
    assert [(r["rank"], r["model"], r["score"]) for r in rows] == [
        (1, "acme--charlie", "91.5"),
        (2, "acme--bravo", "80"),
        (2, "acme--delta", "80"),
        (4, "acme--alpha", "60"),
        (4, "acme--echo", "60"),
    ]


def test_each_model_appears_once_with_its_best_version(
    acme: Tenant, alice: Any, published: Any, make_version: Any
) -> None:
    # given a model whose 1.1.0 beats 1.0.0 on MMLU, and whose 2.0.0 failed to build
    model = published("solo")
    submit(model.versions.get(version="1.0.0"), alice, "mmlu", 50)
    submit(make_version(model, "1.1.0"), alice, "mmlu", 75)
    broken = make_version(model, "2.0.0", status="building")
    submit(broken, alice, "mmlu", 99)
    services.update_version(version=broken, actor=alice, values={"status": "failed"})

    # when
    rows = client_for(alice).get(f"{API}/leaderboard/?benchmark=mmlu").json()["results"]

    # then
    assert [(r["model"], r["version"], r["score"]) for r in rows] == [("acme--solo", "1.1.0", "75")]


def test_the_leaderboard_filters_by_benchmark_version_and_category(acme: Tenant, alice: Any, published: Any) -> None:
    # given
    chat, coder = published("chat", category="chat"), published("coder", category="code-generation")
    submit(chat.versions.get(), alice, "humaneval", 40, benchmark_version="v2")
    submit(coder.versions.get(), alice, "humaneval", 70, benchmark_version="v1")
    client = client_for(alice)

    # when / then
    assert [r["model"] for r in client.get(f"{API}/leaderboard/?benchmark=humaneval").json()["results"]] == [
        "acme--coder",
        "acme--chat",
    ]
    assert [
        r["model"] for r in client.get(f"{API}/leaderboard/?benchmark=humaneval&benchmark_version=v2").json()["results"]
    ] == ["acme--chat"]
    assert [
        r["model"] for r in client.get(f"{API}/leaderboard/?benchmark=humaneval&category=chat").json()["results"]
    ] == ["acme--chat"]


def test_without_a_benchmark_models_are_ranked_by_quality(acme: Tenant, alice: Any, published: Any) -> None:
    # given
    submit(published("good").versions.get(), alice, "mmlu", 90)
    submit(published("fair").versions.get(), alice, "toxicity", 30)  # safety 70
    published("unscored")

    # when
    rows = client_for(alice).get(f"{API}/leaderboard/").json()["results"]

    # then models without a score are not ranked
    assert [(r["rank"], r["model"], r["score"], r["version"]) for r in rows] == [
        (1, "acme--good", "90", "1.0.0"),
        (2, "acme--fair", "70", "1.0.0"),
    ]


def test_a_custom_benchmark_has_its_own_leaderboard(acme: Tenant, alice: Any, published: Any) -> None:
    # given
    submit(published("xx").versions.get(), alice, "custom", 55, name="support-tickets", dimension="robustness")

    # when
    rows = client_for(alice).get(f"{API}/leaderboard/?benchmark=support-tickets").json()["results"]

    # then
    assert [(r["model"], r["benchmark"]) for r in rows] == [("acme--xx", "support-tickets")]


# --- Comparison -----------------------------------------------------------------------------------------------


def test_comparison_reports_size_performance_and_benchmark_deltas(
    acme: Tenant, alice: Any, published: Any, make_version: Any
) -> None:
    # given 1.0.0 and 1.1.0 with different sizes, latencies and results
    model = published(version="1.0.0")
    first = model.versions.get()
    services.update_version(
        version=first, actor=alice, values={"p95_latency_ms": 1000, "p50_latency_ms": 400, "parameter_count": 7_000}
    )
    second = make_version(
        model,
        "1.1.0",
        artifacts=[artifact("a", 1500), artifact("b", 700)],
        p95_latency_ms=750,
        p50_latency_ms=300,
        throughput_tokens_per_s=90,
        parameter_count=8_000,
    )
    submit(first, alice, "mmlu", 60)
    submit(second, alice, "mmlu", 64.5)
    submit(first, alice, "toxicity", 10)
    submit(second, alice, "humaneval", 30)

    # when
    response = client_for(alice).get(f"{API}/models/{model.handle}/compare/?a=1.0.0&b=1.1.0")

    # then
    assert response.status_code == 200, response.content
    body = response.json()
    size_a = first.size_bytes
    assert body["deltas"] == {
        "size_bytes": 2200 - size_a,
        "parameter_count": 1000,
        "p50_latency_ms": -100.0,
        "p95_latency_ms": -250.0,
        "throughput_tokens_per_s": None,
        "quality_score": body["deltas"]["quality_score"],
    }
    assert body["a"]["quality_score"] is not None and body["b"]["quality_score"] is not None
    assert {(b["benchmark"], b["a"], b["b"], b["delta"]) for b in body["benchmarks"]} == {
        ("humaneval", None, "30", None),
        ("mmlu", "60", "64.5", "4.5"),
        ("toxicity", "10", None, None),
    }


@pytest.mark.parametrize(
    ("query", "field"), [("?a=1.0.0", "b"), ("?a=1.0.0&b=9.9.9", "b"), ("?a=x&b=1.0.0", "a"), ("", "a")]
)
def test_comparing_unknown_versions_is_a_400_naming_the_parameter(
    acme: Tenant, alice: Any, published: Any, query: str, field: str
) -> None:
    published()
    response = client_for(alice).get(f"{API}/models/acme--support-llama/compare/{query}")
    assert_error(response, 400, "validation_error", field=field)
