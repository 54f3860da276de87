"""The official `openai` SDK, unchanged, against a live server: every endpoint, streaming, error mapping."""

from __future__ import annotations

import openai
import pytest

from apps.consumption.services import create_api_key
from tests.apps.consumption.conftest import publish_openai

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def openai_service(provider, upstream):
    behaviour, url = upstream
    publish_openai(provider, url, upstream_model="local-model", name="Local LLM")
    return behaviour


def client(base: str, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=secret, max_retries=0, timeout=20)


def test_sdk_against_echo_and_a_real_upstream(start_servers, api_key, openai_service) -> None:
    (base,) = start_servers(1)
    sdk = client(base, api_key)

    # models
    assert sorted(model.id for model in sdk.models.list()) == ["acme/echo", "acme/local"]

    # chat, both upstream kinds, non-streamed
    echo = sdk.chat.completions.create(
        model="acme/echo", messages=[{"role": "user", "content": "ping pong"}], max_tokens=3
    )
    assert echo.choices[0].message.content.startswith("Echo")
    assert echo.usage.completion_tokens == 3
    local = sdk.chat.completions.create(model="acme/local", messages=[{"role": "user", "content": "hi"}])
    assert local.choices[0].message.content == "w0 w1 w2 w3 w4 w5 w6 w7"
    assert local.usage.prompt_tokens == 7 and local.usage.completion_tokens == 8
    assert openai_service.bodies[-1]["model"] == "local-model"

    # streamed, with usage
    chunks = list(
        sdk.chat.completions.create(
            model="acme/local",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "w0 w1 w2 w3 w4 w5 w6 w7"
    assert chunks[-1].usage.completion_tokens == 8
    streamed_echo = "".join(
        c.choices[0].delta.content or ""
        for c in sdk.chat.completions.create(
            model="acme/echo", messages=[{"role": "user", "content": "a b c"}], stream=True
        )
        if c.choices
    )
    assert streamed_echo.startswith("Echo")

    # completions and embeddings
    completion = sdk.completions.create(model="acme/local", prompt="Say", max_tokens=2)
    assert completion.choices[0].text == "w0 w1"
    embedding = sdk.embeddings.create(model="acme/echo", input=["one", "two"])
    assert len(embedding.data) == 2 and len(embedding.data[0].embedding) == 64


def test_sdk_error_mapping(start_servers, make_key, echo_service, consumer) -> None:
    (base,) = start_servers(1)
    secret = make_key(rpm_limit=1)
    sdk = client(base, secret)

    with pytest.raises(openai.AuthenticationError):
        client(base, "mk_" + "0" * 43).models.list()
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="acme/nothing", messages=[{"role": "user", "content": "x"}])
    sdk.chat.completions.create(model="acme/echo", messages=[{"role": "user", "content": "x"}], max_tokens=1)
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.chat.completions.create(model="acme/echo", messages=[{"role": "user", "content": "x"}], max_tokens=1)
    assert int(limited.value.response.headers["retry-after"]) >= 1

    _, read_only = create_api_key(tenant=consumer, actor=consumer.owner, name="read", scopes=["read"])
    with pytest.raises(openai.PermissionDeniedError):
        client(base, read_only).chat.completions.create(model="acme/echo", messages=[{"role": "user", "content": "x"}])
    _, narrow = create_api_key(tenant=consumer, actor=consumer.owner, name="narrow", allowed_models=["acme/other"])
    with pytest.raises(openai.PermissionDeniedError):
        client(base, narrow).chat.completions.create(model="acme/echo", messages=[{"role": "user", "content": "x"}])

    _, broke = create_api_key(tenant=consumer, actor=consumer.owner, name="broke", budget_day_usd="0.000001")
    with pytest.raises(openai.APIStatusError) as exhausted:
        client(base, broke).chat.completions.create(model="acme/echo", messages=[{"role": "user", "content": "x"}])
    assert exhausted.value.status_code == 402


def test_the_sdk_routes_a_catalog_model_with_provider_preferences(start_servers, make_key, provider) -> None:
    """The README's routing example, as written: `extra_body` carries `provider` and `models`."""
    from tests.apps.consumption.test_routing import catalog_model, echo_offer, offer

    echo_offer(provider, "cheap", price_input_per_mtok="100", price_output_per_mtok="200")
    echo_offer(provider, "dear", price_input_per_mtok="5000", price_output_per_mtok="9000")
    version = catalog_model(provider)
    for slug in ("cheap", "dear"):
        offer(provider, version, slug)
    (base,) = start_servers(1)
    sdk = client(base, make_key())

    answer = sdk.chat.completions.create(
        model="acme/llama",
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=3,
        extra_body={"provider": {"sort": "price"}, "models": ["acme/dear"]},
    )
    assert answer.provider == "acme/cheap@1.0.0"
    raw = sdk.chat.completions.with_raw_response.create(
        model="acme/llama",
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=3,
        extra_body={"provider": {"order": ["acme/dear"]}},
    )
    assert raw.headers["X-Marketplace-Provider"] == "acme/dear@1.0.0"
    listed = {model.id: model for model in sdk.models.list()}
    assert listed["acme/llama"].offers == 2
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(
            model="acme/llama", messages=[{"role": "user", "content": "Hello"}], extra_body={"provider": {"x": 1}}
        )
    assert "provider.x" in str(refused.value)
