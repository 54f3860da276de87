"""A provider's usage claim, bounded by what the consumer's call admitted: what is billed, and what was disputed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# What a record can hold of a reported count (a PostgreSQL bigint); larger claims are kept at this value.
REPORTED_MAX = 2**63 - 1


@dataclass(frozen=True)
class BilledUsage:
    """The tokens billed for a call, and the provider's own numbers beside them.

    `estimated`: a number we counted ourselves (the provider reported none, or one that is not a count);
    `disputed`: the provider claimed more than the call admitted, or something that is not a token count —
    `reported_*` keep what it claimed (None: not reported, or not an integer)."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False
    disputed: bool = False
    reported_prompt_tokens: int | None = None
    reported_completion_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _reported(value: Any) -> int | None:
    """A reported count as a record keeps it (None when it is not an integer)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return max(-REPORTED_MAX, min(value, REPORTED_MAX))


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def bill(
    usage: Any,
    *,
    prompt_bound: int,
    completion_bound: int,
    counted_prompt: int,
    counted_completion: int,
    completion_expected: bool = True,
) -> BilledUsage:
    """Bill a call from the provider's `usage` object, each count clamped to `[0, its bound]`: the prompt to the
    bound admission reserved, the completion to `max_tokens × n` (or the default the reservation used). A count the
    provider did not report is counted by us (`counted_*`, also clamped) and the usage marked estimated; one that
    is not a non-negative integer is counted by us too, and disputed, as is one above its bound. So a call never
    costs more than its reservation, whatever the provider says. `completion_expected`: False for embeddings (a
    usage without completion tokens is then complete)."""
    claimed = usage if isinstance(usage, dict) else {}
    prompt, completion = claimed.get("prompt_tokens"), claimed.get("completion_tokens")
    if completion is None and not completion_expected and prompt is not None:
        completion = 0
    estimated = disputed = False
    billed = []
    counts = ((prompt, prompt_bound, counted_prompt), (completion, completion_bound, counted_completion))
    for value, bound, counted in counts:
        if value is None:
            estimated = True
            billed.append(max(0, min(counted, bound)))
        elif not _is_count(value):
            estimated = disputed = True
            billed.append(max(0, min(counted, bound)))
        else:
            disputed = disputed or value > bound
            billed.append(min(value, bound))
    return BilledUsage(
        prompt_tokens=billed[0],
        completion_tokens=billed[1],
        estimated=estimated,
        disputed=disputed,
        reported_prompt_tokens=_reported(prompt),
        reported_completion_tokens=_reported(claimed.get("completion_tokens")),
    )
