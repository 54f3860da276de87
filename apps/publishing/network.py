"""The SSRF guard: upstream endpoints must not reach loopback, private, link-local or metadata addresses.

Checked at publish time (`check_public_url`) and again on every new connection (httpx: `GuardedTransport`,
`AsyncGuardedTransport`; aiohttp: `GuardedResolver`): the host is resolved here, refused unless every address is
public, and the connection made to the address checked, so a DNS answer that changes between the check and the
connect (rebinding) cannot smuggle a private address in. TLS still verifies the certificate against the host name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp.abc
import httpcore
import httpx

METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}
# Seconds a checked DNS answer is reused for new connections (connections themselves are pooled).
DNS_CACHE_SECONDS = 30.0

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_checked: dict[str, tuple[float, list[Address]]] = {}


class PrivateAddressError(ValueError):
    """The URL points, directly or after DNS resolution, at an address the guard refuses."""


# IPv6 prefixes through which a translator reaches the IPv4 address in the low 32 bits (NAT64 of RFC 6052,
# IPv4-mapped, IPv4-translated of RFC 2765): that IPv4 address decides, as it does for 6to4 (`2002::/16`). Python's
# `is_global` judges the prefix alone, and calls `64:ff9b::10.0.0.1` or `2002:a00:1::` global.
TRANSLATING_PREFIXES = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "::ffff:0:0/96", "::ffff:0:0:0/96"))
# IPv6 forms refused whatever they embed, which `is_global` accepts or may one day: IPv4-compatible (deprecated,
# RFC 4291), local-use NAT64 (RFC 8215, not globally reachable), Teredo (RFC 4380), site-local (deprecated, RFC 3879).
REFUSED_PREFIXES = tuple(ipaddress.IPv6Network(n) for n in ("::/96", "64:ff9b:1::/48", "2001::/32", "fec0::/10"))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a NAT64 gateway, a translator or a 6to4 relay would reach for `address`, else None."""
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in prefix for prefix in TRANSLATING_PREFIXES):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _is_forbidden(address: Address) -> bool:
    """Anything not globally routable (loopback, private, link-local incl. 169.254.169.254, shared, reserved),
    directly or through the IPv4 address an IPv6 address embeds."""
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in prefix for prefix in REFUSED_PREFIXES):
            return True
        address = _embedded_ipv4(address) or address
    return not address.is_global or address.is_multicast


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _addresses_of(infos: list[Any]) -> list[Address]:
    found: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if address not in found:
            found.append(address)
    return found


def resolve_addresses(host: str) -> list[Address]:
    """Every address `host` stands for (itself, when it is an IP literal)."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    return _addresses_of(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM))


def _refuse_local_names(host: str) -> None:
    if not host:
        raise PrivateAddressError("The URL has no host.")
    if host in METADATA_HOSTS or host == "localhost" or host.endswith(".localhost"):
        raise PrivateAddressError(f"{host} is a local or metadata host.")


def _public_only(host: str, addresses: list[Address]) -> list[Address]:
    forbidden = [str(a) for a in addresses if _is_forbidden(a)]
    if forbidden or not addresses:
        raise PrivateAddressError(f"{host} resolves to a non-public address ({', '.join(forbidden) or 'none'}).")
    return addresses


def check_public_url(url: str) -> None:
    """Raise `PrivateAddressError` unless every address of the URL's host is public."""
    host = (urlsplit(url).hostname or "").lower()
    public_addresses(host)


def _recently_checked(host: str) -> list[Address] | None:
    """The checked public addresses of `host` if it was checked less than `DNS_CACHE_SECONDS` ago (local and
    metadata names are refused first)."""
    _refuse_local_names(host)
    cached = _checked.get(host)
    if cached is not None and time.monotonic() - cached[0] < DNS_CACHE_SECONDS:
        return cached[1]
    return None


def _checked_now(host: str, addresses: list[Address]) -> list[Address]:
    _checked[host] = (time.monotonic(), _public_only(host, addresses))
    return addresses


def public_addresses(host: str) -> list[Address]:
    """The addresses to connect to for `host`, all of them public, or `PrivateAddressError`."""
    host = host.lower()
    cached = _recently_checked(host)
    if cached is not None:
        return cached
    try:
        return _checked_now(host, resolve_addresses(host))
    except socket.gaierror as exc:
        raise PrivateAddressError(f"{host} does not resolve: {exc}") from None


async def public_addresses_async(host: str) -> list[Address]:
    """`public_addresses` without blocking the event loop on DNS."""
    host = host.lower()
    cached = _recently_checked(host)
    if cached is not None:
        return cached
    literal = _literal(host)
    if literal is not None:
        return _checked_now(host, [literal])
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise PrivateAddressError(f"{host} does not resolve: {exc}") from None
    return _checked_now(host, _addresses_of(infos))


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects only to checked public addresses of the host."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, **kwargs: Any) -> httpcore.NetworkStream:
        try:
            addresses = public_addresses(host)
        except PrivateAddressError as exc:
            raise httpcore.ConnectError(str(exc)) from None
        failure: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(str(address), port, **kwargs)
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    def connect_unix_socket(self, path: str, **kwargs: Any) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("Unix sockets are not upstreams.")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _AsyncPinnedBackend(httpcore.AsyncNetworkBackend):
    """The asyncio twin of `_PinnedBackend`."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(self, host: str, port: int, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await public_addresses_async(host)
        except PrivateAddressError as exc:
            raise httpcore.ConnectError(str(exc)) from None
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(str(address), port, **kwargs)
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("Unix sockets are not upstreams.")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _pin(pool: Any, backend_type: type) -> None:
    # httpx builds its httpcore pool without a way to pass a network backend; swap the pool's one (tested).
    inner = getattr(pool, "_network_backend", None)
    if inner is None:
        raise RuntimeError("httpcore's connection pool has no network backend to guard; check the pinned versions.")
    pool._network_backend = backend_type(inner)


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport whose new connections go only to checked public addresses (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _pin(self._pool, _PinnedBackend)


class AsyncGuardedTransport(httpx.AsyncHTTPTransport):
    """The asyncio twin of `GuardedTransport`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _pin(self._pool, _AsyncPinnedBackend)


class GuardedResolver(aiohttp.abc.AbstractResolver):
    """An aiohttp resolver answering only checked public addresses: aiohttp connects to what its resolver answers,
    so connections are pinned to them. (aiohttp resolves names only: check an IP-literal host with
    `public_addresses_async` before the request.)"""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        try:
            addresses = await public_addresses_async(host)
        except PrivateAddressError as exc:
            raise OSError(str(exc)) from None
        return [
            {
                "hostname": host,
                "host": str(address),
                "port": port,
                "family": socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        """Nothing to release: lookups go through the event loop's resolver."""
