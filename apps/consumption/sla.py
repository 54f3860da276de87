"""SLA monitoring per service version from the last hour of ledger records; violations are recorded and alerted."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from apps.consumption.conf import consumption_settings
from apps.consumption.models import SlaViolation, UsageRecord, UsageRollup

logger = structlog.get_logger(__name__)

WINDOW = timedelta(hours=1)
# Error rate = upstream failures (status >= 500: 5xx, timeouts, open circuit) / requests; client errors excluded.
ERROR_RATE_WARNING = 0.001
ERROR_RATE_CRITICAL = 0.002
# Latency (the window's p95 of answered requests) over the version's `sla_max_latency_ms` → warning, over 2× → critical.
LATENCY_CRITICAL_FACTOR = 2
# Usage claims above what requests admitted (or not counts): any → warning, more than 1 % of requests → critical.
DISPUTE_RATE_CRITICAL = 0.01
CACHE_PREFIX = "consumption:sla:"
CACHE_SECONDS = 15 * 60
WEBHOOK_TIMEOUT_S = 5.0
_RANK = {"ok": 0, "no_data": 0, SlaViolation.Severity.WARNING: 1, SlaViolation.Severity.CRITICAL: 2}


@dataclass(frozen=True)
class SlaStatus:
    """A service version's SLA figures over one window, and the state of each check."""

    service_version_id: str
    window_start: datetime
    window_end: datetime
    requests: int
    server_errors: int
    error_rate: float
    disputed: int
    availability: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_latency_ms: int
    availability_target: float
    latency_state: str
    error_rate_state: str
    dispute_state: str = "ok"
    throughput_tps: float | None = None  # completion tokens per second of answered requests

    @property
    def state(self) -> str:
        """The worst of the checks: `ok`, `warning`, `critical`, or `no_data` without traffic."""
        if self.requests == 0:
            return "no_data"
        return max((self.latency_state, self.error_rate_state, self.dispute_state), key=lambda s: _RANK[s])

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state
        data["window_start"] = self.window_start.isoformat()
        data["window_end"] = self.window_end.isoformat()
        return data


def percentile(sorted_values: list[float], quantile: float) -> float | None:
    """Linear interpolation between the closest ranks, as PostgreSQL's `percentile_cont`."""
    if not sorted_values:
        return None
    position = quantile * (len(sorted_values) - 1)
    lower, upper = math.floor(position), math.ceil(position)
    fraction = position - lower
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * fraction


def latency_state(p95_ms: float | None, max_latency_ms: int) -> str:
    if p95_ms is None:
        return "ok"
    if p95_ms > LATENCY_CRITICAL_FACTOR * max_latency_ms:
        return SlaViolation.Severity.CRITICAL
    if p95_ms > max_latency_ms:
        return SlaViolation.Severity.WARNING
    return "ok"


def dispute_state(disputed: int, requests: int) -> str:
    if not disputed:
        return "ok"
    if disputed > DISPUTE_RATE_CRITICAL * requests:
        return SlaViolation.Severity.CRITICAL
    return SlaViolation.Severity.WARNING


def error_rate_state(error_rate: float) -> str:
    if error_rate > ERROR_RATE_CRITICAL:
        return SlaViolation.Severity.CRITICAL
    if error_rate > ERROR_RATE_WARNING:
        return SlaViolation.Severity.WARNING
    return "ok"


@dataclass(frozen=True)
class _Figures:
    requests: int
    errors: int
    disputed: int
    quantiles: list[float | None]  # p50, p95, p99 of answered requests
    throughput: float | None  # completion tokens per second of answered requests


def _throughput(completion_tokens: Any, latency_ms: Any) -> float | None:
    return round(float(completion_tokens) * 1000 / float(latency_ms), 3) if completion_tokens and latency_ms else None


