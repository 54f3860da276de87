"""The `LLM_INFRA` settings object: defaults, overrides, import strings, reload."""

from __future__ import annotations

import pytest
from django.test import override_settings

from llm_infra_django.conf import DEFAULTS, InfraSettings, infra_settings


def resolve_tenant(request: object) -> str:
    return "tenant-from-resolver"


def test_defaults_apply_when_nothing_is_set() -> None:
    # given no user settings
    conf = InfraSettings(user_settings={})

    # then every default is returned
    assert conf.CACHE_ALIAS == "default"
    assert conf.REQUEST_ID_HEADER == "X-Request-ID"
    assert DEFAULTS["RETRY"] == conf.RETRY
    assert conf.TENANT_RESOLVER is None


def test_user_values_override_and_nested_dicts_merge() -> None:
    conf = InfraSettings(
        user_settings={
            "REQUEST_ID_HEADER": "X-Correlation-ID",
            "RETRY": {"MAX_ATTEMPTS": 2},
            "UPSTREAMS": {"shield": {"URL": "http://shield.local"}},
        }
    )
    assert conf.REQUEST_ID_HEADER == "X-Correlation-ID"
    assert conf.RETRY["MAX_ATTEMPTS"] == 2
    assert conf.RETRY["BASE_DELAY_MS"] == DEFAULTS["RETRY"]["BASE_DELAY_MS"]
    assert conf.UPSTREAMS["shield"] == {**DEFAULTS["UPSTREAMS"]["shield"], "URL": "http://shield.local"}
    assert conf.UPSTREAMS["registry"] == DEFAULTS["UPSTREAMS"]["registry"]


def test_defaults_are_not_mutated_by_callers() -> None:
    conf = InfraSettings(user_settings={})
    conf.RETRY["MAX_ATTEMPTS"] = 99
    assert DEFAULTS["RETRY"]["MAX_ATTEMPTS"] == 4


def test_import_strings_are_resolved() -> None:
    conf = InfraSettings(user_settings={"TENANT_RESOLVER": f"{__name__}.resolve_tenant"})
    assert conf.TENANT_RESOLVER is resolve_tenant
    checks = conf.READINESS_CHECKS
    assert callable(checks["database"])


def test_failing_import_string_names_the_setting() -> None:
    conf = InfraSettings(user_settings={"TENANT_RESOLVER": "no.such.module.resolver"})
    with pytest.raises(ImportError, match="TENANT_RESOLVER"):
        _ = conf.TENANT_RESOLVER


def test_unknown_attribute_is_refused() -> None:
    with pytest.raises(AttributeError, match="NOT_A_KEY"):
        _ = InfraSettings(user_settings={}).NOT_A_KEY


def test_override_settings_reloads_the_shared_object() -> None:
    # given the shared object has already resolved a value
    assert infra_settings.REQUEST_ID_HEADER == "X-Request-ID"

    # when the setting changes
    with override_settings(LLM_INFRA={"REQUEST_ID_HEADER": "X-Trace", "TRACING": {"ENABLED": False}}):
        # then the next read sees the new value
        assert infra_settings.REQUEST_ID_HEADER == "X-Trace"

    # and the old value comes back afterwards
    assert infra_settings.REQUEST_ID_HEADER == "X-Request-ID"


def test_request_id_header_is_read_at_call_time(client) -> None:
    with override_settings(LLM_INFRA={"REQUEST_ID_HEADER": "X-Correlation-ID", "TRACING": {"ENABLED": False}}):
        response = client.get("/plain/ok", HTTP_X_CORRELATION_ID="abc-123")
    assert response["X-Correlation-ID"] == "abc-123"
