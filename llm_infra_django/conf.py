"""The `LLM_INFRA` settings object: defaults, import strings, lazy resolution and reload on `setting_changed`."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

SETTING_NAME = "LLM_INFRA"

DEFAULTS: dict[str, Any] = {
    # Cache alias used by the cache helpers and, when it is a Redis cache, by limiter and breakers.
    "CACHE_ALIAS": "default",
    # Redis used for limiter, breaker and shared state; None = the CACHE_ALIAS cache's Redis if it has one.
    "REDIS_URL": None,
    "REQUEST_ID_HEADER": "X-Request-ID",
    # None = JSON lines unless settings.DEBUG, read when each line is rendered.
    "LOG_JSON": None,
    # Extra key names redacted in logs, merged with the built-in list.
    "LOG_REDACT_KEYS": [],
    "THROTTLE_RATES": {"anon": "60/min", "user": "1000/min"},
    # What a throttle does when Redis fails: True lets the request through (money paths override to closed).
    "THROTTLE_FAIL_OPEN": True,
    # Bounds of a list-valued query filter (`llm_infra_django.drf.fields.ListFilterField`): values, characters each.
    "LIST_FILTER_MAX_ITEMS": 20,
    "LIST_FILTER_MAX_ITEM_LENGTH": 100,
    # Number of reverse proxies in front of the app whose X-Forwarded-For entries are trusted.
    "NUM_PROXIES": 0,
    # /metrics for scrapers only: a bearer token they send (None: none asked) and the networks (CIDRs) they scrape
    # from (empty: any); with both set, a request needs both.
    "METRICS_TOKEN": None,
    "METRICS_ALLOWED_NETWORKS": [],
    "RETRY": {
        "MAX_ATTEMPTS": 4,
        "BASE_DELAY_MS": 100,
        "MAX_DELAY_MS": 10_000,
        "JITTER": 0.25,
        "ATTEMPT_TIMEOUT_MS": None,
    },
    "CIRCUIT_BREAKER": {
        "FAILURE_THRESHOLD": 5,
        "RESET_TIMEOUT_S": 30,
        "SUCCESS_THRESHOLD": 3,
        "HALF_OPEN_MAX_CALLS": 3,
    },
    "UPSTREAMS": {
        "registry": {"URL": None, "TIMEOUT_MS": 500, "FAIL_OPEN": True, "API_KEY": None},
        "shield": {"URL": None, "TIMEOUT_MS": 200, "FAIL_OPEN": True, "API_KEY": None},
        "policy_engine": {"URL": None, "TIMEOUT_MS": 300, "FAIL_OPEN": False, "API_KEY": None},
    },
    "TRACING": {
        "ENABLED": True,
        "SERVICE_NAME": "llm-marketplace",
        "SAMPLE_RATE": 1.0,
        # None = OTLP when an endpoint is set (here or in OTEL_EXPORTER_OTLP_ENDPOINT), else no exporter.
        "EXPORTER": None,
        "OTLP_ENDPOINT": None,
    },
    # Callable(request) -> str | None naming the tenant of a request, for logs and traces.
    "TENANT_RESOLVER": None,
    # Readiness probes run by /readyz: callables returning None (healthy) or raising.
    "READINESS_CHECKS": {
        "database": "llm_infra_django.health.check_database",
        "cache": "llm_infra_django.health.check_cache",
        "broker": "llm_infra_django.health.check_broker",
    },
}

# Keys whose values are dotted paths to import; for dict values, every value is a dotted path.
IMPORT_STRINGS = ("TENANT_RESOLVER", "READINESS_CHECKS")

# Dict-valued keys merged key by key with their defaults (a user dict adds to or overrides, never erases them).
MERGED_DICTS = ("RETRY", "CIRCUIT_BREAKER", "TRACING", "THROTTLE_RATES")
# Dict-of-dict keys merged two levels deep (each upstream's options are merged with that upstream's defaults).
MERGED_NESTED_DICTS = ("UPSTREAMS",)
# Dict-valued keys that the user replaces as a whole.
REPLACED_DICTS = ("READINESS_CHECKS",)


def perform_import(value: Any, setting_name: str) -> Any:
    """Import a dotted path, or each value of a dict of dotted paths."""
    if value is None:
        return None
    if isinstance(value, str):
        return _import(value, setting_name)
    if isinstance(value, Mapping):
        return {
            key: _import(item, f"{setting_name}[{key!r}]") if isinstance(item, str) else item
            for key, item in value.items()
        }
    return value


def _import(path: str, setting_name: str) -> Any:
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImportError(f"Could not import {path!r} for {SETTING_NAME}[{setting_name!r}]: {exc}") from exc


class InfraSettings:
    """Lazily resolved view of a settings dict (`settings.LLM_INFRA` by default) merged over its defaults.

    Attributes are resolved on first access and cached until `reload()` (called on `setting_changed`),
    so callers must read `infra_settings.X` when they need the value instead of copying it at import.
    Apps reuse the class for their own dicts: `AppSettings("MARKETPLACE_X", defaults={...})`.
    """

    def __init__(
        self,
        user_settings: Mapping[str, Any] | None = None,
        defaults: Mapping[str, Any] | None = None,
        import_strings: tuple[str, ...] | None = None,
        setting_name: str = SETTING_NAME,
        merged_dicts: tuple[str, ...] | None = None,
    ) -> None:
        self._explicit_user_settings = user_settings
        self.setting_name = setting_name
        self.defaults = defaults if defaults is not None else DEFAULTS
        self.import_strings = import_strings if import_strings is not None else IMPORT_STRINGS
        self.merged_dicts = merged_dicts if merged_dicts is not None else MERGED_DICTS
        self._cached_attrs: set[str] = set()

    @property
    def user_settings(self) -> Mapping[str, Any]:
        if self._explicit_user_settings is not None:
            return self._explicit_user_settings
        return getattr(settings, self.setting_name, None) or {}

    def raw(self, attr: str) -> Any:
        """The merged value of `attr` without importing import strings (used by system checks)."""
        if attr not in self.defaults:
            raise AttributeError(f"Invalid {self.setting_name} setting: {attr!r}")
        default = copy.deepcopy(self.defaults[attr])
        if attr not in self.user_settings:
            return default
        value = self.user_settings[attr]
        if attr in self.merged_dicts and isinstance(value, Mapping):
            return {**default, **value}
        if attr in MERGED_NESTED_DICTS and isinstance(value, Mapping):
            merged = dict(default)
            for name, options in value.items():
                merged[name] = {**default.get(name, {}), **(options or {})}
            return merged
        return value

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_") or attr not in self.defaults:
            raise AttributeError(f"Invalid {self.setting_name} setting: {attr!r}")
        value = self.raw(attr)
        if attr in self.import_strings:
            value = perform_import(value, attr)
        self._cached_attrs.add(attr)
        setattr(self, attr, value)
        return value

    def reload(self) -> None:
        for attr in self._cached_attrs:
            delattr(self, attr)
        self._cached_attrs.clear()


_instances: list[InfraSettings] = []


def AppSettings(
    setting_name: str,
    *,
    defaults: Mapping[str, Any],
    import_strings: tuple[str, ...] = (),
    merged_dicts: tuple[str, ...] = (),
) -> InfraSettings:
    """A settings object for another dict (an app's `MARKETPLACE_…`), reloaded like `infra_settings`."""
    instance = InfraSettings(
        defaults=defaults, import_strings=import_strings, setting_name=setting_name, merged_dicts=merged_dicts
    )
    _instances.append(instance)
    return instance


infra_settings = InfraSettings()
_instances.append(infra_settings)


def reload_infra_settings(*, setting: str, **kwargs: Any) -> None:
    """Drop cached values when a settings dict (or a setting derived values depend on) changes."""
    for instance in _instances:
        if setting in (instance.setting_name, "CACHES", "DEBUG"):
            instance.reload()


setting_changed.connect(reload_infra_settings, dispatch_uid="llm_infra_django.conf.reload")
