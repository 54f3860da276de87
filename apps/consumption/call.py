"""One proxied call as it goes through the stages (see proxy.py): what each stage learned of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from apps.consumption.admission import Ticket
from apps.consumption.keys import KeyInfo
from apps.publishing.selectors import Route
from llm_infra_django.errors import AppError


@dataclass
class Call:
    """Everything known about one proxied request as it goes through the pipeline."""

    request_id: str
    kind: str  # chat, completions, embeddings
    started: float  # perf_counter
    started_at: datetime
    key: KeyInfo | None = None
    route: Route | None = None  # the offer being tried (at the end: the one that served, or failed last)
    candidates: list[Route] = field(default_factory=list)  # the routes to try, in order (see routing.plan_routes)
    attempts: int = 0  # failed attempts at other offers so far
    body: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False
    prompt_estimate: int = 0
    prompt_bound: int = 0  # at least what any upstream can count: what admission reserves
    completion_estimate: int = 0
    reservation: Decimal = Decimal(0)  # what admission reserves: the highest price among the candidates
    ticket: Ticket | None = None
    quota_periods: dict[str, tuple[datetime, datetime]] | None = None
    withheld: AppError | None = None  # the answer the response scan withheld (the call is billed all the same)
