"""Revocation is effective on every worker process within a second."""

from __future__ import annotations

import time

import httpx
import pytest

from apps.consumption.models import ApiKey
from apps.consumption.services import revoke_api_key

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(120)]

BODY = {"model": "acme/echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}


def test_revoked_key_is_refused_by_each_worker_within_one_second(start_servers, api_key, consumer) -> None:
    # given two worker processes that have each served (and cached) the key
    urls = start_servers(2)
    headers = {"Authorization": f"Bearer {api_key}"}
    for url in urls:
        assert httpx.post(f"{url}/v1/chat/completions", json=BODY, headers=headers).status_code == 200
        assert httpx.get(f"{url}/v1/models", headers=headers).status_code == 200

    # when the key is revoked
    revoke_api_key(key=ApiKey.objects.get(tenant=consumer), actor=consumer.owner)
    revoked_at = time.monotonic()

    # then the next request to each worker is refused, within a second
    for url in urls:
        chat = httpx.post(f"{url}/v1/chat/completions", json=BODY, headers=headers)
        models = httpx.get(f"{url}/v1/models", headers=headers)
        assert chat.status_code == 401 and models.status_code == 401
        assert chat.json()["error"]["type"] == "authentication_error"
    assert time.monotonic() - revoked_at < 1.0
