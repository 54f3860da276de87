"""Cache backend for `CACHES` built on django-redis."""

from llm_infra_django.cache.backend import RedisCache

__all__ = ["RedisCache"]
