"""System checks for `LLM_INFRA` (ids `llm_infra.*`, never reused)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from llm_infra_django.conf import DEFAULTS, IMPORT_STRINGS, SETTING_NAME, InfraSettings
from llm_infra_django.ratelimit.rates import RateParseError, parse_rate

CONTEXT_MIDDLEWARE = "llm_infra_django.middleware.RequestContextMiddleware"
ERROR_MIDDLEWARE = "llm_infra_django.middleware.ErrorEnvelopeMiddleware"
PER_PROCESS_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
    "django.core.cache.backends.filebased.FileBasedCache",
)

# Sub-keys accepted inside dict-valued settings, to catch typos such as RETRY["MAX_ATEMPTS"].
_FIXED_SUBKEYS = ("RETRY", "CIRCUIT_BREAKER", "TRACING")


def _user_settings() -> Mapping[str, Any]:
    value = getattr(settings, SETTING_NAME, None) or {}
    return value if isinstance(value, Mapping) else {}


@register(Tags.compatibility)
def check_unknown_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E001: keys that `LLM_INFRA` does not know (top level and inside its fixed dicts)."""
    messages: list[CheckMessage] = []
    user = _user_settings()
    for key in user:
        if key not in DEFAULTS:
            messages.append(
                Error(
                    f"{SETTING_NAME} has an unknown key {key!r}.",
                    hint="Known keys: " + ", ".join(sorted(DEFAULTS)),
                    id="llm_infra.E001",
                )
            )
    for key in _FIXED_SUBKEYS:
        for subkey in user.get(key) or {}:
            if subkey not in DEFAULTS[key]:
                messages.append(
                    Error(
                        f"{SETTING_NAME}[{key!r}] has an unknown key {subkey!r}.",
                        hint="Known keys: " + ", ".join(sorted(DEFAULTS[key])),
                        id="llm_infra.E001",
                    )
                )
    for name, options in (user.get("UPSTREAMS") or {}).items():
        known = DEFAULTS["UPSTREAMS"]["registry"]
        for subkey in options or {}:
            if subkey not in known:
                messages.append(
                    Error(
                        f"{SETTING_NAME}['UPSTREAMS'][{name!r}] has an unknown key {subkey!r}.",
                        hint="Known keys: " + ", ".join(sorted(known)),
                        id="llm_infra.E001",
                    )
                )
    return messages


@register(Tags.compatibility)
def check_import_strings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E002: import strings that fail to import."""
    from django.utils.module_loading import import_string

    messages: list[CheckMessage] = []
    resolved = InfraSettings(user_settings=_user_settings())
    for key in IMPORT_STRINGS:
        value = resolved.raw(key)
        paths = value.items() if isinstance(value, Mapping) else [(None, value)]
        for name, path in paths:
            if not isinstance(path, str):
                continue
            try:
                import_string(path)
            except ImportError as exc:
                where = f"{SETTING_NAME}[{key!r}]" + (f"[{name!r}]" if name else "")
                messages.append(Error(f"{where} = {path!r} cannot be imported: {exc}", id="llm_infra.E002"))
    return messages


@register(Tags.compatibility)
def check_rates(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E003: throttle rates that do not parse."""
    messages: list[CheckMessage] = []
    rates = InfraSettings(user_settings=_user_settings()).raw("THROTTLE_RATES") or {}
    for scope, rate in rates.items():
        if rate is None:
            continue
        try:
            parse_rate(rate)
        except RateParseError as exc:
            messages.append(Error(f"{SETTING_NAME}['THROTTLE_RATES'][{scope!r}]: {exc}", id="llm_infra.E003"))
    return messages


