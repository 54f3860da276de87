"""Each system check fires on a bad configuration and stays quiet on a good one."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from llm_infra_django import checks

BASE = {"TRACING": {"ENABLED": False}}
GOOD_MIDDLEWARE = [checks.CONTEXT_MIDDLEWARE, "django.middleware.common.CommonMiddleware", checks.ERROR_MIDDLEWARE]


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def test_the_test_project_passes_all_checks() -> None:
    call_command("check", "--fail-level", "WARNING")


@override_settings(LLM_INFRA={**BASE, "CACHE_ALIASS": "default"})
def test_e001_unknown_top_level_key() -> None:
    messages = checks.check_unknown_keys()
    assert ids(messages) == ["llm_infra.E001"]
    assert "CACHE_ALIASS" in messages[0].msg


@override_settings(LLM_INFRA={**BASE, "RETRY": {"MAX_ATEMPTS": 3}, "UPSTREAMS": {"shield": {"TIMEOUT": 5}}})
def test_e001_unknown_nested_keys() -> None:
    messages = checks.check_unknown_keys()
    assert ids(messages) == ["llm_infra.E001", "llm_infra.E001"]
    assert "MAX_ATEMPTS" in messages[0].msg and "TIMEOUT" in messages[1].msg


@override_settings(LLM_INFRA={**BASE, "TENANT_RESOLVER": "tests.nowhere.resolver"})
def test_e002_import_string_fails() -> None:
    messages = checks.check_import_strings()
    assert ids(messages) == ["llm_infra.E002"]
    assert "TENANT_RESOLVER" in messages[0].msg


@override_settings(LLM_INFRA={**BASE, "READINESS_CHECKS": {"db": "llm_infra_django.health.no_such_check"}})
def test_e002_in_a_dict_of_import_strings() -> None:
    messages = checks.check_import_strings()
    assert ids(messages) == ["llm_infra.E002"]
    assert "'db'" in messages[0].msg


@pytest.mark.parametrize("rate", ["100", "ten/min", "100/fortnight", "0/min", 5])
def test_e003_rate_does_not_parse(rate: object) -> None:
    with override_settings(LLM_INFRA={**BASE, "THROTTLE_RATES": {"burst": rate}}):
        messages = checks.check_rates()
    assert ids(messages) == ["llm_infra.E003"]
    assert "burst" in messages[0].msg


@override_settings(LLM_INFRA={**BASE, "THROTTLE_RATES": {"a": "100/min", "b": "10/s", "c": "5000/day", "d": "30/5m"}})
def test_e003_quiet_on_good_rates() -> None:
    assert checks.check_rates() == []


@override_settings(LLM_INFRA={**BASE, "METRICS_ALLOWED_NETWORKS": ["10.0.0.0/8", "10.0.0.0/33", "scrapers"]})
def test_e006_metrics_network_does_not_parse() -> None:
    messages = checks.check_metrics_networks()
    assert ids(messages) == ["llm_infra.E006", "llm_infra.E006"]
    assert "10.0.0.0/33" in messages[0].msg and "scrapers" in messages[1].msg


@override_settings(LLM_INFRA={**BASE, "METRICS_ALLOWED_NETWORKS": ["10.0.0.0/8", "fd00::/8", "192.0.2.7"]})
def test_e006_quiet_on_good_networks() -> None:
    assert checks.check_metrics_networks() == []


@override_settings(LLM_INFRA={**BASE, "CACHE_ALIAS": "ratelimit"})
def test_e004_cache_alias_missing() -> None:
    messages = checks.check_cache_alias()
    assert ids(messages) == ["llm_infra.E004"]
    assert "ratelimit" in messages[0].msg


@pytest.mark.parametrize(
    "middleware",
    [
        ["django.middleware.common.CommonMiddleware", checks.CONTEXT_MIDDLEWARE, checks.ERROR_MIDDLEWARE],
        [checks.ERROR_MIDDLEWARE, "django.middleware.common.CommonMiddleware"],
        [checks.CONTEXT_MIDDLEWARE, checks.ERROR_MIDDLEWARE, "django.middleware.common.CommonMiddleware"],
    ],
)
def test_w001_middleware_order(middleware: list[str]) -> None:
    with override_settings(MIDDLEWARE=middleware):
        assert ids(checks.check_middleware_order()) == ["llm_infra.W001"]


def test_w001_quiet_on_good_order_and_ignores_opentelemetry_first() -> None:
    with override_settings(MIDDLEWARE=GOOD_MIDDLEWARE):
        assert checks.check_middleware_order() == []
    with override_settings(MIDDLEWARE=["opentelemetry.instrumentation.django.middleware.X", *GOOD_MIDDLEWARE]):
        assert checks.check_middleware_order() == []


def test_w002_deploy_check_on_per_process_cache() -> None:
    assert ids(checks.check_shared_cache()) == ["llm_infra.W002"]
    redis_cache = {"default": {"BACKEND": "llm_infra_django.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379"}}
    with override_settings(CACHES=redis_cache):
        assert checks.check_shared_cache() == []


def test_deploy_checks_run_only_with_deploy() -> None:
    call_command("check")
    with pytest.raises(SystemCheckError, match=r"llm_infra\.W002"):
        call_command("check", "--deploy", "--fail-level", "WARNING", "--tag", "caches")


@pytest.mark.parametrize(
    ("tracing", "expected"),
    [
        ({"ENABLED": True, "EXPORTER": "console"}, ["llm_infra.W003"]),
        ({"ENABLED": True, "EXPORTER": "otlp", "OTLP_ENDPOINT": None}, ["llm_infra.E005"]),
        ({"ENABLED": True, "EXPORTER": "otlp", "OTLP_ENDPOINT": "http://collector:4318"}, []),
        ({"ENABLED": False, "EXPORTER": "console"}, []),
    ],
)
def test_tracing_deploy_checks(tracing: dict, expected: list[str]) -> None:
    with override_settings(LLM_INFRA={"TRACING": tracing}):
        assert ids(checks.check_tracing_exporter()) == expected
