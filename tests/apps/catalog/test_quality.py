"""Quality score: the formula, re-weighting over the parts present, bounds, and recomputation on every change."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.catalog import services
from apps.catalog.models import CatalogModel, ModelVersion
from apps.catalog.quality import performance_part, quality_score

scores = st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=6)
latency = st.one_of(st.none(), st.floats(min_value=0, max_value=1e7, allow_nan=False))


def test_the_formula_with_every_part_present() -> None:
    # given accuracy 70 (mean of 80 and 60), safety 80 (100 − mean of 10 and 30), performance 80 (1 s of 5 s),
    # robustness 50
    # when
    result = quality_score(accuracy=[80, 60], safety_risk=[10, 30], p95_latency_ms=1000, robustness=[50])

    # then 0.40·70 + 0.25·80 + 0.20·80 + 0.15·50
    assert result.score == Decimal("71.50")
    assert result.parts == {"accuracy": 70, "safety": 80, "performance": 80, "robustness": 50}
    assert result.weights == {"accuracy": 0.40, "safety": 0.25, "performance": 0.20, "robustness": 0.15}


def test_missing_parts_are_left_out_and_the_rest_reweighted() -> None:
    # given accuracy 70 and performance 50 only
    # when
    result = quality_score(accuracy=[70], p95_latency_ms=2500)

    # then (0.40·70 + 0.20·50) / 0.60
    assert result.score == Decimal("63.33")
    assert result.weights == pytest.approx({"accuracy": 2 / 3, "performance": 1 / 3})


def test_a_single_part_is_the_score() -> None:
    assert quality_score(safety_risk=[12.5]).score == Decimal("87.50")
    assert quality_score(robustness=[42]).score == Decimal("42.00")


def test_no_part_means_no_score() -> None:
    assert quality_score().score is None


def test_scores_are_never_multiplied_by_100() -> None:
    # a benchmark score of 0.7 is 0.7 %, not 70 % (the original's double scaling)
    assert quality_score(accuracy=[0.7]).score == Decimal("0.70")


@pytest.mark.parametrize(("p95", "part"), [(0, 100.0), (1250, 75.0), (5000, 0.0), (9000, 0.0), (None, None)])
def test_performance_falls_linearly_to_zero_at_five_seconds(p95: float | None, part: float | None) -> None:
    assert performance_part(p95) == part


@given(accuracy=scores, safety=scores, robustness=scores, p95=latency)
def test_the_score_stays_within_0_and_100_and_between_its_parts(
    accuracy: list[float], safety: list[float], robustness: list[float], p95: float | None
) -> None:
    # when
    result = quality_score(accuracy=accuracy, safety_risk=safety, p95_latency_ms=p95, robustness=robustness)

    # then
    if not result.parts:
        assert result.score is None
        return
    assert Decimal(0) <= result.score <= Decimal(100)
    assert min(result.parts.values()) - 0.01 <= float(result.score) <= max(result.parts.values()) + 0.01
    assert sum(result.weights.values()) == pytest.approx(1.0)


# --- Stored and recomputed --------------------------------------------------------------------------------------


def _model_score(model: CatalogModel) -> Decimal | None:
    return CatalogModel.objects.get(pk=model.pk).quality_score


@pytest.mark.django_db
def test_the_score_is_recomputed_whenever_evaluations_or_latency_change(
    make_model: Any, make_version: Any, alice: Any
) -> None:
    # given a version without results
    model = make_model()
    version = make_version(model, "1.0.0")
    assert _model_score(model) is None

    # when results arrive, one is corrected, latency is measured, and one result is withdrawn
    services.submit_evaluation(version=version, actor=alice, values={"benchmark": "mmlu", "score": 80})
    assert _model_score(model) == Decimal("80.00")
    toxicity = services.submit_evaluation(version=version, actor=alice, values={"benchmark": "toxicity", "score": 20})
    assert _model_score(model) == Decimal("80.00")  # (0.40·80 + 0.25·80) / 0.65
    services.update_evaluation(evaluation=toxicity, actor=alice, values={"score": 60})
    assert _model_score(model) == Decimal("64.62")  # (0.40·80 + 0.25·40) / 0.65
    services.update_version(version=version, actor=alice, values={"p95_latency_ms": 2500})
    assert _model_score(model) == Decimal("61.18")  # (32 + 10 + 0.20·50) / 0.85
    services.delete_evaluation(evaluation=toxicity, actor=alice)

    # then
    assert _model_score(model) == Decimal("70.00")  # (32 + 10) / 0.60
    stored = ModelVersion.objects.get(pk=version.pk)
    assert stored.quality_score == Decimal("70.00")
    assert stored.quality_breakdown["parts"] == {"accuracy": 80.0, "performance": 50.0}


@pytest.mark.django_db
def test_the_latest_result_of_a_benchmark_counts_and_failed_ones_do_not(
    make_model: Any, make_version: Any, alice: Any
) -> None:
    # given two versions of MMLU (different benchmark versions), then a failed HellaSwag run
    version = make_version(make_model(), "1.0.0")
    services.submit_evaluation(
        version=version, actor=alice, values={"benchmark": "mmlu", "benchmark_version": "v1", "score": 50}
    )
    services.submit_evaluation(
        version=version, actor=alice, values={"benchmark": "mmlu", "benchmark_version": "v2", "score": 70}
    )
    services.submit_evaluation(
        version=version, actor=alice, values={"benchmark": "hellaswag", "status": "failed", "error": "OOM"}
    )

    # when
    stored = ModelVersion.objects.get(pk=version.pk)

    # then
    assert stored.quality_score == Decimal("70.00")


@pytest.mark.django_db
def test_the_model_shows_the_score_of_its_latest_version(make_model: Any, make_version: Any, alice: Any) -> None:
    # given 1.0.0 scoring 60 and a building 1.1.0 scoring 90
    model = make_model()
    first = make_version(model, "1.0.0")
    second = make_version(model, "1.1.0", status="building")
    services.submit_evaluation(version=first, actor=alice, values={"benchmark": "mmlu", "score": 60})
    services.submit_evaluation(version=second, actor=alice, values={"benchmark": "mmlu", "score": 90})
    assert _model_score(model) == Decimal("60.00")

    # when 1.1.0 becomes ready
    services.update_version(version=second, actor=alice, values={"status": "ready"})

    # then
    assert _model_score(model) == Decimal("90.00")
    assert CatalogModel.objects.get(pk=model.pk).quality_breakdown["version"] == "1.1.0"