@register(Tags.caches)
def check_cache_alias(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E004: `CACHE_ALIAS` names a cache that `CACHES` does not define."""
    alias = InfraSettings(user_settings=_user_settings()).raw("CACHE_ALIAS")
    if alias not in getattr(settings, "CACHES", {}):
        return [
            Error(
                f"{SETTING_NAME}['CACHE_ALIAS'] is {alias!r}, which is not defined in CACHES.",
                hint="Define that cache or point CACHE_ALIAS at one of: " + ", ".join(settings.CACHES),
                id="llm_infra.E004",
            )
        ]
    return []


@register(Tags.compatibility)
def check_middleware_order(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W001: the request-context middleware must run before anything else of ours (and should be first)."""
    # OpenTelemetry's instrumentor inserts its own middleware at the top: it is meant to wrap ours.
    middleware = [m for m in getattr(settings, "MIDDLEWARE", []) if not m.startswith("opentelemetry.")]
    if ERROR_MIDDLEWARE in middleware and CONTEXT_MIDDLEWARE not in middleware:
        return [
            Warning(
                f"{ERROR_MIDDLEWARE} is installed without {CONTEXT_MIDDLEWARE}: "
                "error envelopes carry a request id that is not echoed in the response headers.",
                hint=f"Add {CONTEXT_MIDDLEWARE} as the first entry of MIDDLEWARE.",
                id="llm_infra.W001",
            )
        ]
    if CONTEXT_MIDDLEWARE in middleware and middleware.index(CONTEXT_MIDDLEWARE) != 0:
        return [
            Warning(
                f"{CONTEXT_MIDDLEWARE} is not the first middleware: log lines of the middleware above it carry no "
                "request id and their time is not counted.",
                hint=f"Move {CONTEXT_MIDDLEWARE} to the top of MIDDLEWARE.",
                id="llm_infra.W001",
            )
        ]
    if ERROR_MIDDLEWARE in middleware and middleware.index(ERROR_MIDDLEWARE) != len(middleware) - 1:
        return [
            Warning(
                f"{ERROR_MIDDLEWARE} is not the last middleware: exceptions of the middleware below it are "
                "rendered by Django instead of as the error envelope.",
                hint=f"Move {ERROR_MIDDLEWARE} to the end of MIDDLEWARE.",
                id="llm_infra.W001",
            )
        ]
    return []


@register(Tags.caches, deploy=True)
def check_shared_cache(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W002 (deploy): a per-process cache makes limits, breakers and cached state per process."""
    alias = InfraSettings(user_settings=_user_settings()).raw("CACHE_ALIAS")
    backend = getattr(settings, "CACHES", {}).get(alias, {}).get("BACKEND", "")
    if backend in PER_PROCESS_CACHES:
        return [
            Warning(
                f"CACHES[{alias!r}] uses {backend}: rate limits, circuit breakers and cached state are per process.",
                hint="Set REDIS_URL (or point LLM_INFRA['CACHE_ALIAS'] at a Redis cache) in production.",
                id="llm_infra.W002",
            )
        ]
    return []


@register(Tags.compatibility, deploy=True)
def check_tracing_exporter(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W003 (deploy): the console exporter writes every span to stdout; E005: an OTLP exporter without endpoint."""
    tracing = InfraSettings(user_settings=_user_settings()).raw("TRACING")
    if tracing.get("ENABLED") and tracing.get("EXPORTER") == "console":
        return [
            Warning(
                "TRACING uses the console exporter in a deployment.",
                hint="Use EXPORTER 'otlp' with OTEL_EXPORTER_OTLP_ENDPOINT, or 'none'.",
                id="llm_infra.W003",
            )
        ]
    endpoint = tracing.get("OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if tracing.get("ENABLED") and tracing.get("EXPORTER") == "otlp" and not endpoint:
        return [
            Error(
                "TRACING uses the OTLP exporter but no endpoint is set.",
                hint="Set OTEL_EXPORTER_OTLP_ENDPOINT.",
                id="llm_infra.E005",
            )
        ]
    return []


@register(Tags.security)
def check_metrics_networks(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E006: `METRICS_ALLOWED_NETWORKS` entries that are not networks (/metrics would answer nobody)."""
    messages: list[CheckMessage] = []
    for cidr in InfraSettings(user_settings=_user_settings()).raw("METRICS_ALLOWED_NETWORKS") or ():
        try:
            ipaddress.ip_network(str(cidr).strip(), strict=False)
        except ValueError as exc:
            messages.append(Error(f"{SETTING_NAME}['METRICS_ALLOWED_NETWORKS']: {exc}", id="llm_infra.E006"))
    return messages
