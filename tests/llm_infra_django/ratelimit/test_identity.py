"""Who a request is: client IP behind trusted proxies, IPv6 grouping, API keys as keyed hashes, key specs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from django.test import RequestFactory

from llm_infra_django.ratelimit.identity import (
    api_key_identity,
    check_key_spec,
    client_ip,
    hashed,
    principal_identity,
    resolve_identity,
)
from tests.llm_infra_django.ratelimit.conftest import infra

factory = RequestFactory()


@pytest.mark.parametrize(
    ("num_proxies", "remote", "forwarded", "expected"),
    [
        (0, "198.51.100.7", "203.0.113.1", "198.51.100.7"),
        (1, "10.0.0.1", "203.0.113.1, 198.51.100.7", "198.51.100.7"),
        (2, "10.0.0.1", "203.0.113.1, 198.51.100.7, 10.0.0.2", "198.51.100.7"),
        (3, "10.0.0.1", "198.51.100.7", "198.51.100.7"),
        (1, "10.0.0.1", None, "10.0.0.1"),
        (0, "2001:db8:1:2:3:4:5:6", None, "2001:db8:1:2::/64"),
        (1, "10.0.0.1", "not-an-ip", None),
    ],
)
def test_client_ip_trusts_only_the_configured_proxies(
    settings: Any, num_proxies: int, remote: str, forwarded: str | None, expected: str | None
) -> None:
    # given
    settings.LLM_INFRA = infra(NUM_PROXIES=num_proxies)
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    request = factory.get("/", REMOTE_ADDR=remote, **extra)

    # when
    address = client_ip(request)

    # then
    assert address == expected


def test_api_keys_are_identified_by_id_or_by_a_keyed_hash_never_the_secret() -> None:
    # given
    secret = "mk_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    with_object = factory.get("/")
    with_object.auth = SimpleNamespace(pk=None, id="key-42")  # type: ignore[attr-defined]
    with_bearer = factory.get("/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    with_basic = factory.get("/", HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")

    # when
    identities = [api_key_identity(r) for r in (with_object, with_bearer, with_basic)]

    # then
    assert identities == ["key:key-42", f"keyhash:{hashed(secret)}", None]
    assert secret not in identities[1]
    assert len(hashed(secret)) == 32


def test_the_principal_is_the_key_then_the_user_then_the_ip() -> None:
    # given
    request = factory.get("/", REMOTE_ADDR="198.51.100.7")

    # when / then
    assert principal_identity(request) == "ip:198.51.100.7"
    request.user = SimpleNamespace(pk=5, is_authenticated=True)  # type: ignore[assignment]
    assert principal_identity(request) == "user:5"
    request.auth = SimpleNamespace(pk=9)  # type: ignore[attr-defined]
    assert principal_identity(request) == "key:9"


def test_named_key_specs() -> None:
    # given
    request = factory.get("/", REMOTE_ADDR="198.51.100.7", HTTP_X_CLIENT="abc")

    # when / then
    assert resolve_identity(request, "ip") == "ip:198.51.100.7"
    assert resolve_identity(request, "user") == "ip:198.51.100.7"
    assert resolve_identity(request, "tenant") is None
    assert resolve_identity(request, "header:X-Client") == f"hdr:{hashed('abc')}"
    assert resolve_identity(request, lambda r: "custom") == "custom"
    for bad in ("cookie", "header:"):
        with pytest.raises(ValueError):
            check_key_spec(bad)
