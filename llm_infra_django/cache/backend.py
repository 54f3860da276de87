"""`RedisCache`: django-redis with JSON serialisation (never pickle from the network)."""

from __future__ import annotations

from typing import Any

from django_redis.cache import RedisCache as DjangoRedisCache

DEFAULT_OPTIONS = {
    "SERIALIZER": "llm_infra_django.cache.serializers.JSONSerializer",
}


class RedisCache(DjangoRedisCache):
    """django-redis cache whose values are JSON on the wire."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        params = dict(params)
        params["OPTIONS"] = {**DEFAULT_OPTIONS, **(params.get("OPTIONS") or {})}
        super().__init__(server, params)
