"""The quality score of SPEC §5: 0-100, a weighted mean of the parts present (every input already on 0-100)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from statistics import fmean

WEIGHTS: dict[str, float] = {"accuracy": 0.40, "safety": 0.25, "performance": 0.20, "robustness": 0.15}
HUNDREDTH = Decimal("0.01")


@dataclass(frozen=True)
class QualityScore:
    """The score (None when no part is known), each part on 0-100, and the weights actually applied (sum 1)."""

    score: Decimal | None
    parts: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "score": str(self.score) if self.score is not None else None,
            "parts": {name: round(value, 4) for name, value in self.parts.items()},
            "weights": {name: round(value, 6) for name, value in self.weights.items()},
        }


def _clamp(value: float) -> float:
    return min(100.0, max(0.0, value))


def performance_part(p95_latency_ms: float | None, budget_ms: float = 5000) -> float | None:
    """100 at zero latency, falling linearly to 0 at the budget (5 s) and beyond; None when unmeasured."""
    if p95_latency_ms is None:
        return None
    return _clamp(100.0 * (1.0 - float(p95_latency_ms) / float(budget_ms)))


def quality_score(
    *,
    accuracy: Sequence[float] = (),
    safety_risk: Sequence[float] = (),
    p95_latency_ms: float | None = None,
    robustness: Sequence[float] = (),
    budget_ms: float = 5000,
) -> QualityScore:
    """0.40·accuracy + 0.25·safety + 0.20·performance + 0.15·robustness over the parts present, re-weighted.

    `accuracy` and `robustness` are benchmark scores (0-100, higher is better; their mean is the part);
    `safety_risk` are toxicity/bias rates (0-100, lower is better; the part is 100 − their mean). Inputs are
    never rescaled: a score of 0.7 means 0.7 %, not 70 % (the original multiplied by 100 twice)."""
    parts: dict[str, float] = {}
    if accuracy:
        parts["accuracy"] = _clamp(fmean(accuracy))
    if safety_risk:
        parts["safety"] = _clamp(100.0 - fmean(safety_risk))
    performance = performance_part(p95_latency_ms, budget_ms)
    if performance is not None:
        parts["performance"] = performance
    if robustness:
        parts["robustness"] = _clamp(fmean(robustness))
    if not parts:
        return QualityScore(None)
    total = sum(WEIGHTS[name] for name in parts)
    weights = {name: WEIGHTS[name] / total for name in parts}
    raw = _clamp(sum(parts[name] * weights[name] for name in parts))
    score = Decimal(repr(raw)).quantize(HUNDREDTH, rounding=ROUND_HALF_UP)
    return QualityScore(min(Decimal(100), max(Decimal(0), score)), parts, weights)
