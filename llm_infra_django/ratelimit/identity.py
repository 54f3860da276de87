"""Who a request is, for rate limiting: API key, tenant, user or client IP (credentials only ever as keyed hashes)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from django.utils.crypto import salted_hmac

from llm_infra_django.conf import infra_settings
from llm_infra_django.middleware import resolved_tenant

# An identity source for the decorator and the middleware: a name or a callable(request) -> identity or None.
KeySpec = str | Callable[[Any], "str | None"]

# IPv6 clients are limited per /64: one subscriber usually holds a whole /64 and could rotate through it.
IPV6_PREFIX = 64


def hashed(value: str) -> str:
    """A keyed hash (HMAC with SECRET_KEY) of a secret, stable across processes, useless to whoever reads Redis."""
    return salted_hmac("llm_infra_django.ratelimit", value, algorithm="sha256").hexdigest()[:32]


def client_address(request: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client address: `REMOTE_ADDR`, or with `NUM_PROXIES` trusted proxies the X-Forwarded-For entry the
    outermost trusted proxy appended (entries further left are client-supplied and ignored)."""
    address = request.META.get("REMOTE_ADDR")
    num_proxies = int(infra_settings.NUM_PROXIES or 0)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if num_proxies > 0 and forwarded:
        entries = [entry.strip() for entry in forwarded.split(",")]
        address = entries[-min(num_proxies, len(entries))]
    try:
        return ipaddress.ip_address(address or "")
    except ValueError:
        return None


def client_ip(request: Any) -> str | None:
    """The client address for rate limiting (`client_address`; an IPv6 client as its /64)."""
    parsed = client_address(request)
    if parsed is None:
        return None
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/{IPV6_PREFIX}", strict=False))
    return str(parsed)


def ip_identity(request: Any) -> str | None:
    address = client_ip(request)
    return f"ip:{address}" if address else None


def user_identity(request: Any) -> str | None:
    """The authenticated user's pk (evaluates a lazy `request.user`), else None."""
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return f"user:{user.pk}"


def tenant_identity(request: Any) -> str | None:
    """The tenant named by `LLM_INFRA["TENANT_RESOLVER"]`, else None."""
    tenant = resolved_tenant(request)
    return f"tenant:{tenant}" if tenant else None


def api_key_identity(request: Any) -> str | None:
    """`request.auth`'s id/pk when authentication produced a key object, else a hash of the Bearer credential."""
    auth = getattr(request, "auth", None)
    key_id = getattr(auth, "pk", None)
    if key_id is None:
        key_id = getattr(auth, "id", None)
    if key_id is not None:
        return f"key:{key_id}"
    scheme, _, credential = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        return f"keyhash:{hashed(credential.strip())}"
    return None


def header_identity(request: Any, header: str) -> str | None:
    """A hash of a request header's value (it may be a credential), else None."""
    value = request.headers.get(header)
    return f"hdr:{hashed(value)}" if value else None


def caller_identity(request: Any) -> str | None:
    """Who signed in: the API key the request authenticated with (`request.auth`: a key need not act for a user),
    else the user; None for an anonymous request."""
    if getattr(request, "auth", None) is not None:
        return api_key_identity(request)
    return user_identity(request)


def principal_identity(request: Any) -> str | None:
    """The most specific identity available: API key, then user, then client IP."""
    return api_key_identity(request) or user_identity(request) or ip_identity(request)


_NAMED: dict[str, Callable[[Any], str | None]] = {
    "ip": ip_identity,
    "user": lambda request: user_identity(request) or ip_identity(request),
    "tenant": tenant_identity,
    "api_key": api_key_identity,
    "principal": principal_identity,
}


def check_key_spec(key: KeySpec) -> None:
    """Raise `ValueError` for a key spec `resolve_identity` does not know (called when a limit is declared)."""
    if callable(key) or (key.startswith("header:") and len(key) > len("header:")) or key in _NAMED:
        return
    raise ValueError(
        f"unknown rate limit key {key!r}; use ip, user, tenant, api_key, principal, header:<Name> or a callable"
    )


def resolve_identity(request: Any, key: KeySpec) -> str | None:
    """The identity `key` names: "ip", "user" (anonymous → IP), "tenant", "api_key", "principal", "header:<Name>",
    or a callable(request). None means the limit does not apply to this request."""
    if callable(key):
        return key(request)
    if key.startswith("header:"):
        return header_identity(request, key.removeprefix("header:"))
    return _NAMED[key](request)