def _window_figures(version_id: Any, start: datetime, end: datetime) -> _Figures:
    """One version's figures in [start, end): one query on its (service_version, started_at) index. PostgreSQL
    computes the percentiles; elsewhere Python does."""
    records = UsageRecord.objects.filter(service_version_id=version_id, started_at__gte=start, started_at__lt=end)
    if connection.vendor == "postgresql":
        table = UsageRecord._meta.db_table
        sql = (
            f"SELECT count(*), count(*) FILTER (WHERE status_code >= 500), "  # noqa: S608 (table name is ours)
            f"count(*) FILTER (WHERE usage_disputed), "
            f"percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) "
            f"FILTER (WHERE status_code < 400), "
            f"sum(completion_tokens) FILTER (WHERE status_code < 400), "
            f"sum(latency_ms) FILTER (WHERE status_code < 400) "
            f"FROM {table} WHERE service_version_id = %s AND started_at >= %s AND started_at < %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [version_id, start, end])
            requests, errors, disputed, quantiles, tokens, latency = cursor.fetchone()
        return _Figures(
            int(requests),
            int(errors),
            int(disputed),
            list(quantiles) if quantiles else [None, None, None],
            _throughput(tokens, latency),
        )
    rows = list(records.values_list("latency_ms", "status_code", "usage_disputed", "completion_tokens"))
    answered = [(latency, tokens) for latency, status, _, tokens in rows if status < 400]
    latencies = sorted(latency for latency, _ in answered)
    return _Figures(
        len(rows),
        sum(1 for _, status, *_ in rows if status >= 500),
        sum(1 for _, _, flagged, _ in rows if flagged),
        [percentile(latencies, q) for q in (0.5, 0.95, 0.99)],
        _throughput(sum(tokens for _, tokens in answered), sum(latencies)),
    )


def _versions_with_traffic(start: datetime, end: datetime) -> list[str]:
    """Versions that have rollups on the window's days (cheap: the rollups' day index), i.e. recent traffic."""
    days = {start.astimezone(UTC).date(), end.astimezone(UTC).date()}
    return [
        str(v) for v in UsageRollup.objects.filter(day__in=days).values_list("service_version_id", flat=True).distinct()
    ]


def compute_sla(
    version_ids: Iterable[Any] | None = None, *, now: datetime | None = None, window: timedelta = WINDOW
) -> list[SlaStatus]:
    """SLA figures of the given versions (default: those with recent traffic) over `[now - window, now)`."""
    from apps.publishing.models import ServiceVersion

    end = now or timezone.now()
    start = end - window
    ids = [str(v) for v in version_ids] if version_ids is not None else _versions_with_traffic(start, end)
    versions = ServiceVersion.objects.filter(pk__in=ids).values_list("pk", "sla_max_latency_ms", "sla_availability")
    statuses = []
    for version_id, max_latency, availability_target in versions:
        figures = _window_figures(version_id, start, end)
        requests, errors, disputed, (p50, p95, p99) = (
            figures.requests,
            figures.errors,
            figures.disputed,
            figures.quantiles,
        )
        rate = errors / requests if requests else 0.0
        statuses.append(
            SlaStatus(
                service_version_id=str(version_id),
                window_start=start,
                window_end=end,
                requests=requests,
                server_errors=errors,
                error_rate=round(rate, 6),
                disputed=disputed,
                throughput_tps=figures.throughput,
                availability=round((1 - rate) * 100, 4) if requests else None,
                p50_ms=_rounded(p50),
                p95_ms=_rounded(p95),
                p99_ms=_rounded(p99),
                max_latency_ms=int(max_latency),
                availability_target=float(availability_target),
                latency_state=latency_state(p95, int(max_latency)) if requests else "ok",
                error_rate_state=error_rate_state(rate) if requests else "ok",
                dispute_state=dispute_state(disputed, requests),
            )
        )
    return statuses


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def breaches(status: SlaStatus) -> list[tuple[str, str, float, float]]:
    """(metric, severity, observed, threshold) of each failed check."""
    found: list[tuple[str, str, float, float]] = []
    if status.latency_state in _RANK and _RANK[status.latency_state] > 0 and status.p95_ms is not None:
        critical = status.latency_state == SlaViolation.Severity.CRITICAL
        threshold: float = status.max_latency_ms * (LATENCY_CRITICAL_FACTOR if critical else 1)
        found.append((SlaViolation.Metric.LATENCY, status.latency_state, status.p95_ms, float(threshold)))
    if _RANK[status.error_rate_state] > 0:
        critical = status.error_rate_state == SlaViolation.Severity.CRITICAL
        threshold = ERROR_RATE_CRITICAL if critical else ERROR_RATE_WARNING
        found.append((SlaViolation.Metric.ERROR_RATE, status.error_rate_state, status.error_rate, threshold))
    if _RANK[status.dispute_state] > 0:
        critical = status.dispute_state == SlaViolation.Severity.CRITICAL
        threshold = DISPUTE_RATE_CRITICAL if critical else 0.0
        found.append(
            (SlaViolation.Metric.USAGE_DISPUTES, status.dispute_state, status.disputed / status.requests, threshold)
        )
    return found


def _already_reported(version_id: str, metric: str, severity: str, since: datetime) -> bool:
    """A violation of this metric at this severity or worse was recorded within the window (no alert storm while a
    breach lasts; an escalation to critical is still reported)."""
    severities = [s for s, rank in _RANK.items() if rank >= _RANK[severity] and s not in ("ok", "no_data")]
    # django-stubs types a foreign key lookup by its target's pk as read (UUID), not as Django takes it (a str too).
    return SlaViolation.objects.filter(  # type: ignore[misc]
        service_version_id=version_id, metric=metric, severity__in=severities, created_at__gte=since
    ).exists()


def check_sla(*, now: datetime | None = None, window: timedelta = WINDOW) -> list[SlaViolation]:
    """The periodic check: compute every active version's SLA figures, cache them for `get_sla_status`, record a
    violation per failed check (once per window and severity) and alert it (log, audit entry on the publisher
    tenant, optional webhook)."""
    from apps.publishing.models import ServiceVersion
    from apps.tenancy.audit import record_audit

    end = now or timezone.now()
    statuses = compute_sla(now=end, window=window)
    cache.set_many({CACHE_PREFIX + s.service_version_id: s.as_dict() for s in statuses}, CACHE_SECONDS)
    created: list[SlaViolation] = []
    versions = {
        str(pk): version
        for pk, version in ServiceVersion.objects.select_related("service__publisher")
        .in_bulk([s.service_version_id for s in statuses])
        .items()
    }
    for status in statuses:
        version = versions.get(status.service_version_id)
        if version is None:
            continue
        for metric, severity, observed, threshold in breaches(status):
            with transaction.atomic():
                if _already_reported(status.service_version_id, metric, severity, end - window):
                    continue
                violation = SlaViolation.objects.create(
                    service_version=version,
                    metric=metric,
                    severity=severity,
                    observed=observed,
                    threshold=threshold,
                    window_start=status.window_start,
                    window_end=status.window_end,
                )
                alert = _alert_payload(violation, version)
                logger.warning("sla_violation", **{k: v for k, v in alert.items() if k != "event"})
                record_audit(
                    action="sla_violated", tenant=version.service.publisher, actor=None, obj=violation, after=alert
                )
            created.append(violation)
            send_webhook(alert)
    return created


def _alert_payload(violation: SlaViolation, version: Any) -> dict[str, Any]:
    return {
        "event": "sla_violation",
        "id": str(violation.pk),
        "service_version_id": str(version.pk),
        "model_id": version.model_id,
        "version": version.version,
        "publisher": version.service.publisher.slug,
        "metric": violation.metric,
        "severity": violation.severity,
        "observed": violation.observed,
        "threshold": violation.threshold,
        "window_start": violation.window_start.isoformat(),
        "window_end": violation.window_end.isoformat(),
    }


def send_webhook(payload: dict[str, Any]) -> bool:
    """POST the alert as JSON to `SLA_ALERT_WEBHOOK`, if set. Failures are logged, never raised."""
    url = consumption_settings.SLA_ALERT_WEBHOOK
    if not url:
        return False
    try:
        response = httpx.post(url, json=payload, timeout=WEBHOOK_TIMEOUT_S)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        logger.error("sla_webhook_failed", error=type(exc).__name__, violation=payload.get("id"))
        return False
    return True


def get_sla_status(version_id: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """A version's SLA status for the catalog and the admin: what the last periodic check cached, else computed now
    (one bounded query). Keys: requests, error_rate, availability (%), p50/p95/p99 (ms), states."""
    cached = cache.get(CACHE_PREFIX + str(version_id)) if now is None else None
    if cached is not None:
        return dict(cached)
    statuses = compute_sla([version_id], now=now)
    if not statuses:
        return {"service_version_id": str(version_id), "state": "no_data", "requests": 0}
    return statuses[0].as_dict()


def get_sla_statuses(version_ids: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """SLA status of many versions at once from the cache (versions without a cached status: `no_data`)."""
    ids = [str(v) for v in version_ids]
    found = cache.get_many([CACHE_PREFIX + v for v in ids])
    return {
        v: dict(found.get(CACHE_PREFIX + v) or {"service_version_id": v, "state": "no_data", "requests": 0})
        for v in ids
    }
