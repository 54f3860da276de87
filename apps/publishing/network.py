"""The SSRF guard: upstream endpoints must not reach loopback, private, link-local or metadata addresses."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import httpx

METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}


class PrivateAddressError(ValueError):
    """The URL points, directly or after DNS resolution, at an address the guard refuses."""


def _is_forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Anything not globally routable (loopback, private, link-local incl. 169.254.169.254, shared, reserved)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def resolve_addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address `host` stands for (itself, when it is an IP literal)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check_public_url(url: str) -> None:
    """Raise `PrivateAddressError` unless every address of the URL's host is public."""
    host = (urlsplit(url).hostname or "").lower()
    if not host:
        raise PrivateAddressError("The URL has no host.")
    if host in METADATA_HOSTS or host == "localhost" or host.endswith(".localhost"):
        raise PrivateAddressError(f"{host} is a local or metadata host.")
    try:
        addresses = resolve_addresses(host)
    except socket.gaierror as exc:
        raise PrivateAddressError(f"{host} does not resolve: {exc}") from None
    forbidden = [str(a) for a in addresses if _is_forbidden(a)]
    if forbidden:
        raise PrivateAddressError(f"{host} resolves to a non-public address ({', '.join(forbidden)}).")


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport that re-checks the destination before every request (DNS may have changed)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            check_public_url(str(request.url))
        except PrivateAddressError as exc:
            raise httpx.ConnectError(str(exc), request=request) from None
        return super().handle_request(request)


class AsyncGuardedTransport(httpx.AsyncHTTPTransport):
    """The asyncio twin of `GuardedTransport`."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            check_public_url(str(request.url))
        except PrivateAddressError as exc:
            raise httpx.ConnectError(str(exc), request=request) from None
        return await super().handle_async_request(request)
