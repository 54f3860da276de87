"""Structured logging: structlog configuration, stdlib integration, redaction and typed helpers."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import structlog
from structlog.typing import EventDict, WrappedLogger

if TYPE_CHECKING:
    from django.http import HttpRequest

REDACTED = "[REDACTED]"

# Key names whose values never reach a log line, at any depth (compared lower-case, "-" folded to "_").
BUILTIN_REDACT_KEYS = frozenset(
    {
        "password",
        "passwd",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "apikey",
        "secret",
        "client_secret",
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "x_api_key",
        "upstream_secret",
        "credential",
        "credentials",
        "private_key",
        "sessionid",
        "csrftoken",
    }
)
# Query parameters whose values never reach a log line: those named by a redact key, and those whose name ends in one
# of these words (`api_key`, `X-Amz-Signature`, `id_token`, …). Besides the key words, a URL carries API keys as
# `?key=`, signed URLs their signature as `sig`, OAuth callbacks their one-time grant as `code`.
SECRET_QUERY_WORDS = frozenset(
    {
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "pass",
        "signature",
        "sig",
        "auth",
        "code",
        "credential",
        "credentials",
        "session",
        "jwt",
    }
)
# `?name=value` / `&name=value` / `;name=value` in any text: a URL, a request's repr, an error message.
QUERY_PARAM_RE = re.compile(r"""(?P<lead>[?&;](?P<name>[^=&;#?\s"'<>]+)=)(?P<value>[^&#\s"'<>]*)""")
# Values that look like our API keys, bearer/basic credentials or JWTs, wherever they appear in a string (an API key
# also inside a word: `/v1/x_mk_…` in a path).
SECRET_VALUE_RE = re.compile(
    r"(?:mk_[A-Za-z0-9]{16,})"
    r"|(?:\b(?:Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{8,})"
    r"|(?:\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
    r"|(?:\bsk-[A-Za-z0-9_-]{16,})",
    re.IGNORECASE,
)

logger = structlog.get_logger("llm_infra")


def _normalise(key: str) -> str:
    return key.lower().replace("-", "_")


def _redact_keys() -> frozenset[str]:
    from llm_infra_django.conf import infra_settings

    try:
        extra = infra_settings.LOG_REDACT_KEYS
    except Exception:  # settings not configured (e.g. logging before django.setup())
        extra = []
    return BUILTIN_REDACT_KEYS | {_normalise(k) for k in extra}


@functools.lru_cache(maxsize=8)
def _key_value_re(keys: frozenset[str]) -> re.Pattern[str]:
    """`key=value`, `key: value`, `"key": "value"` for secret keys inside free text (reprs, JSON, query strings)."""
    names = "|".join(sorted((re.escape(k).replace("_", "[_-]?") for k in keys), key=len, reverse=True))
    return re.compile(
        rf"""(?P<key>["']?\b(?:{names})\b["']?\s*[:=]\s*)(?P<quote>["']?)(?!\[REDACTED\])(?P<value>[^"'\s,;&}}\]]+)""",
        re.IGNORECASE,
    )


def _secret_query_name(name: str, keys: frozenset[str]) -> bool:
    name = _normalise(unquote(name)).replace(".", "_")
    return name in keys or name.rsplit("_", 1)[-1] in SECRET_QUERY_WORDS


def redact_text(text: str, keys: frozenset[str] | None = None) -> str:
    """Redact secrets inside free text: token-like values, values of secret keys written as `key=value`, and values
    of secret-named query parameters."""
    keys = keys if keys is not None else _redact_keys()
    text = SECRET_VALUE_RE.sub(REDACTED, text)
    text = QUERY_PARAM_RE.sub(lambda m: m["lead"] + REDACTED if _secret_query_name(m["name"], keys) else m[0], text)
    return _key_value_re(keys).sub(lambda m: f"{m['key']}{m['quote']}{REDACTED}", text)


def _http_request(value: object) -> HttpRequest | None:
    """The Django `HttpRequest` that `value` is or wraps (a DRF `Request`), else None."""
    # Imported here: settings modules import this module (`logging_config`) before Django is set up.
    from django.http import HttpRequest
    from rest_framework.request import Request

    if isinstance(value, Request):
        return value._request
    return value if isinstance(value, HttpRequest) else None


def redact(value: Any, keys: frozenset[str] | None = None, _depth: int = 0) -> Any:
    """Return `value` with secret-looking keys and values replaced by `[REDACTED]`, at any depth."""
    keys = keys if keys is not None else _redact_keys()
    if _depth > 20:
        return value
    if isinstance(value, str):
        return redact_text(value, keys)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and _normalise(k) in keys else redact(v, keys, _depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [redact(v, keys, _depth + 1) for v in value]
        return items if isinstance(value, list) else type(value)(items)
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", "replace"), keys, _depth + 1)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    request = _http_request(value)
    if request is not None:  # Django's 4xx/5xx warnings carry the request: its repr would show the full URL
        return redact_text(f"{request.method} {request.get_full_path()}", keys)
    # Any other object (an exception, a URL object) is rendered as its text anyway: redact that text.
    return redact_text(str(value), keys)


def redact_processor(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: redact the whole event (keys, nested values, formatted exceptions)."""
    keys = _redact_keys()
    return {k: REDACTED if _normalise(k) in keys else redact(v, keys) for k, v in event_dict.items()}


def add_trace_context(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: add the current OpenTelemetry `trace_id` and `span_id`, when a span is recording."""
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - opentelemetry is a dependency
        return event_dict
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event_dict.setdefault("span_id", format(ctx.span_id, "016x"))
    return event_dict


class DeferredRenderer:
    """Render JSON or console output, decided per line from `LLM_INFRA["LOG_JSON"]` (None = JSON unless DEBUG)."""

    def __init__(self) -> None:
        self._json = structlog.processors.JSONRenderer(serializer=_json_dumps)
        self._console = structlog.dev.ConsoleRenderer(colors=False)

    @staticmethod
    def use_json() -> bool:
        try:
            from django.conf import settings

            from llm_infra_django.conf import infra_settings

            choice = infra_settings.LOG_JSON
            return (not settings.DEBUG) if choice is None else bool(choice)
        except Exception:  # settings not configured yet
            return True

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        if self.use_json():
            return str(self._json(logger, method_name, event_dict))
        return self._console(logger, method_name, event_dict)


def _json_dumps(obj: Any, **kwargs: Any) -> str:
    import orjson

    return orjson.dumps(obj, default=str).decode()


def drop_color_message(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: drop uvicorn's duplicate ANSI-coloured copy of the message."""
    event_dict.pop("color_message", None)
    return event_dict


def shared_processors() -> list[Any]:
    """Processors applied to structlog and stdlib records alike, before rendering."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        drop_color_message,
        add_trace_context,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def formatter_processors() -> list[Any]:
    """Processors of the final formatter: exceptions formatted, everything redacted, then rendered."""
    return [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.processors.format_exc_info,
        redact_processor,
        DeferredRenderer(),
    ]


class StructlogFormatter(structlog.stdlib.ProcessorFormatter):
    """The stdlib `Formatter` every handler uses, so stdlib, Django and Celery lines look like structlog's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("processors", formatter_processors())
        kwargs.setdefault("foreign_pre_chain", shared_processors())
        super().__init__(*args, **kwargs)


def configure_structlog() -> None:
    """Configure structlog to hand events to stdlib logging (idempotent)."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A `LOGGING` dict routing every logger (root, django, celery) through `StructlogFormatter` on stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structlog": {"()": "llm_infra_django.logging.StructlogFormatter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structlog"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": {"handlers": ["console"], "level": level, "propagate": False},
            "django.server": {"handlers": ["console"], "level": "WARNING", "propagate": False},
            "celery": {"handlers": ["console"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["console"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        },
    }


# --- Context -----------------------------------------------------------------------------------------------


def bind_context(**values: Any) -> None:
    """Bind values (tenant, user, …) to every later log line of the current request or task."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in values.items() if v is not None})


def get_context() -> dict[str, Any]:
    return structlog.contextvars.get_contextvars()


def get_request_id() -> str | None:
    return structlog.contextvars.get_contextvars().get("request_id")


# --- Typed helpers -----------------------------------------------------------------------------------------


def _log(event: str, level: int, fields: MutableMapping[str, Any]) -> None:
    logger.log(level, event, **{k: v for k, v in fields.items() if v is not None})


def log_request(*, method: str, path: str, headers: Mapping[str, str] | None = None, **extra: Any) -> None:
    """An incoming request (headers are redacted like everything else)."""
    _log("request_started", logging.INFO, {"method": method, "path": path, "headers": dict(headers or {}), **extra})


def log_response(
    *, method: str, path: str, status: int, duration_ms: float, route: str | None = None, **extra: Any
) -> None:
    """The one line per finished request."""
    level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
    _log(
        "request_finished",
        level,
        {
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round(duration_ms, 3),
            **extra,
        },
    )


def log_external_call(
    *,
    service: str,
    operation: str,
    duration_ms: float,
    outcome: str,
    status: int | None = None,
    attempt: int | None = None,
    error: str | None = None,
    **extra: Any,
) -> None:
    """A call to an upstream service (one line per attempt)."""
    level = logging.WARNING if outcome != "success" else logging.INFO
    _log(
        "external_call",
        level,
        {
            "service": service,
            "operation": operation,
            "duration_ms": round(duration_ms, 3),
            "outcome": outcome,
            "status": status,
            "attempt": attempt,
            "error": error,
            **extra,
        },
    )


def log_cache(
    *, operation: str, key: str, hit: bool | None = None, duration_ms: float | None = None, error: str | None = None
) -> None:
    """A cache operation worth recording (misses, errors)."""
    _log(
        "cache_operation",
        logging.WARNING if error else logging.DEBUG,
        {"operation": operation, "key": key, "hit": hit, "duration_ms": duration_ms, "error": error},
    )


def log_auth(*, outcome: str, method: str, principal: str | None = None, reason: str | None = None) -> None:
    """An authentication decision (never the credential itself)."""
    _log(
        "auth",
        logging.INFO if outcome == "success" else logging.WARNING,
        {"outcome": outcome, "auth_method": method, "principal": principal, "reason": reason},
    )


def log_audit(
    *,
    action: str,
    actor: str | None,
    resource: str,
    resource_id: str | None = None,
    tenant: str | None = None,
    **extra: Any,
) -> None:
    """A state change recorded for the audit trail."""
    _log(
        "audit",
        logging.INFO,
        {"action": action, "actor": actor, "resource": resource, "resource_id": resource_id, "tenant": tenant, **extra},
    )


def log_metric(*, name: str, value: float, unit: str | None = None, **labels: Any) -> None:
    """A measured value, for log-based metrics."""
    _log("metric", logging.INFO, {"metric": name, "value": value, "unit": unit, **labels})
