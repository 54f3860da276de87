"""Registry contract details: lookup, update and deregister, including unknown entries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from llm_infra_django.upstreams import InvalidResponseError, RegistryClient
from tests.llm_infra_django.upstreams.conftest import Answer, FakeUpstream, Received

MODEL = {
    "kind": "model",
    "id": "acme/llama-ft@2.0.0",
    "name": "Llama fine-tune",
    "version": "2.0.0",
    "status": "active",
    "owner": "acme",
}
MODEL_PATH = "/v1/models/acme%2Fllama-ft%402.0.0"


class FakeRegistry:
    """Entries by path, answered the way the contract says."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {MODEL_PATH: dict(MODEL)}

    def __call__(self, received: Received) -> Answer:
        entry = self.entries.get(received.path)
        if received.method == "PUT":
            self.entries[received.path] = received.json
            return Answer.of(201 if entry is None else 200, {"entry": received.json})
        if entry is None:
            return Answer.of(404, {"error": "not found"})
        if received.method == "PATCH":
            entry.update(received.json)
            return Answer.of(200, {"entry": entry})
        if received.method == "DELETE":
            del self.entries[received.path]
            return Answer(204)
        return Answer.of(200, {"entry": entry})


@pytest.fixture
def registry(upstream_server: FakeUpstream, configure: Any) -> Iterator[RegistryClient]:
    upstream_server.responder = FakeRegistry()
    configure("registry", upstream_server.url, fail_open=False)
    client = RegistryClient()
    yield client
    client.close()


def test_lookup_finds_a_known_entry(registry: RegistryClient) -> None:
    # when a known model is looked up, then its entry comes back
    result = registry.lookup("model", "acme/llama-ft@2.0.0")
    assert result.found and result.evaluated
    assert result.entry is not None
    assert (result.entry.kind, result.entry.name, result.entry.metadata) == ("model", "Llama fine-tune", {})


def test_lookup_of_an_unknown_entry_is_an_answer_not_a_failure(
    registry: RegistryClient, upstream_server: FakeUpstream
) -> None:
    # when an unknown service is looked up, then the registry's "not found" is reported as such, without retry
    result = registry.lookup("service", "nobody/nothing@1.0.0")
    assert (result.found, result.entry, result.evaluated, result.degraded) == (False, None, True, False)
    assert len(upstream_server.received) == 1


def test_update_sends_only_the_changed_fields(registry: RegistryClient, upstream_server: FakeUpstream) -> None:
    # when a model is deprecated
    result = registry.update("model", "acme/llama-ft@2.0.0", status="deprecated")

    # then only the status was sent, by PATCH, and the new entry comes back
    assert (upstream_server.received[0].method, upstream_server.received[0].json) == ("PATCH", {"status": "deprecated"})
    assert result.entry is not None and result.entry.status == "deprecated"


def test_update_of_an_unknown_entry_is_not_found(registry: RegistryClient) -> None:
    # when an unknown entry is updated, then it is reported not found
    assert registry.update("service", "nobody/nothing@1.0.0", version="1.0.1").found is False


def test_deregister_then_deregister_again(registry: RegistryClient) -> None:
    # when a model is deregistered twice, then the first finds it (204) and the second does not (404)
    assert registry.deregister("model", "acme/llama-ft@2.0.0").found is True
    assert registry.deregister("model", "acme/llama-ft@2.0.0").found is False
    assert registry.lookup("model", "acme/llama-ft@2.0.0").found is False


def test_an_entry_for_another_id_is_invalid(upstream_server: FakeUpstream, configure: Any) -> None:
    # given a registry answering with someone else's entry
    upstream_server.responder = lambda received: Answer.of(200, {"entry": MODEL})
    configure("registry", upstream_server.url, fail_open=False)
    client = RegistryClient()

    # when another model is looked up, then the answer is refused
    with pytest.raises(InvalidResponseError, match="not the requested"):
        client.lookup("model", "acme/other@1.0.0")
    client.close()


def test_an_unknown_kind_is_a_programming_error(registry: RegistryClient) -> None:
    # when a kind outside the contract is asked for, then it fails before any request
    with pytest.raises(ValueError, match="Unknown registry kind"):
        registry.lookup("dataset", "x")  # type: ignore[arg-type]


async def test_async_operations(registry: RegistryClient) -> None:
    # when the async operations run against the registry, then they behave like the sync ones
    registered = await registry.aregister("service", "acme/chat@1.0.0", name="Chat", version="1.0.0", owner="acme")
    updated = await registry.aupdate("service", "acme/chat@1.0.0", metadata={"tier": "gold"})
    found = await registry.alookup("service", "acme/chat@1.0.0")
    removed = await registry.aderegister("service", "acme/chat@1.0.0")
    await registry.aclose()
    assert registered.found and registered.entry is not None and registered.entry.status == "active"
    assert updated.entry is not None and updated.entry.metadata == {"tier": "gold"}
    assert found.entry == updated.entry
    assert removed.found
