"""The SSRF guard on every new upstream connection: private destinations are refused before anything is sent, and
the connection goes to the very address that was checked (no second DNS lookup a rebinding attacker could answer)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import httpcore
import httpx
import pytest

from apps.publishing import network


@pytest.fixture(autouse=True)
def _no_cached_answers():
    network._checked.clear()
    yield
    network._checked.clear()


def _answers(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[str]]) -> list[str]:
    """DNS for the named hosts (the machine has no resolver we control); returns the log of lookups."""
    lookups: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        if host in table:
            lookups.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 0)) for address in table[host]]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


class Recorder(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self.hosts: list[str] = []

    def connect_tcp(self, host: str, port: int, **kwargs: Any) -> httpcore.NetworkStream:
        self.hosts.append(host)
        raise httpcore.ConnectError("recorded")


class AsyncRecorder(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def connect_tcp(self, host: str, port: int, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        raise httpcore.ConnectError("recorded")


@pytest.mark.parametrize("url_of", [lambda url: url, lambda url: url.replace("127.0.0.1", "localhost")])
def test_a_private_upstream_gets_no_request(upstream, url_of) -> None:
    behaviour, url = upstream
    with httpx.Client(transport=network.GuardedTransport()) as client, pytest.raises(httpx.ConnectError) as refused:
        client.get(url_of(url) + "/models")
    assert "local" in str(refused.value) or "non-public" in str(refused.value)
    assert behaviour.requests == 0
    with httpx.Client() as client:  # the same server, unguarded, answers: the guard is what refused
        assert client.get(url + "/models").status_code == 200


async def test_the_async_transport_refuses_a_private_upstream(upstream) -> None:
    behaviour, url = upstream
    async with httpx.AsyncClient(transport=network.AsyncGuardedTransport()) as client:
        with pytest.raises(httpx.ConnectError, match="non-public"):
            await client.post(url + "/chat/completions", json={})
    assert behaviour.requests == 0


def test_a_host_with_any_private_address_is_refused(monkeypatch) -> None:
    _answers(monkeypatch, {"mixed.example": ["8.8.8.8", "10.1.2.3"]})
    with pytest.raises(network.PrivateAddressError, match=r"10\.1\.2\.3"):
        network.public_addresses("mixed.example")


def test_connections_go_to_the_checked_address(monkeypatch) -> None:
    # given a host that resolves to a public address now, and would resolve to loopback on a second lookup
    lookups = _answers(monkeypatch, {"rebind.example": ["8.8.8.8"]})
    recorder = Recorder()
    backend = network._PinnedBackend(recorder)

    # when the guarded backend connects
    with pytest.raises(httpcore.ConnectError):
        backend.connect_tcp("rebind.example", 443)

    # then it looked the name up once and connected to the address it checked, not to the name
    assert recorder.hosts == ["8.8.8.8"]
    assert lookups == ["rebind.example"]


def test_the_async_backend_connects_to_the_checked_address(monkeypatch) -> None:
    lookups = _answers(monkeypatch, {"rebind.example": ["8.8.4.4", "1.1.1.1"]})
    recorder = AsyncRecorder()
    backend = network._AsyncPinnedBackend(recorder)
    with pytest.raises(httpcore.ConnectError):
        asyncio.run(backend.connect_tcp("rebind.example", 443))
    assert recorder.hosts == ["8.8.4.4", "1.1.1.1"]  # every checked address tried, in order
    assert lookups == ["rebind.example"]


def test_a_private_answer_never_reaches_the_inner_backend(monkeypatch) -> None:
    _answers(monkeypatch, {"internal.example": ["169.254.169.254"]})
    recorder = Recorder()
    with pytest.raises(httpcore.ConnectError, match=r"169\.254\.169\.254"):
        network._PinnedBackend(recorder).connect_tcp("internal.example", 80)
    assert recorder.hosts == []


def test_the_transports_guard_their_pools() -> None:
    # httpx offers no public way to pass a network backend; this fails loudly if a new httpx/httpcore changes that
    assert isinstance(network.GuardedTransport()._pool._network_backend, network._PinnedBackend)
    assert isinstance(network.AsyncGuardedTransport()._pool._network_backend, network._AsyncPinnedBackend)


# IPv6 forms that reach private space, most through an embedded IPv4 address that `ipaddress.is_global` overlooks.
PRIVATE_IPV6 = {
    "nat64-loopback": "64:ff9b::127.0.0.1",
    "nat64-private": "64:ff9b::a00:1",
    "nat64-metadata": "64:ff9b::169.254.169.254",
    "nat64-local-use": "64:ff9b:1::a00:1",
    "nat64-local-use-public": "64:ff9b:1::8.8.8.8",
    "ipv4-compatible-loopback": "::127.0.0.1",
    "ipv4-compatible-public": "::8.8.8.8",
    "ipv4-mapped-loopback": "::ffff:127.0.0.1",
    "ipv4-mapped-metadata": "::ffff:169.254.169.254",
    "ipv4-translated-loopback": "::ffff:0:127.0.0.1",
    "ipv4-translated-private": "::ffff:0:192.168.1.1",
    "6to4-loopback": "2002:7f00:1::1",
    "6to4-private": "2002:c0a8:101::1",
    "6to4-metadata": "2002:a9fe:a9fe::",
    "teredo": "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "teredo-prefix": "2001::1",
    "site-local": "fec0::1",
    "site-local-upper": "feff::1",
}
# The same translation forms of public IPv4 addresses (and a plain public IPv6 address) stay usable.
PUBLIC_IPV6 = {
    "nat64": "64:ff9b::8.8.8.8",
    "ipv4-mapped": "::ffff:8.8.8.8",
    "6to4": "2002:808:808::1",
    "global": "2001:4860:4860::8888",
}


def _ipv6_answers(monkeypatch: pytest.MonkeyPatch, host: str, address: str) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(name: str, *args: Any, **kwargs: Any) -> list[Any]:
        if name == host:
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, 0, 0, 0))]
        return real(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize("address", PRIVATE_IPV6.values(), ids=PRIVATE_IPV6.keys())
def test_connections_refuse_ipv6_forms_of_private_space(monkeypatch, address: str) -> None:
    # given a host whose DNS answer is the IPv6 form
    _ipv6_answers(monkeypatch, "v6.example", address)
    recorder, async_recorder = Recorder(), AsyncRecorder()

    # when the guarded backends connect to it, then they refuse before any connection
    with pytest.raises(httpcore.ConnectError, match="non-public"):
        network._PinnedBackend(recorder).connect_tcp("v6.example", 443)
    network._checked.clear()
    with pytest.raises(httpcore.ConnectError, match="non-public"):
        asyncio.run(network._AsyncPinnedBackend(async_recorder).connect_tcp("v6.example", 443))
    assert recorder.hosts == async_recorder.hosts == []


@pytest.mark.parametrize("address", PUBLIC_IPV6.values(), ids=PUBLIC_IPV6.keys())
def test_connections_go_to_ipv6_forms_of_public_addresses(monkeypatch, address: str) -> None:
    _ipv6_answers(monkeypatch, "v6.example", address)
    recorder = Recorder()
    with pytest.raises(httpcore.ConnectError, match="recorded"):
        network._PinnedBackend(recorder).connect_tcp("v6.example", 443)
    assert recorder.hosts == [str(ipaddress.ip_address(address))]
